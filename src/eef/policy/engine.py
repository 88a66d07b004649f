"""Generating agent turns: the result, the contract, and the plain batched generator.

Two generators share one contract (``TurnGenerator``): :class:`HFGenerator` encodes every prompt
afresh each call (one transformers ``generate`` for the batch); :class:`~eef.policy.cached_generator.
CachedGenerator` keeps each conversation's keys and values between calls.
:func:`eef.policy.generators.make_generator` picks. The sampling settings are :class:`eef.config.SamplingConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from eef.config import SamplingConfig
from eef.policy.sampling import choose_tokens
from eef.policy.tokenize import end_of_turn_token_ids


@dataclass(frozen=True)
class Generation:
    text: str  # decoded up to (not including) the end-of-turn token
    new_tokens: int  # tokens generated, the end-of-turn token included
    finished: bool  # an end-of-turn token was produced within max_new_tokens
    prefilled_tokens: float = 0.0  # prompt tokens run through the model for this turn (shared ones split)


class TurnGenerator(Protocol):
    tokenizer: PreTrainedTokenizerBase

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int], keys: list[str] | None = None
    ) -> list[Generation]:
        """The next turn for each prompt; ``seeds[i]`` drives prompt i's sampling (the same prompt and
        seed give the same turn in any batch), ``keys`` name the conversations (for generators that cache)."""
        ...

    def release(self, key: str) -> None:
        """The conversation ``key`` has ended."""
        ...


def stop_and_pad_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], int]:
    stop_ids = end_of_turn_token_ids(tokenizer)
    return stop_ids, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]


def decode_generation(
    tokenizer: PreTrainedTokenizerBase, tokens: list[int], stop_ids: list[int], prefilled: float
) -> Generation:
    stop = next((i for i, token in enumerate(tokens) if token in stop_ids), None)
    kept = tokens if stop is None else tokens[:stop]
    return Generation(
        text=tokenizer.decode(kept, skip_special_tokens=True),
        new_tokens=len(tokens) if stop is None else stop + 1,
        finished=stop is not None,
        prefilled_tokens=prefilled,
    )


class _RowSeededChoice(LogitsProcessor):
    """Scores whose argmax is :func:`~eef.policy.sampling.choose_tokens`' choice: the chosen token
    at 0, every other at -inf (greedy decoding passes through unchanged)."""

    def __init__(self, sampling: SamplingConfig, seeds: torch.Tensor, prompt_width: int):
        self.sampling, self.seeds, self.prompt_width = sampling, seeds, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.sampling.temperature <= 0:
            return scores
        steps = torch.full_like(self.seeds, input_ids.shape[1] - self.prompt_width)
        chosen = choose_tokens(scores, self.sampling, self.seeds, steps)
        return torch.full_like(scores, float("-inf")).scatter(-1, chosen[:, None], 0.0)


class HFGenerator:
    """Generates the next agent turn for a batch of prompts (left-padded, one forward pass per token),
    encoding each prompt in full every call: what ETO- and AgentGym-style exploration does."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids, self.pad_id = stop_and_pad_ids(tokenizer)

    def release(self, key: str) -> None:
        """Nothing is kept between calls."""

    @torch.inference_mode()
    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int], keys: list[str] | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        self.model.eval()
        device = self.model.device
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention[row, width - len(prompt) :] = 1
        # transformers samples a batch from one generator; instead each row's token is chosen with its
        # own seed's noise (eef.policy.sampling) and generate takes the argmax of what that returns.
        chooser = _RowSeededChoice(sampling, torch.tensor(seeds, device=device), prompt_width=width)
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            do_sample=False,
            logits_processor=LogitsProcessorList([chooser]),
            temperature=None,  # the model's own sampling defaults would warn beside do_sample=False
            top_p=None,
            top_k=None,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        return [
            decode_generation(self.tokenizer, row, self.stop_ids, prefilled=len(prompt))
            for row, prompt in zip(output[:, width:].tolist(), prompts, strict=True)
        ]
