"""`python -m astgen`: what astgen offers from the command line, in one short text."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from astgen._version import __version__

USAGE = f"""\
astgen {__version__}: torch.fx stitching graphs compiled to Python functions through a typed IR and `ast`.

commands:
  python -m astgen.dump [TARGET]   print the code astgen generates for a graph (an example,
                                   package.module:factory, a torch.export .pt2 file); --help for more
  python -m astgen.fuzz            fuzz the generator on random split graphs; --help for more
  python -m astgen --version       print the version

in Python:
  torch.compile(model, backend="astgen")   the piecewise torch.compile backend (split at attention)
  astgen.compile_graph(gm)                 a torch.fx.GraphModule compiled to a function
"""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments in ([], ["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    if arguments == ["--version"]:
        print(f"astgen {__version__}")
        return 0
    print(
        f"python -m astgen: unknown arguments {' '.join(arguments)!r}; run python -m astgen for the commands",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
