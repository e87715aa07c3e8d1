"""The exceptions astgen raises: `CodegenError` for input it cannot handle, and
`VerifyError`, a subclass, for IR that breaks an invariant: a bug in astgen.

Misusing the API (a bad argument, a stage run twice) is a `ValueError` or a
`TypeError`, as in the standard library.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.fx

    from astgen.ir import Origin

# The exit status of a command-line tool that hits a `VerifyError`: not the
# input's fault (that is 2), so scripts can tell the two apart.
EXIT_INTERNAL_ERROR = 3

_TRACER_FRAME = re.compile(r'^File ".*[\\/]torch[\\/]fx[\\/]')


def user_source_line(stack_trace: str | None) -> str | None:
    """The innermost `File "...", line N, in f` frame of an FX stack trace, with its code.

    FX records the user's Python stack at trace time; the last frame is the
    line of model code that created the node, which is what a reader wants.
    `torch.fx.Tracer(record_stack_traces)` also records its own frames
    below the user's, so frames inside `torch/fx/` are skipped.
    """
    if not isinstance(stack_trace, str) or not stack_trace:
        # Anyone may assign `node.stack_trace`; only FX's text is read.
        return None
    lines = [line.strip() for line in stack_trace.strip().splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("File ") and not _TRACER_FRAME.search(lines[index]):
            code = lines[index + 1] if index + 1 < len(lines) else ""
            if code.startswith("File ") or set(code) <= set("^~ "):
                code = ""
            return f"{lines[index]}: {code}" if code else lines[index]
    return None


class CodegenError(Exception):
    """A graph astgen cannot turn into a function.

    ``node`` is the FX node's text (``node.format_node()``) when one node is to
    blame, and ``source_line`` the line of user code that made it, when FX
    recorded one.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        source_line: str | None = None,
    ) -> None:
        self.reason = message
        self.node = node
        self.source_line = source_line
        parts = [message]
        if node is not None:
            parts.append(f"  node: {node}")
        if source_line is not None:
            parts.append(f"  from: {source_line}")
        super().__init__("\n".join(parts))

    @classmethod
    def at(cls, node: torch.fx.Node, message: str) -> CodegenError:
        """An error blamed on one FX node."""
        try:
            text = node.format_node()
        except Exception:  # a malformed node must not hide the real error
            text = f"{node.op} {node.name!r}"
        return cls(message, node=text, source_line=user_source_line(node.stack_trace))


class VerifyError(CodegenError):
    """The IR broke an invariant every stage keeps (`astgen.ir.verify`): a bug in astgen, not in the graph.

    ``origin`` is the failing instruction's origin, the FX node and user line
    it was lowered from, where it has one; ``instruction`` its IR text.
    """

    def __init__(self, message: str, *, origin: Origin | None = None, instruction: str | None = None) -> None:
        self.origin = origin
        self.instruction = instruction
        super().__init__(
            message if instruction is None else f"{message}\n  instruction: {instruction}",
            node=None if origin is None else origin.node,
            source_line=None if origin is None else origin.source_line,
        )
        self.reason = message


def a_or_an(word: str) -> str:
    """`word` after its indefinite article, for messages that name a type: "an Import", "a Call"."""
    return f"{'an' if word[:1].lower() in set('aeiou') else 'a'} {word}"


def graph_module_hint(value: object) -> str:
    """How to get a `torch.fx.GraphModule` from `value`, as the end of an error message; "" when there is no way."""
    # Imported here, as in the annotations above: this module has no torch at import time.
    import torch.export

    if isinstance(value, torch.export.ExportedProgram):
        return "; its .module() is the GraphModule it runs"
    if isinstance(value, torch.nn.Module) and not isinstance(value, torch.fx.GraphModule):
        return "; trace it to one first: torch.fx.symbolic_trace(module)"
    return ""


def not_a_graph_module(value: object) -> TypeError:
    """The error for `value` given where a `torch.fx.GraphModule` is expected, naming the way to get one."""
    return TypeError(f"expected a torch.fx.GraphModule, got {type(value).__name__}{graph_module_hint(value)}")
