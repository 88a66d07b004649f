"""Which generator rollouts use (the engines are in engine.py and cached_generator.py)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import HFGenerator


def make_generator(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prefix_reuse: bool = True, **drafting: int
):
    """The generator rollouts use: with ``prefix_reuse`` no token is encoded twice (the default);
    ``drafting``: ``draft_tokens`` and ``draft_rows`` for :class:`~eef.policy.cached_generator.CachedGenerator`."""
    if prefix_reuse:
        return CachedGenerator(model, tokenizer, **drafting)
    return HFGenerator(model, tokenizer)
