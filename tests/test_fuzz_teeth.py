"""The property suite has teeth: each bug planted in the generator is caught by it.

Every planted bug is a small patch of the real pipeline (a pass, or one of the
emitter's node factories). With the bug in place, the tests of
`property_tests/test_properties.py` run with a small fixed budget, and at
least one must fail with a `PropertyFailure`: a crash of the patched
pipeline (a mis-patched mock raising `TypeError`) is no catch. The test
reports which property caught it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException

from astgen import ir, passes
from astgen.compiled import code_cache
from astgen.emit import _Builder
from astgen.testing import checks as fuzz
from astgen.testing import drawing as strategies
from astgen.testing.checks import PropertyFailure
from astgen.testing.recipe import Recipe

# ---------------------------------------------------------------- the bugs


def _delete_one_statement_early(function: ir.Function) -> ir.Function:
    function = passes.insert_deletes(function)
    body = list(function.body)
    for index in range(1, len(body)):
        deleted = {value.name for value in getattr(body[index], "values", ())}
        if isinstance(body[index], ir.Delete) and deleted & {value.name for value in ir.uses(body[index - 1])}:
            body[index - 1], body[index] = body[index], body[index - 1]
            break
    return dataclasses.replace(function, body=tuple(body))


_call_arguments = _Builder.call_arguments
_subscript_key = _Builder.subscript_key
_real = _Builder.real


def _swapped_arguments(self: Any, args: Any, kwargs: Any) -> Any:
    positional, keywords = _call_arguments(self, args, kwargs)
    if len(positional) >= 2:
        positional[0], positional[1] = positional[1], positional[0]
    return positional, keywords


def _dropped_keyword(self: Any, args: Any, kwargs: Any) -> Any:
    positional, keywords = _call_arguments(self, args, kwargs)
    return positional, keywords[:-1]


def _index_off_by_one(self: Any, key: ir.Operand) -> Any:
    if isinstance(key, ir.Const) and type(key.value) is int:
        key = ir.Const(key.value + 1)
    return _subscript_key(self, key)


def _negative_zero_as_zero(self: Any, value: float) -> Any:
    return _real(self, 0.0) if value == 0 else _real(self, value)


PLANTED: dict[str, Callable[[], Any]] = {
    "delete one statement early": lambda: mock.patch.object(
        passes, "PASSES", (passes.unpack_tuples, _delete_one_statement_early, passes.assign_names)
    ),
    "two call arguments swapped": lambda: mock.patch.object(_Builder, "call_arguments", _swapped_arguments),
    "getitem index off by one": lambda: mock.patch.object(_Builder, "subscript_key", _index_off_by_one),
    "constant rendered wrongly (-0.0 as 0.0)": lambda: mock.patch.object(_Builder, "real", _negative_zero_as_zero),
    "dropped keyword argument": lambda: mock.patch.object(_Builder, "call_arguments", _dropped_keyword),
    "values never deleted": lambda: mock.patch.object(passes, "PASSES", (passes.unpack_tuples, passes.assign_names)),
}


@contextlib.contextmanager
def planted(bug: str) -> Iterator[None]:
    """The pipeline with `bug` in it; generated code cached before or during it is dropped."""
    code_cache.clear()
    try:
        with PLANTED[bug]():
            yield
    finally:
        code_cache.clear()


# ---------------------------------------------------------------- running the suite


def property_tests() -> list[Any]:
    from property_tests import test_properties

    return [test for name, test in vars(test_properties).items() if name.startswith("test_")]


def run_bounded(test: Any, max_examples: int, phases: tuple[Phase, ...] = (Phase.generate,)) -> BaseException | None:
    """Run one property test's body on its own strategy with a fixed budget; the error it fails with, or None."""
    budget = settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    bounded = budget(given(**test.hypothesis._given_kwargs)(test.hypothesis.inner_test))
    try:
        bounded()
    except HypothesisException:
        raise  # a misuse of Hypothesis, not a bug found
    except Exception as error:
        return error
    return None


def is_catch(error: BaseException | None) -> bool:
    """Whether a property caught a planted bug: it failed as a property, not by a crash of the pipeline."""
    return isinstance(error, PropertyFailure)


@pytest.mark.parametrize("bug", list(PLANTED))
def test_the_bounded_property_suite_catches_the_planted_bug(bug: str) -> None:
    caught_by = []
    crashes = []
    with planted(bug):
        for test in property_tests():
            error = run_bounded(test, max_examples=60)
            if is_catch(error):
                caught_by.append(test.__name__)
                break
            if error is not None:
                crashes.append(f"{test.__name__}: {type(error).__name__}: {error}")
    assert caught_by, f"no property test caught the planted bug {bug!r} as a property failure; crashes: {crashes}"
    print(f"{bug}: caught by {caught_by[0]}")


def test_a_crashing_patch_is_no_catch() -> None:
    # A mock with the wrong signature crashes astgen's emitter on every graph: the suite fails, but catches nothing.
    with planted("two call arguments swapped"), mock.patch.object(_Builder, "call_arguments", lambda self: None):
        error = run_bounded(property_tests()[0], max_examples=5)
    assert isinstance(error, TypeError)
    assert not is_catch(error)


def test_the_suite_passes_without_a_planted_bug() -> None:
    # The control for the test above: the same budget finds nothing on the real pipeline, in any property.
    tests = property_tests()
    assert len(tests) == 11
    for test in tests:
        assert run_bounded(test, max_examples=60) is None, test.__name__


def test_a_failing_graph_shrinks_to_a_few_nodes() -> None:
    found: list[Recipe] = []

    @given(strategies.recipes())
    def swapped_arguments_are_found(recipe: Recipe) -> None:
        try:
            fuzz.check_recipe(recipe, ["interpreter"])
        except Exception:
            found.append(recipe)
            raise

    with planted("two call arguments swapped"):
        error = run_bounded(swapped_arguments_are_found, 300, (Phase.generate, Phase.shrink))
    assert error is not None and found
    shrunk = found[-1]
    assert len(shrunk["nodes"]) <= 2, json.dumps(shrunk)
    assert len(shrunk["inputs"]) <= 2, json.dumps(shrunk)
