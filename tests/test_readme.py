"""The README's Python blocks run as written, in order, in one namespace, so they stay true.

A block may use what an earlier block defined (the first defines `gm` and
`compiled`). Blocks that need what a test cannot give are left out, each
for a reason named here: the atheris harness (an optional fuzzer that runs
until stopped).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
NOT_RUN = {"atheris": "an optional fuzzer's harness, which runs until stopped"}


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    return [block for block in blocks if not any(word in block for word in NOT_RUN)]


def test_readme_python_blocks_run(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    # One script, as a reader pasting the blocks in order would run them.
    script = "".join(f"# ---- README block {index}\n{block}\n" for index, block in enumerate(blocks))
    script += f"print('ran {len(blocks)} blocks')\n"
    (tmp_path / "readme.py").write_text(script)
    result = subprocess.run(
        [sys.executable, "readme.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"ran {len(blocks)} blocks" in result.stdout
