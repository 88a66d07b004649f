"""Which generator rollouts use (the engines are in engine.py and cached_generator.py)."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eef.config import RolloutConfig
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import HFGenerator, TurnGenerator
from eef.policy.models import load_policy, load_tokenizer
from eef.policy.vllm_generator import VLLMGenerator


def make_generator(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prefix_reuse: bool = True, **drafting: int
):
    """The generator rollouts use: with ``prefix_reuse`` no token is encoded twice (the default);
    ``drafting``: ``draft_tokens`` and ``draft_rows`` for :class:`~eef.policy.cached_generator.CachedGenerator`."""
    if prefix_reuse:
        return CachedGenerator(model, tokenizer, **drafting)
    return HFGenerator(model, tokenizer)


def load_generator(checkpoint: Path | str, dtype: str, rollout: RolloutConfig) -> TurnGenerator:
    """The generator of a run's rollouts for ``checkpoint`` (a model folder), as ``rollout`` says: in the run's
    process, or in each of its Ray workers (``eef.cluster``)."""
    if rollout.engine == "vllm":
        return VLLMGenerator(str(checkpoint), load_tokenizer(str(checkpoint)), dtype, rollout.vllm_gpu_memory)
    policy = load_policy(str(checkpoint), dtype=dtype)
    return make_generator(
        policy.model,
        policy.tokenizer,
        prefix_reuse=rollout.prefix_reuse,
        draft_tokens=rollout.draft_tokens,
        draft_rows=rollout.draft_rows,
    )
