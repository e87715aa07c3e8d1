"""Mutants of astgen's and vLLM's generated texts are refused, or run without an audit event.

Each example draws a batch of mutants (`astgen.testing.mutants`: callees
swapped for names of `dir(torch)`, `dir(torch.Tensor)`,
`dir(torch.UntypedStorage)`, `dir(str)` and the builtins, attribute chains,
defaults, constants and prelude lines changed) and sends them through one
audited subprocess (`astgen.testing.audit.AuditServer`) that the whole
module shares: no event beyond the loader's own, and a refusal imports
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astgen.testing.audit import AuditServer, Case, violations
from astgen.testing.mutants import base_cases, mutants

# A batch is one round trip to the subprocess: a fraction of the profile's examples, of several texts each.
EXAMPLES = max(settings().max_examples // 80, 5)


@pytest.fixture(scope="module")
def server() -> Iterator[AuditServer]:
    with AuditServer() as running:
        yield running


def test_the_bases_run_cleanly(server: AuditServer) -> None:
    cases = list(base_cases())
    reports = server.check(cases)
    assert violations(cases, reports) == []
    assert [report.outcome for report in reports] == ["ran"] * len(cases), reports


@settings(max_examples=EXAMPLES)
@given(st.lists(mutants(list(base_cases())), min_size=8, max_size=16))
def test_mutants_are_refused_or_run_without_an_event(server: AuditServer, batch: list[Case]) -> None:
    reports = server.check(batch)
    assert violations(batch, reports) == []
