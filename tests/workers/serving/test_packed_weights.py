"""Packed weights: which layers pack, the kernel's products, and the fallbacks (packed.py)."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_models import on_gguf_grid  # noqa: E402
from workers.serving.packed import MAX_PACKED_ROWS, PackedLinear, library, pack_model, pack_q4, pack_q8  # noqa: E402


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    built = library(tmp_path_factory.mktemp("kernels"))
    assert built is not None, "the kernel did not build (a C compiler is part of the test machine)"
    return built


def _layer(out_features: int, in_features: int, bits: int, bias: bool = False) -> torch.nn.Linear:
    torch.manual_seed(out_features + in_features + bits)
    layer = torch.nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(on_gguf_grid(layer.weight, bits))
    return layer


def test_a_weight_on_the_q4_grid_packs_exactly_and_a_plain_one_does_not():
    weight = _layer(48, 96, 4).weight
    nibbles, scales, minimums = pack_q4(weight)
    assert nibbles.shape == (48, 48) and scales.shape == minimums.shape == (48, 3)
    blocks = nibbles.reshape(48, 3, 16)
    levels = torch.cat([blocks & 0x0F, blocks >> 4], dim=-1)  # a block's byte j holds q[j] and q[j + 16]
    rebuilt = levels.float() * scales.float()[..., None] + minimums.float()[..., None]
    assert torch.equal(rebuilt.reshape(48, 96), weight.detach())
    assert pack_q4(torch.randn(48, 96)) is None  # not on any 16-level grid
    assert pack_q4(weight.detach() * 1.001) is None  # scales no longer fp16 numbers, as no GGUF's are
    assert pack_q4(torch.randn(48, 40)) is None  # rows do not split into blocks of 32


def test_a_weight_on_the_q8_grid_packs_exactly_and_q4_does_not_take_it():
    weight = _layer(40, 64, 8).weight
    assert pack_q4(weight) is None
    levels, scales = pack_q8(weight)
    assert levels.dtype == torch.int8
    assert torch.equal((levels.reshape(40, 2, 32).float() * scales.float()[..., None]).reshape(40, 64), weight.detach())
    assert pack_q8(torch.randn(40, 64)) is None


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("rows", [1, 3, 8, 9, MAX_PACKED_ROWS])
def test_the_packed_product_matches_fp32(kernel, bits, rows):
    layer = _layer(72, 128, bits, bias=True)
    packed = PackedLinear(layer, kernel, pack_q4(layer.weight) if bits == 4 else pack_q8(layer.weight))
    x = torch.randn(rows, 1, 128)
    with torch.inference_mode():
        expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
        got = packed(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, torch.zeros_like(got))


def test_many_rows_and_training_take_the_fp32_weight(kernel, monkeypatch):
    layer = _layer(32, 64, 4)
    packed = PackedLinear(layer, kernel, pack_q4(layer.weight))
    calls = []
    monkeypatch.setattr(kernel, "q4_linear", lambda *args: calls.append(args))
    x = torch.randn(MAX_PACKED_ROWS + 1, 64)
    with torch.inference_mode():
        assert torch.equal(packed(x), torch.nn.functional.linear(x, layer.weight))
    trainable = torch.randn(2, 64, requires_grad=True)
    packed(trainable).sum().backward()  # the fp32 path, so gradients flow
    assert trainable.grad is not None
    assert calls == []


def test_pack_model_swaps_only_packable_layers_and_keeps_ties(tmp_path, kernel):
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import build_quantized_chat_model, build_tiny_chat_model

    quantized = AutoModelForCausalLM.from_pretrained(build_quantized_chat_model(tmp_path / "q"), dtype=torch.float32)
    added = pack_model(quantized, kernel_dir=tmp_path / "kernels")
    linears = [module for module in quantized.modules() if isinstance(module, torch.nn.Linear)]
    assert linears and all(type(module) is PackedLinear for module in linears)
    assert added == sum(b.numel() * b.element_size() for m in linears for b in m.buffers())
    assert quantized.lm_head.bits == 8 and quantized.model.layers[0].mlp.up_proj.bits == 4
    assert quantized.lm_head.weight is quantized.model.embed_tokens.weight
    assert "packed_levels" not in "".join(quantized.state_dict())  # never saved with the model

    plain = AutoModelForCausalLM.from_pretrained(build_tiny_chat_model(tmp_path / "plain"), dtype=torch.float32)
    assert pack_model(plain, kernel_dir=tmp_path / "kernels") == 0
    assert not any(isinstance(module, PackedLinear) for module in plain.modules())


def test_without_a_compiler_the_model_stays_on_fp32_weights(tmp_path, monkeypatch, caplog):
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import build_quantized_chat_model

    model = AutoModelForCausalLM.from_pretrained(build_quantized_chat_model(tmp_path / "q"), dtype=torch.float32)
    monkeypatch.setenv("CC", "no-such-compiler")
    with caplog.at_level(logging.WARNING, logger="workers.serving.packed"):
        assert pack_model(model, kernel_dir=tmp_path / "fresh-kernels") == 0
    assert "'no-such-compiler' (CC) is not on PATH" in caplog.text
    assert not any(isinstance(module, PackedLinear) for module in model.modules())
