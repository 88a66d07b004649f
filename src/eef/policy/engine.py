"""Batched generation with a transformers model: one ``generate`` call per turn for all live episodes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eef.training.tokenize import end_of_turn_token_ids


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings; ``temperature == 0`` means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64


@dataclass(frozen=True)
class Generation:
    text: str  # decoded up to (not including) the end-of-turn token
    new_tokens: int  # tokens generated, the end-of-turn token included
    finished: bool  # an end-of-turn token was produced within max_new_tokens


class HFGenerator:
    """Generates the next agent turn for a batch of prompts (left-padded, one forward pass per token)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = end_of_turn_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]

    @torch.inference_mode()
    def generate(self, prompts: list[list[int]], sampling: SamplingSettings, seed: int) -> list[Generation]:
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
        greedy = sampling.temperature <= 0
        # Sampling draws from torch's global generator: seed it per call so that a batch is reproducible.
        torch.manual_seed(seed)
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        results = []
        for row in output[:, width:].tolist():
            stop = next((i for i, token in enumerate(row) if token in self.stop_ids), None)
            kept = row if stop is None else row[:stop]
            results.append(
                Generation(
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    new_tokens=len(row) if stop is None else stop + 1,
                    finished=stop is not None,
                )
            )
        return results
