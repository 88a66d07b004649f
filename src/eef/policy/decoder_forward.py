"""One forward pass through a decoder's own layers, with an attention mask built once by the caller.

The generation engine calls the model once per decode step, and for a small model transformers'
work around the layers (turning a 2D padding mask into a 4D one, output records, wrappers) is a
good part of a step: for the default ``tiny`` on CPU a step takes 1.2-1.7x as long through
``model(...)`` at 1 row, 1.0-1.1x at 64 (``benchmarks/decode_forward.py``). This module runs the
same modules in the same order (the embedding, the rotary embedding, each decoder layer, the final
norm, the head) with a boolean 4D mask the caller keeps up to date, and passes no mask where
transformers would pass none, so the logits are those of ``model(...)`` bit for bit (tests check).
Only decoders whose top-level forward is exactly that sequence qualify (:data:`DIRECT_MODEL_TYPES`);
any other model takes ``model(...)``.
"""

from __future__ import annotations

import torch
from transformers import Cache, PreTrainedModel

# Architectures whose top-level forward is embed -> rotary -> layers (all full attention) -> norm -> head,
# with nothing in between (no embedding scale, no soft-capping, no per-layer masks).
DIRECT_MODEL_TYPES = frozenset({"llama", "qwen2"})


def supports_direct_forward(model: PreTrainedModel) -> bool:
    """Whether :func:`direct_forward` computes exactly what ``model(...)`` does for this model."""
    config = model.config
    inner = getattr(model, "model", None)
    return (
        config.model_type in DIRECT_MODEL_TYPES
        and all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])
        and all(hasattr(inner, part) for part in ("embed_tokens", "rotary_emb", "layers", "norm"))
        and hasattr(model, "lm_head")
    )


def attention_mask(columns: torch.Tensor, past: int, queries: int, padded: bool = True) -> torch.Tensor | None:
    """The 4D boolean mask ``[rows, 1, queries, past + queries]`` for ``queries`` new tokens after
    ``past`` cached columns: a query sees the real columns (``columns[row]``, True where a token is)
    up to and including its own.

    None, as transformers decides for SDPA, when no column is padding (``padded`` False: the caller
    knows it without reading the device) and either one token is fed or nothing is cached: the
    layers then attend causally without a mask, through other kernels (for grouped-query heads,
    SDPA's own grouping instead of folded queries), whose last bits differ."""
    if not padded and (queries == 1 or past == 0):
        return None
    column = torch.arange(columns.shape[1], device=columns.device)
    query = torch.arange(past, past + queries, device=columns.device)
    return columns[:, None, None, :] & (column <= query[:, None])[None, None]


def direct_forward(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor | None,
    cache: Cache,
    cache_argument: str,
    logits_to_keep: int = 1,
) -> torch.Tensor:
    """The logits (float32, ``[rows, logits_to_keep, vocabulary]``) of the last ``logits_to_keep``
    positions of ``input_ids`` ``[rows, queries]`` at ``positions``, the cache extended by their keys
    and values; ``mask`` as :func:`attention_mask` builds it."""
    inner = model.model
    hidden = inner.embed_tokens(input_ids)
    rotary = inner.rotary_emb(hidden, position_ids=positions)
    for layer in inner.layers:
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_ids=positions,
            position_embeddings=rotary,
            use_cache=True,
            **{cache_argument: cache},
        )
    # The norm over every position, as the model does: on the last position alone its sums may round otherwise.
    return model.lm_head(inner.norm(hidden)[:, -logits_to_keep:]).float()
