"""`python -m astgen.fuzz`: fuzzing campaigns (`astgen.testing.campaign`); the names below are kept for
reproducers and code written before the testing tools moved to `astgen.testing`."""

from astgen.testing.campaign import UsageError, campaign, main, run_cli
from astgen.testing.checks import (
    ALL_CHECKS,
    CHECK_DESCRIPTIONS,
    CHECKS,
    PropertyFailure,
    check_graph,
    check_recipe,
    reproduce,
    reproducer_source,
    signature,
    write_reproducer,
)
from astgen.testing.oracles import difference

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
    "reproduce",
    "reproducer_source",
    "signature",
    "write_reproducer",
]

if __name__ == "__main__":
    run_cli()
