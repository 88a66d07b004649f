"""What the benchmark scripts share: randomly initialised models of a named shape, loading any
``--model``, ``--rows`` lists, the machine's name, and one-line errors for bad input.

Throughput depends on the shape, not on trained weights, and a shape needs nothing downloaded or
carried to a GPU machine but SmolLM2's tokenizer (a few MB, from the eef cache). Both are Llamas
with SmolLM2's tokenizer (49,152 tokens):

- ``135m``: SmolLM2-135M's own configuration (0.13B parameters).
- ``0.5b``: Qwen2.5-0.5B's transformer (151,936 tokens there, so ~0.40B parameters here instead of 0.49B).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from eef.allocator import keep_freed_memory
from eef.envs.base import Suite
from eef.errors import UserError
from eef.policy.models import Policy, load_policy, load_tokenizer, resolve_dtype
from eef.policy.smollm2 import smollm2_folder
from eef.policy.tiny import environment_text
from eef.types import Trajectory

SHAPES = {
    "135m": dict(
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        rope_parameters={"rope_type": "default", "rope_theta": 100_000.0},
    ),
    "0.5b": dict(
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    ),
}


def shaped_policy(shape: str, dtype: torch.dtype, seed: int = 0) -> Policy:
    """A ``shape`` model in ``dtype`` on the GPU when there is one, initialised from ``seed``."""
    if shape not in SHAPES:
        raise UserError(f"unknown shape {shape!r}: use one of {', '.join(f'shape:{name}' for name in SHAPES)}")
    tokenizer = load_tokenizer(str(smollm2_folder()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="sdpa",
        **SHAPES[shape],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(dtype).to("cuda" if torch.cuda.is_available() else "cpu")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return Policy(model=model, tokenizer=tokenizer, name=f"shape:{shape}")


def benchmark_policy(spec: str) -> Policy:
    """``shape:NAME`` in the dtype runs use (bfloat16 on a GPU), or anything :func:`load_policy` takes."""
    if spec.startswith("shape:"):
        return shaped_policy(spec.removeprefix("shape:"), resolve_dtype("auto"))
    return load_policy(spec)


def environment_policy(spec: str, suite: Suite, trajectories: Iterable[Trajectory]) -> Policy:
    """``spec`` as a run loads it: ``tiny`` with a tokenizer built from the environment's text (its instruction
    and ``trajectories``) and its single-token terms; anything else as :func:`load_policy` takes it."""
    texts = environment_text(suite.instruction, trajectories) if spec == "tiny" else None
    return load_policy(spec, tokenizer_texts=texts, tokenizer_terms=suite.atomic_terms())


def batch_sizes(text: str) -> list[int]:
    """``--rows`` as an argparse type: comma-separated batch sizes ("1,8,64")."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated numbers, not {text!r}") from None


def machine() -> str:
    """What the benchmark runs on, for its header: the GPU's name, else the CPU and torch's threads."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"


def run_script(main: Callable[[], None]) -> None:
    """``main()``, ending with one line instead of a traceback on bad input (a wrong --model, say).
    Memory is kept for reuse as ``eef`` keeps it (every engine measured runs in this one process)."""
    keep_freed_memory()
    try:
        main()
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
