"""Every test process keeps its checked code objects in a directory of its own, not the user's cache."""

from __future__ import annotations

import os
import tempfile

os.environ["ASTGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="astgen-test-cache-")
