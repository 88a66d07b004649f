"""Loading and saving policies: the built-in tiny model, SmolLM2-135M, or any Hugging Face folder or id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from eef.config import LoraSettings
from eef.errors import UserError
from eef.policy.folders import atomic_directory
from eef.policy.lora import apply_lora
from eef.policy.smollm2 import smollm2_folder
from eef.policy.tiny import build_tiny_model, build_tiny_tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Policy:
    """A causal LM and its tokenizer (with a chat template and a pad token). ``name``: what was loaded."""

    model: PreTrainedModel | PeftModel
    tokenizer: PreTrainedTokenizerBase
    name: str


def resolve_dtype(name: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, else float32 (CPUs train float32 faster and exactly)."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if name not in _DTYPES:
        raise UserError(f"dtype {name!r}: use auto, {', '.join(_DTYPES)}")
    return _DTYPES[name]


def training_dtype(name: str) -> str:
    """The dtype to load weights in for training: ``auto`` means float32 master weights, with the
    Trainer's bf16 autocast on GPUs that have it (pure bf16 weights lose small updates)."""
    return "float32" if name == "auto" else name


def load_policy(
    spec: str,
    *,
    tokenizer_texts: Iterable[str] | None = None,
    tokenizer_terms: Iterable[str] = (),
    dtype: str = "auto",
    lora: LoraSettings | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Policy:
    """``spec``: ``tiny`` (built from ``tokenizer_texts`` with ``tokenizer_terms`` as single tokens,
    initialised from ``seed``), ``smollm2-135m``,
    or a local Hugging Face folder (checkpoints written by :func:`save_policy` included) or hub id.

    ``lora`` wraps the model in fresh LoRA adapters. ``device`` ``auto``: the GPU when there is one.
    """
    torch_dtype = resolve_dtype(dtype)
    if spec == "tiny":
        if tokenizer_texts is None:
            raise UserError("the tiny model builds its tokenizer from the environment's text: pass tokenizer_texts")
        tokenizer = build_tiny_tokenizer(tokenizer_texts, tokenizer_terms)
        model = build_tiny_model(tokenizer, seed=seed).to(torch_dtype)
    else:
        source = str(smollm2_folder()) if spec == "smollm2-135m" else spec
        tokenizer, model = _from_pretrained(source, torch_dtype)
    _check_tokenizer(tokenizer, spec)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    if lora is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = apply_lora(model, lora)
    return Policy(model=model, tokenizer=tokenizer, name=spec)


def load_tokenizer(folder: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a checkpoint folder, prepared as :func:`load_policy` prepares it (for engines
    that load the weights themselves)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    _check_tokenizer(tokenizer, folder)
    return tokenizer


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase, spec: str) -> None:
    if tokenizer.chat_template is None:
        raise UserError(f"model {spec!r} has no chat template: use an instruct/chat model or add one to its tokenizer")
    if tokenizer.pad_token is None:
        # Padding positions are masked out everywhere, so any token serves; eos is the usual choice.
        tokenizer.pad_token = tokenizer.eos_token


def _from_pretrained(source: str, dtype: torch.dtype) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    path = Path(source).expanduser()
    looks_local = path.exists() or source.startswith((".", "/", "~"))
    if looks_local and not (path / "config.json").is_file():
        raise UserError(f"model {source!r}: no Hugging Face model folder there (no config.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path if looks_local else source)
        model = AutoModelForCausalLM.from_pretrained(path if looks_local else source, dtype=dtype)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "the folder" if looks_local else "not a local folder, and the Hugging Face hub"
        raise UserError(f"model {source!r}: {where} failed to load: {reason}") from None
    return tokenizer, model


def save_policy(policy: Policy, directory: Path) -> None:
    """Write ``policy`` as a Hugging Face folder (safetensors + tokenizer), all at once.

    LoRA adapters are merged into the weights first (``policy.model`` becomes the merged model), so
    every checkpoint is a plain model that :func:`load_policy` and any generation engine load as is.
    """
    if isinstance(policy.model, PeftModel):
        policy.model = policy.model.merge_and_unload()
    with atomic_directory(Path(directory)) as staging:
        policy.model.save_pretrained(staging)
        policy.tokenizer.save_pretrained(staging)
