"""Names: the one namespace every stage asks for a name, and the rules names follow."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx

import astgen
from astgen import ir, names
from tests.helpers import build


def test_fresh_gives_the_base_then_numbered_suffixes() -> None:
    namespace = names.Namespace()
    assert [namespace.fresh("x") for _ in range(3)] == ["x", "x_1", "x_2"]


def test_fresh_avoids_reserved_names_and_skips_taken_suffixes() -> None:
    namespace = names.Namespace(["x", "x_1"])
    assert namespace.fresh("x") == "x_2"


def test_claim_takes_a_reserved_name_once() -> None:
    namespace = names.Namespace(["getitem"])
    assert namespace.claim("getitem") == "getitem"
    assert namespace.claim("getitem") == "getitem_1"


def test_fresh_never_gives_a_name_claimed_or_given() -> None:
    namespace = names.Namespace()
    namespace.give(["forward"])
    namespace.claim("x")
    assert namespace.fresh("forward") == "forward_1" and namespace.fresh("x") == "x_1"


def test_release_frees_a_reserved_name_that_was_never_given() -> None:
    namespace = names.Namespace(["w", "y"])
    namespace.claim("y")
    namespace.release("w")
    namespace.release("y")
    assert namespace.fresh("w") == "w" and namespace.fresh("y") == "y_1"


def test_fresh_gives_what_a_scan_from_the_base_gives_after_names_taken_between_calls() -> None:
    namespace = names.Namespace(["x_3"])
    assert [namespace.fresh("x") for _ in range(3)] == ["x", "x_1", "x_2"]
    namespace.claim("x_4")
    namespace.give(["x_5"])
    assert namespace.fresh("x") == "x_6"
    # `x_3` was only reserved: released, a scan from `x` finds it first.
    namespace.release("x_3")
    assert namespace.fresh("x") == "x_3" and namespace.fresh("x") == "x_7"


def test_stem_drops_a_fresh_suffix() -> None:
    assert [names.stem(n) for n in ("getitem_907", "submod_12", "x", "l_x_")] == ["getitem", "submod", "x", "l_x"]


def test_piece_name() -> None:
    assert names.piece_name("submod_0") == "submod_0_fn"


@pytest.mark.parametrize(("name", "expected"), [("x", True), ("class", False), ("a-b", False), ("名前", False)])
def test_is_identifier(name: str, expected: bool) -> None:
    assert names.is_identifier(name) is expected


def test_lowering_names_pieces_through_the_namespace() -> None:
    def body(g: torch.fx.Graph) -> object:
        return g.call_module("sub", (g.placeholder("x"),))

    gm = build(body, sub=torch.nn.ReLU())
    lowered = astgen.lower(gm).function
    assert [g.name for g in lowered.globals] == [names.piece_name("sub")]


def test_a_node_named_like_a_piece_callable_keeps_every_name_unique() -> None:
    def body(g: torch.fx.Graph) -> object:
        x = g.placeholder("x")
        first = g.call_function(operator.neg, (x,))
        first.name = "sub_fn"
        return g.call_module("sub", (first,))

    gm = build(body, sub=torch.nn.ReLU())
    function = astgen.lower(gm).function
    ir.verify(function)
    assert function.globals[0].name == "sub_fn_1"
