"""`python -m astgen.fuzz`: fuzzing campaigns (`astgen.testing.campaign`); the names below are kept for
reproducers and code written before the testing tools moved to `astgen.testing`."""

import sys

try:
    from astgen.testing.campaign import UsageError, campaign, main, run_cli
except ModuleNotFoundError as missing:
    # A base install has no Hypothesis: the command line says what to install
    # (`--help` included), in one line; an import from code raises as it is.
    if __name__ != "__main__" or not (missing.name or "").startswith("hypothesis"):
        raise
    print("python -m astgen.fuzz needs Hypothesis: pip install 'astgen[fuzz]'", file=sys.stderr)
    sys.exit(2)
from astgen.testing.checks import (
    ALL_CHECKS,
    CHECK_DESCRIPTIONS,
    CHECKS,
    PropertyFailure,
    check_graph,
    check_recipe,
    report,
    signature,
)
from astgen.testing.oracles import difference
from astgen.testing.reproducers import reproducer_source, write_reproducer

__all__ = [
    "ALL_CHECKS",
    "CHECKS",
    "CHECK_DESCRIPTIONS",
    "PropertyFailure",
    "UsageError",
    "campaign",
    "check_graph",
    "check_recipe",
    "difference",
    "main",
    "report",
    "reproducer_source",
    "signature",
    "write_reproducer",
]

if __name__ == "__main__":
    run_cli()
