"""Hypothesis settings profiles for the property suite.

`ci` (the default, used by `make property`) is bounded and derandomized so
`make test` is reproducible and fast; `campaign` draws many more graphs.
Pick one with `HYPOTHESIS_PROFILE=campaign pytest property_tests`. HypoFuzz
runs the same tests for as long as it is left running, with the `campaign`
profile (`HYPOTHESIS_PROFILE=campaign hypothesis fuzz property_tests/`): it
refuses derandomized tests, and `ci` is derandomized.
"""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

# Tiny tensors: a thread pool only costs time, and `-n 2` runs two workers.
torch.set_num_threads(1)

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("ASTGEN_PROPERTY_EXAMPLES", "800")),
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "campaign",
    max_examples=20_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
