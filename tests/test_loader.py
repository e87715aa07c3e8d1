"""`astgen.load`: its arguments, its log, and its code cache, trusted and written as `__pycache__` is."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import astgen
from astgen import loader
from astgen.errors import CodegenError
from astgen.vllm import compile_execution_fn
from tests.helpers import assert_same, example, interpret


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("ASTGEN_CACHE_DIR", str(directory))
    loader.code_cache.clear()
    return directory


def entries(cache: Path) -> list[Path]:
    return sorted(path for path in cache.rglob("*") if path.is_file() or path.is_symlink())


def adds(k: int) -> str:
    return f"def f(x):\n    return x + {k}\n"


# ---------------------------------------------------------------- arguments


def toy() -> tuple[Any, dict[str, Any], tuple[Any, ...]]:
    gm = example("toy")
    artifact = astgen.compile_graph(gm).artifact()
    return artifact, {name: gm.get_submodule(name) for name in artifact.piece_names}, (gm,)


def test_piece_names_given_as_one_str_is_a_type_error_with_a_hint() -> None:
    code = "p = __astgen_pieces__[0]\ndef f(x):\n    return p(x)\n"
    with pytest.raises(TypeError, match=r"not one str .*\['sub'\]"):
        astgen.load((code, "sub", []), {"sub": abs})


def test_pieces_given_as_a_list_is_a_clear_type_error() -> None:
    artifact, pieces, _ = toy()
    with pytest.raises(TypeError, match="mapping from piece name to callable, not list"):
        astgen.load(artifact, list(pieces.values()))  # type: ignore[arg-type]


def test_piece_names_out_of_the_texts_order_fail_at_load() -> None:
    artifact, pieces, _ = toy()
    reversed_names = tuple(reversed(artifact.piece_names))
    with pytest.raises(CodegenError, match="not in the text's order"):
        astgen.load((artifact.code, reversed_names, artifact.consts), pieces)


def test_vllm_text_is_bound_in_submod_names_order_whatever_its_values_are_named() -> None:
    # vLLM names a piece's result after its FX node, and a node need not be
    # named after the piece it calls: a check of the order by those names
    # refused valid text (a drawn graph's node `submod_2` called `submod_0`).
    code = textwrap.dedent(
        """\
        def execution_fn(x, *, __vllm_submods__):
            submod_1 = __vllm_submods__[0](x)
            submod_0 = __vllm_submods__[1](submod_1)
            return submod_0
        """
    )
    pieces = {"submod_0": lambda v: v + 1, "submod_1": lambda v: v * 10}
    assert compile_execution_fn(code, pieces, ["submod_0", "submod_1"], [])(1) == 20
    assert compile_execution_fn(code, pieces, ["submod_1", "submod_0"], [])(1) == 11


def test_names_the_text_does_not_tell_apart_are_taken_as_given() -> None:
    code = "p = __astgen_pieces__[0]\nq = __astgen_pieces__[1]\ndef f(x):\n    return q(p(x))\n"
    fn = astgen.load((code, ["b", "a"], []), {"a": lambda v: v + 1, "b": lambda v: v * 10})
    assert fn(1) == 11


# ---------------------------------------------------------------- the log


def test_debug_log_says_where_the_cache_is_and_whether_each_load_hit(
    caplog: pytest.LogCaptureFixture, private_cache: Path
) -> None:
    with caplog.at_level(logging.DEBUG, logger="astgen"):
        astgen.load((adds(1), [], []))
        astgen.load((adds(1), [], []))
        loader.code_cache.clear()
        astgen.load((adds(1), [], []))
    messages = [record.getMessage() for record in caplog.records if record.name == "astgen"]
    assert any("miss" in message for message in messages)
    assert any("hit in memory" in message for message in messages)
    assert any("hit on disk" in message for message in messages)
    assert any(str(private_cache) in message and "directory" in message for message in messages)


# ---------------------------------------------------------------- the cache


def test_an_entry_that_is_a_link_is_not_followed(private_cache: Path) -> None:
    # Whoever can write the folder points text A's entry at text B's compiled code.
    astgen.load((adds(1), [], []))
    (entry_a,) = entries(private_cache)
    astgen.load((adds(100), [], []))
    (entry_b,) = [path for path in entries(private_cache) if path != entry_a]
    entry_a.unlink()
    entry_a.symlink_to(entry_b)
    loader.code_cache.clear()
    assert astgen.load((adds(1), [], []))(1) == 2


def test_an_entry_others_may_write_is_not_used(private_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    astgen.load((adds(1), [], []))
    (entry_a,) = entries(private_cache)
    astgen.load((adds(100), [], []))
    (entry_b,) = [path for path in entries(private_cache) if path != entry_a]
    entry_a.write_bytes(entry_b.read_bytes())
    entry_a.chmod(0o666)
    loader.code_cache.clear()
    with caplog.at_level(logging.WARNING, logger="astgen"):
        assert astgen.load((adds(1), [], []))(1) == 2
    assert "not a plain file of yours alone" in caplog.text


def test_the_entry_itself_must_be_this_users(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    astgen.load((adds(1), [], []))
    (entry_a,) = entries(private_cache)
    astgen.load((adds(100), [], []))
    (entry_b,) = [path for path in entries(private_cache) if path != entry_a]
    entry_a.write_bytes(entry_b.read_bytes())
    real = os.fstat

    def foreign_owner(descriptor: int) -> os.stat_result:
        status = real(descriptor)
        fields = list(status)
        fields[4] = status.st_uid + 1  # st_uid
        return os.stat_result(fields)

    monkeypatch.setattr(loader.os, "fstat", foreign_owner)
    loader.code_cache.clear()
    assert astgen.load((adds(1), [], []))(1) == 2


@pytest.mark.parametrize("part", ["__version__", "torch", "magic"])
def test_the_key_names_astgen_torch_and_the_interpreter(
    part: str, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    astgen.load((adds(1), [], []))
    assert len(entries(private_cache)) == 1
    if part == "__version__":
        monkeypatch.setattr(loader, "__version__", "0.0.0+other")
    elif part == "torch":
        monkeypatch.setattr(loader.torch, "__version__", "0.0.0+other")
    else:
        monkeypatch.setattr(loader.importlib.util, "MAGIC_NUMBER", b"\x00\x00\r\n")
    loader.code_cache.clear()
    astgen.load((adds(1), [], []))
    assert len(entries(private_cache)) == 2


def test_a_warm_load_reads_the_entry_and_lifts_nothing(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact, pieces, (gm,) = toy()
    astgen.load(artifact, pieces)
    loader.code_cache.clear()

    def no_lift(*args: object, **kwargs: object) -> None:
        raise AssertionError("the text was lifted again")

    monkeypatch.setattr(loader.lift, "lift", no_lift)
    args = torch.randn(2, 4), torch.randn(2, 4)
    assert_same(astgen.load(artifact, pieces)(*args), interpret(gm, *args))


CONCURRENT = textwrap.dedent(
    """\
    import os, random, sys
    import astgen
    from astgen import loader

    torn = []
    real_loads = loader.marshal.loads

    class CountingMarshal:
        dumps = staticmethod(loader.marshal.dumps)

        @staticmethod
        def loads(data):
            try:
                return real_loads(data)
            except Exception:
                torn.append(len(data))
                raise

    loader.marshal = CountingMarshal
    rng = random.Random(int(sys.argv[1]))
    folder = None
    for step in range(int(sys.argv[2])):
        k = rng.randrange(6)
        lines = [f"    y{i} = x + {i}" for i in range(300 * (k + 1))]
        code = "def f(x):\\n" + "\\n".join(lines) + f"\\n    return y{k} * 0 + {k}\\n"
        loader.code_cache.clear()
        if rng.random() < 0.5:
            for path in loader.cache_directory().rglob("*"):
                if path.is_file() and not path.name.startswith(".tmp-") and rng.random() < 0.3:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
        assert astgen.load((code, [], []))(1) == k
    print(len(torn))
    """
)


def test_two_processes_writing_and_reading_one_folder_never_see_half_an_entry(private_cache: Path) -> None:
    environment = {**os.environ, "ASTGEN_CACHE_DIR": str(private_cache)}
    root = Path(__file__).parent.parent
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(seed), "60"],
            env=environment,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == "0", "a reader saw part of an entry"
    assert not [path for path in private_cache.rglob(".tmp-*")]
