"""LoRA adapters (PEFT) for parameter-efficient fine-tuning."""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedModel


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    # PEFT's "all-linear": every linear layer of the blocks (attention and MLP), not the output head.
    target_modules: list[str] | str = "all-linear"


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """Freeze ``model`` and add trainable LoRA adapters (initialised from torch's global RNG)."""
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
    )
    return get_peft_model(model, config)
