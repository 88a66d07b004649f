"""Agent turns from vLLM, an optional engine for GPUs (``rollout.engine: vllm``).

UNTESTED HERE: vllm is not installed on this project's machines (no GPU in CI; the GPU image lent once has none).
It is written against vLLM's documented offline API (``LLM``, ``SamplingParams``, ``TokensPrompt``)
and kept behind the same ``TurnGenerator`` contract as the in-house engines, which stay the default.

vLLM's automatic prefix caching plays the part of our prefix store: the turns of one episode and the
restarts of one expert trajectory share token prefixes, whose key/value blocks it keeps and reuses;
``num_cached_tokens`` of each request tells how many prompt tokens it did not compute.
"""

from __future__ import annotations

import importlib.util

import torch
from transformers import PreTrainedTokenizerBase

from eef.config import SamplingConfig
from eef.errors import UserError
from eef.policy.engine import Generation, decode_generation, stop_and_pad_ids


def check_vllm_available() -> None:
    """Raise a user error, before any work is done, when ``rollout.engine: vllm`` cannot run here."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError("rollout.engine is vllm but vllm is not installed: pip install vllm, or use engine: hf")
    if not torch.cuda.is_available():
        raise UserError("rollout.engine is vllm, which needs a CUDA GPU and none is visible: use engine: hf")


class VLLMGenerator:
    """Generates agent turns with vLLM from a checkpoint folder (a Hugging Face model folder).

    ``gpu_memory_share``: the share of GPU memory vLLM may take for weights and key/value blocks;
    the rest stays for the training process that shares the GPU.
    """

    def __init__(self, checkpoint: str, tokenizer: PreTrainedTokenizerBase, dtype: str, gpu_memory_share: float):
        check_vllm_available()
        from vllm import LLM

        self.tokenizer = tokenizer
        self.stop_ids, _ = stop_and_pad_ids(tokenizer)
        # Prompts arrive as token ids and replies are decoded here, with the same tokenizer as the
        # other engines: vLLM needs no tokenizer of its own.
        self.llm = LLM(
            model=checkpoint,
            skip_tokenizer_init=True,
            dtype=dtype,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_share,
        )

    def release(self, key: str) -> None:
        """vLLM evicts cached blocks itself (least recently used first)."""

    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int], keys: list[str] | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        greedy = sampling.temperature <= 0
        # Each request with its own seed (vLLM's per-request generator): reproducible whatever order
        # vLLM schedules requests in, though not the same draws as the in-house engines' noise.
        parameters = [
            SamplingParams(
                temperature=0.0 if greedy else sampling.temperature,
                top_p=1.0 if greedy else sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop_token_ids=self.stop_ids,
                seed=None if greedy else seed,
                detokenize=False,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts], parameters, use_tqdm=False
        )
        generations = []
        for prompt, output in zip(prompts, outputs, strict=True):
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            # Whether vLLM keeps the stop token in token_ids has changed between versions; the turn
            # ended on one when finish_reason is "stop" (no stop strings are set).
            if completion.finish_reason == "stop" and (not tokens or tokens[-1] not in self.stop_ids):
                tokens.append(self.stop_ids[0])
            cached = getattr(output, "num_cached_tokens", None) or 0
            generations.append(decode_generation(self.tokenizer, tokens, self.stop_ids, prefilled=len(prompt) - cached))
        return generations
