"""transformers' own models, from tiny configs with random weights, through `torch.compile(backend="astgen")`.

Nothing is downloaded. Each piece backend the README names runs on a real
decoder; results are compared with eager. Inductor compiles slowly on two
cores, so it gets one model: the GPT-2 case that once failed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.fx
import transformers

import astgen
from astgen import ir
from astgen.piecewise import Backend

VOCAB = 100


# A fresh Dynamo for every test: see `fresh_dynamo` in tests/conftest.py.
pytestmark = pytest.mark.usefixtures("fresh_dynamo")


def llama(**overrides: Any) -> Any:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        **overrides,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def gpt2() -> Any:
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


def bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def tokens(batch: int, seq: int) -> torch.Tensor:
    return torch.randint(3, VOCAB, (batch, seq))


def called_pieces(compiled: astgen.CompiledGraph) -> int:
    return sum(1 for instruction in compiled.ir.body if isinstance(instruction, ir.CallModule))


def recording(calls: list[torch.fx.GraphModule]) -> Callable[..., Any]:
    def piece_backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        calls.append(gm)
        return gm.forward

    return piece_backend


# Two layers: before, attention, between, attention, after.
SPLIT_TWO_LAYERS = 5


@pytest.mark.parametrize(
    ("make", "piece_backend", "dynamic"),
    [
        pytest.param(llama, "eager", True, id="llama-eager-dynamic"),
        pytest.param(llama, "aot_eager", False, id="llama-aot_eager-static"),
        pytest.param(gpt2, "aot_eager", True, id="gpt2-aot_eager-dynamic"),
        # Dynamo makes GPT-2's attention scale a float read by `.item()` in the
        # first piece; inductor cannot return a float from a piece.
        pytest.param(gpt2, "inductor", True, id="gpt2-inductor-dynamic"),
    ],
)
def test_causal_lm_matches_eager(make: Callable[[], Any], piece_backend: str, dynamic: bool) -> None:
    model = make()
    backend = Backend(piece_backend=piece_backend)
    compiled_model = torch.compile(model, backend=backend, dynamic=dynamic)
    lengths = (5, 9) if dynamic else (7,)
    with torch.no_grad():
        for seq in lengths:
            ids = tokens(2, seq)
            torch.testing.assert_close(compiled_model(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-5)
    (stitching,) = backend.compiled
    assert called_pieces(stitching) == SPLIT_TWO_LAYERS


def test_bert_eager_pieces_with_padding_mask() -> None:
    model = bert()
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend, dynamic=True)
    with torch.no_grad():
        for seq in (6, 10):
            ids = tokens(2, seq)
            mask = torch.ones_like(ids)
            mask[1, seq // 2 :] = 0
            out = compiled_model(ids, attention_mask=mask).last_hidden_state
            torch.testing.assert_close(out, model(ids, attention_mask=mask).last_hidden_state, rtol=1e-4, atol=1e-5)
    assert [called_pieces(stitching) for stitching in backend.compiled] == [SPLIT_TWO_LAYERS]


def test_training_step_gradients_match_eager_with_aot_eager_pieces() -> None:
    model = llama().train()
    reference = copy.deepcopy(model)
    backend = Backend(piece_backend="aot_eager")
    compiled_model = torch.compile(model, backend=backend)
    ids = tokens(2, 8)
    loss = compiled_model(ids, labels=ids).loss
    expected = reference(ids, labels=ids).loss
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    for (name, param), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert [called_pieces(stitching) for stitching in backend.compiled] == [SPLIT_TWO_LAYERS]


def test_generate_through_compile_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # transformers deep-copies the CompileConfig, backend included, and passes
    # mode="reduce-overhead": the backend must survive both.
    # generate() sets TOKENIZERS_PARALLELISM=0 for the process when it compiles: scoped to this test.
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "0")
    model = llama()
    ids = tokens(1, 6)
    expected = model.generate(ids, max_new_tokens=5, do_sample=False, cache_implementation="static")
    calls: list[torch.fx.GraphModule] = []
    config = transformers.CompileConfig(backend=astgen.backend(piece_backend=recording(calls)))
    config._compile_all_devices = True
    out = model.generate(ids, max_new_tokens=5, do_sample=False, cache_implementation="static", compile_config=config)
    assert torch.equal(out, expected), (out, expected)
    # The decode step was compiled and split: three pieces around two attentions.
    assert len(calls) == 3


def test_eager_attention_is_not_split_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    model = llama(attn_implementation="eager")
    backend = Backend(piece_backend="eager")
    compiled_model = torch.compile(model, backend=backend)
    ids = tokens(2, 5)
    with caplog.at_level(logging.WARNING, logger="astgen"), torch.no_grad():
        torch.testing.assert_close(compiled_model(ids).logits, model(ids).logits)
    assert [called_pieces(stitching) for stitching in backend.compiled] == [1]
    (record,) = [record for record in caplog.records if record.name == "astgen"]
    assert "ATTENTION_OPS matched no node" in record.getMessage()
    assert "matmul and softmax" in record.getMessage()
