"""Shared set-up: a code cache of the test process's own, and a fresh Dynamo where a test file asks for one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
import torch

# Checked code objects go to a directory of this process's own, not the user's cache.
os.environ["ASTGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="astgen-test-cache-")


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    # Dynamo caches by code object: without a reset, models of the same class
    # from earlier tests count towards the recompile limit, and the local
    # profile of earlier runs would decide which sizes start dynamic.
    torch._dynamo.reset()
    with torch._dynamo.config.patch(automatic_dynamic_local_pgo=False):
        yield
    torch._dynamo.reset()
