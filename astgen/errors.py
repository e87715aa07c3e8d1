"""The one exception astgen raises for input it cannot handle."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.fx

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
