"""Shared set-up: a code cache of the test process's own, a fresh Dynamo where a test file asks for one,
torch's trace off unless a test turns it on, and a check that no test leaves process state changed."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch._logging._internal import trace_log

# Checked code objects go to a directory of this process's own, not the user's cache.
os.environ["ASTGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="astgen-test-cache-")

# Inductor raises the limit to 2000 at its first compile in a process: set
# here, every test runs under the limit users of inductor have, whichever
# test compiled first (tests of other limits set them themselves).
sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))

# Set by torch, process-wide and for good, the first time it needs them:
# the address of one of its own objects, at the first load of an inductor
# module; its cache directory, at the first look-up of it (a trace record, a
# compile). The same value for every later use.
_SET_ONCE_BY_TORCH = frozenset({"_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR", "TORCHINDUCTOR_CACHE_DIR"})


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    # Dynamo caches by code object: without a reset, models of the same class
    # from earlier tests count towards the recompile limit, and the local
    # profile of earlier runs would decide which sizes start dynamic.
    torch._dynamo.reset()
    with torch._dynamo.config.patch(automatic_dynamic_local_pgo=False):
        yield
    torch._dynamo.reset()


def _pytest_owns(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")


def _torch_placeholder(handler: logging.Handler) -> bool:
    # With TORCH_TRACE unset, torch's lazy trace handler removes itself at
    # the first trace record of the process, in whichever test that is.
    return type(handler).__name__ == "LazyTraceHandler" and getattr(handler, "root_dir", None) is None


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _untraced():
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _untraced():
        return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _untraced():
        return (yield)


class _untraced:
    """pytest's log capture handlers taken off torch's trace log for one test phase.

    pytest attaches them to every logger that does not propagate, torch's
    trace log among them, and a handler there means "tracing is on": every
    graph compiled in any test would be rendered for a trace nobody reads,
    and whether a test saw tracing on would depend on pytest, not on the
    test. Tests that trace add a handler of their own.
    """

    def __enter__(self) -> None:
        self.taken = [handler for handler in trace_log.handlers if _pytest_owns(handler)]
        for handler in self.taken:
            trace_log.removeHandler(handler)

    def __exit__(self, *exc: object) -> None:
        # pytest removes its handlers itself when the phase ends.
        for handler in self.taken:
            trace_log.addHandler(handler)


def _logging_state() -> dict[str, tuple[object, ...]]:
    loggers = {"": logging.getLogger()}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            loggers[name] = logger
    return {
        name: (
            logger.level,
            logger.propagate,
            logger.disabled,
            tuple(handler for handler in logger.handlers if not (_pytest_owns(handler) or _torch_placeholder(handler))),
        )
        for name, logger in loggers.items()
    }


def _dynamo_config() -> dict[str, Any] | None:
    config = sys.modules.get("torch._dynamo.config")
    return None if config is None else config.get_config_copy()


def _process_state() -> dict[str, Any]:
    return {
        "recursion limit": sys.getrecursionlimit(),
        "int digit limit": sys.get_int_max_str_digits(),
        # pytest's own variable names the phase it is in.
        "environment": {
            name: value
            for name, value in os.environ.items()
            if name != "PYTEST_CURRENT_TEST" and name not in _SET_ONCE_BY_TORCH
        },
        "working directory": os.getcwd(),
        "grad mode": torch.is_grad_enabled(),
        "default dtype": torch.get_default_dtype(),
    }


@pytest.fixture(autouse=True)
def _leaves_process_state_as_it_found_it() -> Iterator[None]:
    """Fail any test that leaves logging, torch's trace and Dynamo config, or the interpreter's limits changed.

    Such a leak makes the next test in the same worker see another world:
    the suite would pass or fail by test order. Loggers first made during
    the test are not judged, since importing a library makes its loggers
    with their handlers, in whichever test imports it first; Dynamo's config
    is compared only if it existed before.
    """
    before = _process_state()
    logging_before = _logging_state()
    dynamo_before = _dynamo_config()
    yield
    after = _process_state()
    changed = [what for what, value in after.items() if before[what] != value and what != "environment"]
    environment = {**before["environment"], **after["environment"]}
    changed += [
        f"environment variable {name}: {before['environment'].get(name)!r} -> {after['environment'].get(name)!r}"
        for name in environment
        if before["environment"].get(name) != after["environment"].get(name)
    ]
    for name, state in _logging_state().items():
        if name in logging_before and logging_before[name] != state:
            changed.append(f"logger {name or 'root'!r}: {logging_before[name]} -> {state}")
    if dynamo_before is not None:
        dynamo_after = _dynamo_config()
        assert dynamo_after is not None
        changed += [
            f"torch._dynamo.config.{key}: {dynamo_before[key]!r} -> {value!r}"
            for key, value in dynamo_after.items()
            if key in dynamo_before and dynamo_before[key] != value
        ]
    if changed:
        pytest.fail("the test left process state changed: " + "; ".join(map(str, changed)), pytrace=False)
