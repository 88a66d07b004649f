"""Supervised fine-tuning on trajectories (loss on the agent's trained turns only), on the transformers Trainer."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PeftModel
from pydantic import BaseModel, computed_field
from transformers import DataCollatorForSeq2Seq, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from eef.config import SFTSettings
from eef.errors import UserError
from eef.policy.lora import apply_lora
from eef.policy.models import Policy
from eef.policy.tokenize import IGNORE_INDEX, encode_messages
from eef.training.trainer_parts import LogLastStep, ProgressBar, train_and_save, trainer_folder, training_arguments
from eef.types import Trajectory


class SFTResult(BaseModel):
    losses: list[tuple[int, float]]  # (step, mean training loss since the previous entry)
    final_loss: float
    steps: int
    examples: int
    skipped_examples: int  # trajectories with no trained token left after truncation
    loss_tokens: int  # tokens with loss, over all epochs (per-epoch count x epochs)
    total_tokens: int  # input tokens without padding, over all epochs
    truncated_tokens: int  # dropped from the data by truncation (once, not per epoch)
    train_seconds: float  # the Trainer's loop
    wall_seconds: float  # tokenising, training and saving

    @computed_field
    @property
    def tokens_per_second(self) -> float:
        return self.total_tokens / self.train_seconds if self.train_seconds else 0.0


class _LabelledPositionsTrainer(Trainer):
    """Projects onto the vocabulary only where a label is. Agent turns are a small share of a
    trajectory's tokens, and the vocabulary projection is a large share of a small model's compute
    (half of the tiny model's with its product-id tokens), so this roughly halves its training time."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs["labels"][:, 1:]
        labelled = targets != IGNORE_INDEX
        # The model's own forward projects the positions a boolean mask keeps (position i predicts token
        # i + 1). Called through ``model``, which the Trainer wraps: accelerate's mixed precision wraps
        # its forward, and under several processes DDP's forward is what makes backward average the
        # processes' gradients (the decoder called directly would train each process on its own).
        logits = model(
            input_ids=inputs["input_ids"],
            attention_mask=_mask_unless_right_padded(inputs["attention_mask"]),
            logits_to_keep=F.pad(labelled, (0, 1)),
        ).logits.float()
        loss = F.cross_entropy(logits, targets[labelled], reduction="sum")
        if num_items_in_batch is None:
            return loss / labelled.sum()
        # The Trainer passes the labelled-token count of all micro-batches of the step (and then does not
        # divide by the accumulation steps itself), summed over the processes (average_tokens_across_devices);
        # DDP then averages the processes' gradients, so each process's sum counts times their number: the
        # step's gradient is that of the mean over all its labelled tokens, however many processes share it.
        return loss / num_items_in_batch * self.accelerator.num_processes

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            # Its order would come from torch's global generator, which dropout (LoRA's) draws from as much as
            # each process's share of a batch asks: from the second epoch on, processes would disagree on the
            # order, and so train some examples twice and others never. A generator of its own keeps them in step.
            sampler.generator = torch.Generator().manual_seed(self.args.data_seed)
        return sampler


def _mask_unless_right_padded(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """None where every row's padding follows its tokens: a token then attends causally to real
    tokens only, so the mask changes nothing the loss reads (padded positions carry no label), and
    without it attention runs causally (SDPA skips the blocks above the diagonal: on CPU the tiny
    model's SFT steps take ~20% less time, docs/performance.md). Left-padded batches keep the mask."""
    right_padded = bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
    return None if right_padded else attention_mask


def train_sft(
    policy: Policy,
    trajectories: list[Trajectory],
    settings: SFTSettings,
    output_dir: Path,
    description: str = "train",
) -> SFTResult:
    """Train ``policy.model`` in place on ``trajectories`` and save it to ``output_dir`` (written all at once).

    With ``settings.lora`` the model gets LoRA adapters (unless it has them already), which are merged
    into the weights before saving: afterwards ``policy.model`` is the merged plain model.
    A progress bar named ``description`` (steps, loss, time left) goes to stderr.
    """
    began = time.perf_counter()
    output_dir = Path(output_dir)
    encoded = [encode_messages(policy.tokenizer, t.messages, settings.max_length) for t in trajectories]
    # A sequence without labels adds nothing but a NaN risk (0/0 loss) when a whole batch is like it.
    usable = [e for e in encoded if e.num_loss_tokens > 0]
    if not usable:
        raise UserError(
            f"none of the {len(trajectories)} trajectories has a trained agent turn within max_length "
            f"{settings.max_length}: check the loss flags or raise max_length"
        )
    if settings.lora is not None and not isinstance(policy.model, PeftModel):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            policy.model = apply_lora(policy.model, settings.lora)

    trainer = _LabelledPositionsTrainer(
        model=policy.model,
        args=training_arguments(
            settings,
            trainer_folder(output_dir),
            train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        ),
        train_dataset=[{"input_ids": e.input_ids, "labels": e.labels} for e in usable],
        data_collator=DataCollatorForSeq2Seq(policy.tokenizer, label_pad_token_id=IGNORE_INDEX),
        processing_class=policy.tokenizer,
        callbacks=[LogLastStep(), bar := ProgressBar(description)],
    )
    trained = train_and_save(trainer, bar, policy, output_dir)
    return SFTResult(
        losses=trained.losses,
        final_loss=trained.losses[-1][1],
        steps=trained.steps,
        examples=len(usable),
        skipped_examples=len(encoded) - len(usable),
        loss_tokens=round(settings.epochs * sum(e.num_loss_tokens for e in usable)),
        total_tokens=round(settings.epochs * sum(len(e.input_ids) for e in usable)),
        truncated_tokens=sum(e.num_truncated_tokens for e in encoded),
        train_seconds=trained.seconds,
        wall_seconds=time.perf_counter() - began,
    )
