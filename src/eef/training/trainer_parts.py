"""What SFT and DPO share on the transformers Trainer: the arguments built from our settings, the last
step always logged, the progress bar, and running a training to its saved checkpoint, in one process or
in several (a launcher's DDP: :mod:`eef.training.processes`)."""

from __future__ import annotations

import importlib.util
import sys
import time
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from eef.config import DPOSettings, SFTSettings
from eef.console import progress_bar
from eef.errors import UserError
from eef.policy.models import Policy, save_policy
from eef.training.processes import check_batch_split, process_count


class LogLastStep(TrainerCallback):
    """The Trainer logs every ``logging_steps``; log the last step too so the final loss is always known."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control


class ProgressBar(TrainerCallback):
    """Steps done / total, the latest training loss and the time left, on the bar the other stages show
    (stderr; hidden in quiet mode). It replaces the Trainer's own tqdm bar and printed log dicts."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._opened = ExitStack()
        self._advance = None
        self._status = ""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # one bar, not one per process
            self._advance = self._opened.enter_context(progress_bar(self.description, state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):
        if self._advance:
            self._advance(self._status)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._advance and logs and "loss" in logs:
            self._status = f"step {state.global_step}, loss {logs['loss']:.3f}"
            self._advance(self._status, done=0)

    def close(self) -> None:
        """End the bar, also where training raised (the Trainer then calls no on_train_end)."""
        self._opened.close()


def log_targets(report_to: str) -> list[str]:
    """``report_to`` ("tensorboard", "wandb", "none", or several joined by commas) as the Trainer takes it;
    a logger that is not installed is a UserError."""
    targets = [t.strip() for t in report_to.split(",") if t.strip() and t.strip() != "none"]
    for target in ("tensorboard", "wandb"):  # each logger's package has its name
        if target in targets and importlib.util.find_spec(target) is None:
            raise UserError(f"report_to {target}: the {target} package is not installed (pip install {target})")
    return targets


def training_arguments(settings: SFTSettings | DPOSettings, trainer_dir: Path, **extra: Any) -> TrainingArguments:
    """The Trainer's arguments from ``settings``, on the GPU where there is one, else the CPU; ``extra`` adds
    arguments one kind of training needs. Under a launcher's processes each step's batch of
    ``settings.batch_size`` is split between them, so the steps are those of one process."""
    check_batch_split(settings.batch_size, process_count(), "batch_size")
    bf16 = settings.bf16
    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(trainer_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,  # a value below 1 is a share of the steps
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler,
        max_grad_norm=settings.max_grad_norm,
        seed=settings.seed,
        data_seed=settings.seed,
        # per_device_train_batch_size is then the batch of all processes together, in the order one process
        # draws it. The last batch of an epoch, where it is short, is filled from the epoch's first examples
        # so that every process gets its share (accelerate's even_batches).
        accelerator_config={"split_batches": True},
        # The labelled tokens of a step are counted over all processes: the loss is a mean over them all.
        average_tokens_across_devices=True,
        ddp_find_unused_parameters=False,  # every trained weight takes part in every step
        bf16=bf16,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="no",
        report_to=log_targets(settings.report_to),
        disable_tqdm=True,  # ProgressBar shows the steps
        dataloader_pin_memory=torch.cuda.is_available(),
        # Where load_policy places models (the GPU, else the CPU), also for bf16: true on a CPU.
        use_cpu=not torch.cuda.is_available(),
        **extra,
    )


def trainer_folder(output_dir: Path) -> Path:
    """Where the Trainer training the checkpoint ``output_dir`` logs (``<output_dir>.trainer``)."""
    return output_dir.with_name(output_dir.name + ".trainer")


@dataclass(frozen=True)
class Trained:
    losses: list[tuple[int, float]]  # (step, mean training loss since the previous entry)
    steps: int
    seconds: float  # the Trainer's loop


def train_and_save(trainer: Trainer, bar: ProgressBar, policy: Policy, output_dir: Path) -> Trained:
    """Run ``trainer`` (whose model is ``policy.model``), then save ``policy`` to ``output_dir`` in eval mode:
    under several processes the first saves it and every process returns once it is saved.

    ``bar`` shows the steps and the loss, and is closed also where training raises. Without its tqdm bar
    the Trainer prints every log entry as a dict (hundreds of lines in a run's log): that printer is
    removed, and anything else it prints goes to stderr, since stdout is for results. Its folder
    (:func:`trainer_folder`) is removed where it holds nothing (it only does with report_to, e.g.
    TensorBoard logs)."""
    trainer.remove_callback(PrinterCallback)
    began = time.perf_counter()
    with redirect_stdout(sys.stderr):
        try:
            trainer.train()
        finally:
            bar.close()
    seconds = time.perf_counter() - began
    policy.model.eval()
    if trainer.is_world_process_zero():  # DDP kept every process's weights the same
        save_policy(policy, output_dir)
        folder = trainer_folder(output_dir)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    trainer.accelerator.wait_for_everyone()
    losses = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return Trained(losses=losses, steps=trainer.state.global_step, seconds=seconds)
