"""The `vllm.general_plugins` entry point: on only with ASTGEN_VLLM=1, everywhere vLLM looks, undone by uninstall()."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import pytest
import vllm.plugins
from vllm.compilation import backends, caching, codegen

import astgen.vllm

STOCK = (codegen.generate_execution_code, codegen.compile_execution_fn)


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm.plugins, "plugins_loaded", False)
    astgen.vllm.uninstall()


def test_the_entry_point_is_in_vllms_group() -> None:
    (point,) = [point for point in entry_points(group="vllm.general_plugins") if point.name == "astgen"]
    assert point.load() is astgen.vllm.register


def test_without_the_variable_vllm_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(astgen.vllm.ENABLE_VARIABLE, raising=False)
    vllm.plugins.load_general_plugins()
    assert backends.compile_execution_fn is STOCK[1] and caching.compile_execution_fn is STOCK[1]


def test_with_the_variable_every_lookup_is_astgens_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(astgen.vllm.ENABLE_VARIABLE, "1")
    with caplog.at_level(logging.INFO, logger="astgen.vllm"):
        vllm.plugins.load_general_plugins()
    assert backends.generate_execution_code is astgen.vllm.generate_execution_code
    assert backends.compile_execution_fn is astgen.vllm.compile_execution_fn
    assert caching.compile_execution_fn is astgen.vllm.compile_execution_fn
    assert codegen._node_ref is astgen.vllm._node_ref
    assert any("vllm.compilation.caching.compile_execution_fn" in record.getMessage() for record in caplog.records)


def test_vllm_plugins_still_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(astgen.vllm.ENABLE_VARIABLE, "1")
    monkeypatch.setenv("VLLM_PLUGINS", "someone-else")
    vllm.plugins.load_general_plugins()
    assert backends.compile_execution_fn is STOCK[1]


def test_installing_twice_is_installing_once() -> None:
    first = astgen.vllm.install()
    assert astgen.vllm.install() == first
    astgen.vllm.uninstall()
    assert (codegen.generate_execution_code, caching.compile_execution_fn) == STOCK


def test_uninstall_puts_vllms_own_back() -> None:
    astgen.vllm.install()
    astgen.vllm.uninstall()
    assert (backends.generate_execution_code, backends.compile_execution_fn) == STOCK
    assert caching.compile_execution_fn is STOCK[1]


def test_a_layout_it_does_not_know_is_refused_before_anything_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(caching, "compile_execution_fn")
    with pytest.raises(RuntimeError, match=r"layout: vllm\.compilation\.caching\.compile_execution_fn is missing"):
        astgen.vllm.install()
    assert backends.compile_execution_fn is STOCK[1]


def test_a_function_that_is_not_vllms_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "generate_execution_code", len)
    with pytest.raises(RuntimeError, match="not vLLM's codegen function"):
        astgen.vllm.install()
