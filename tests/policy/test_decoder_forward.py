"""The direct forward through a decoder's layers gives transformers' logits bit for bit."""

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache, GPT2Config, LlamaConfig, Qwen2Config

from eef.policy.decoder_forward import attention_mask, direct_forward, supports_direct_forward

SIZES = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def _model(config):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


@pytest.mark.parametrize(
    "config",
    [LlamaConfig(**SIZES, num_key_value_heads=2), Qwen2Config(**SIZES, num_key_value_heads=2)],
    ids=["llama", "qwen2"],
)
@torch.inference_mode()
def test_direct_forward_equals_the_model_with_padding_and_a_cache(config):
    model = _model(config)
    assert supports_direct_forward(model)
    # Three rows, left-padded to 6 tokens (one with a hole inside: a cached prefix, then new tokens).
    columns = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    input_ids = torch.randint(1, 97, (3, 6)) * columns
    positions = (columns.long().cumsum(dim=1) - 1).clamp(min=0)
    ours, theirs = DynamicCache(config=config), DynamicCache(config=config)
    expected = model(
        input_ids=input_ids, attention_mask=columns, position_ids=positions, cache=theirs, logits_to_keep=1
    ).logits[:, -1]
    got = direct_forward(model, input_ids, positions, attention_mask(columns, 0, 6), ours, "cache")[:, -1]
    assert torch.equal(got, expected)
    # Three decode steps on top of both caches.
    for step in range(3):
        columns = torch.cat([columns, columns.new_ones((3, 1))], dim=1)
        token = torch.randint(1, 97, (3, 1))
        position = positions[:, -1:] + step + 1
        expected = model(
            input_ids=token, attention_mask=columns, position_ids=position, cache=theirs, logits_to_keep=1
        ).logits[:, -1]
        mask = attention_mask(columns, columns.shape[1] - 1, 1)
        assert torch.equal(direct_forward(model, token, position, mask, ours, "cache")[:, -1], expected)


@pytest.mark.parametrize("config", [LlamaConfig(**SIZES, num_key_value_heads=2)], ids=["llama-gqa"])
@torch.inference_mode()
def test_an_unpadded_row_attends_without_a_mask_as_in_the_model(config):
    """Without padding transformers passes SDPA no mask (and, for grouped heads, SDPA groups them
    itself), whose last bits differ from a masked call's: the direct forward must choose the same."""
    model = _model(config)
    input_ids = torch.randint(1, 97, (1, 40))
    positions = torch.arange(40)[None]
    columns = torch.ones((1, 40), dtype=torch.bool)
    ours, theirs = DynamicCache(config=config), DynamicCache(config=config)
    expected = model(input_ids=input_ids, position_ids=positions, cache=theirs, logits_to_keep=1).logits[:, -1]
    assert attention_mask(columns, 0, 40, padded=False) is None
    mask = attention_mask(columns, 0, 40, padded=False)
    got = direct_forward(model, input_ids, positions, mask, ours, "cache")[:, -1]
    assert torch.equal(got, expected)
    for step in range(3):
        token, position = torch.randint(1, 97, (1, 1)), torch.tensor([[40 + step]])
        expected = model(input_ids=token, position_ids=position, cache=theirs, logits_to_keep=1).logits[:, -1]
        mask = attention_mask(torch.ones((1, 41 + step), dtype=torch.bool), 40 + step, 1, padded=False)
        assert torch.equal(direct_forward(model, token, position, mask, ours, "cache")[:, -1], expected)


def test_attention_mask_is_causal_over_the_real_columns():
    columns = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 1]], dtype=torch.bool)
    mask = attention_mask(columns, past=2, queries=2)
    assert mask.shape == (2, 1, 2, 4)
    assert mask[0, 0].tolist() == [[False, True, True, False], [False, True, True, True]]
    assert mask[1, 0].tolist() == [[True, True, False, False], [True, True, False, True]]


def test_other_decoders_take_the_models_own_forward():
    sliding = Qwen2Config(**SIZES, use_sliding_window=True, sliding_window=8, max_window_layers=0)
    assert not supports_direct_forward(_model(sliding))
    assert not supports_direct_forward(_model(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=97)))
