"""docs/loading.md's Python blocks run as written, in order, so the page stays true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_loading_page_blocks_run(tmp_path: Path) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / "loading.md").read_text(), re.S | re.M)
    assert len(blocks) >= 2
    (tmp_path / "page.py").write_text("".join(blocks) + "print('ran')\n")
    result = subprocess.run(
        [sys.executable, "page.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ASTGEN_CACHE_DIR": "off"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ran" in result.stdout
