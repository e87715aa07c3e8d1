"""The loader check's mutants: a batch made from one parse is the batch made from a parse each."""

from __future__ import annotations

import random

from astgen.testing import mutants


def test_a_batch_from_one_parse_equals_a_parse_per_mutant() -> None:
    for base in mutants.base_cases():
        for seed in range(40):
            batch = mutants.random_mutants(random.Random(seed), base, 6)
            # One parse each, from the same stream of choices: what the batch must equal.
            rng = random.Random(seed)
            one_by_one = [mutants.random_mutants(rng, base, 1)[0] for _ in range(6)]
            assert batch == one_by_one, (base.code, seed)
            # The mutations were taken back between mutants, not piled up: each differs from the base
            # in a few nodes, and the batch is not one growing text.
            assert any(case.code != base.code for case in batch)
            assert len({case.code for case in batch}) > 1
