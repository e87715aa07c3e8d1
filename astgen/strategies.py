"""The earlier name of the graph strategies: `astgen.testing.drawing` and `astgen.testing.recipe`."""

from astgen.testing.drawing import recipes, split_graphs
from astgen.testing.recipe import (
    ADVERSARIAL_NAMES,
    CANARY,
    FUNCTIONS,
    KIND_DESCRIPTIONS,
    KINDS,
    NODE_KINDS,
    PAYLOADS,
    VLLM_KINDS,
    Recipe,
    build,
    clear_payload_canary,
    payload_executed,
)

__all__ = [
    "ADVERSARIAL_NAMES",
    "CANARY",
    "FUNCTIONS",
    "KINDS",
    "KIND_DESCRIPTIONS",
    "NODE_KINDS",
    "PAYLOADS",
    "VLLM_KINDS",
    "Recipe",
    "build",
    "clear_payload_canary",
    "payload_executed",
    "recipes",
    "split_graphs",
]
