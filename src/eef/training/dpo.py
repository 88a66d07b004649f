"""DPO on ETO's preference pairs (:mod:`eef.methods.eto`), scored on agent turns only, on the transformers Trainer.

A pair is two conversations, prompt + chosen and prompt + rejected. Each is tokenised with
:func:`~eef.policy.tokenize.encode_messages` with every agent turn trained, whatever its stored loss
flag (ETO scores all of them), so a sequence's log probability is the sum over the tokens of its agent
turns and their end-of-turn tokens; the instruction and the observations are context, never scored.
The loss is DPO's sigmoid loss, with no SFT term, per pair::

    -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected))))

The reference is the policy as it was before this training (ETO: the current iteration's starting
model, a frozen copy). Being frozen, its log probabilities are computed once, before the first step,
with the policy itself: no copy of the model is kept, and every step runs one model instead of two.

TRL's DPOTrainer is not used: it tokenises the prompt and a completion itself and scores every
completion token, so the observations inside a multi-turn completion would be scored; masking them
means replacing its collator's ``completion_mask``, an internal of its loss, besides adding TRL and
``datasets`` as dependencies. docs/training.md says more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from transformers import PreTrainedTokenizerBase, Trainer

from eef.config import DPOSettings
from eef.errors import UserError
from eef.policy.models import Policy
from eef.policy.tokenize import IGNORE_INDEX, Encoded, encode_messages
from eef.training.trainer_parts import LogLastStep, ProgressBar, train_and_save, trainer_folder, training_arguments
from eef.types import Message, PreferencePair


class DPOResult(BaseModel):
    losses: list[tuple[int, float]]  # (step, mean DPO loss since the previous entry)
    final_loss: float
    steps: int
    pairs: int  # pairs trained on
    skipped_pairs: int  # pairs with a side left without a scored token after truncation
    scored_tokens: int  # agent tokens of both sides of the trained pairs (once, not per epoch)
    truncated_tokens: int  # dropped from the conversations by truncation
    # Mean over the pairs of log pi(chosen) - log pi(rejected), summed over agent tokens, before
    # training (the reference's) and after.
    margin_before: float
    margin_after: float
    # Share of pairs whose implicit reward margin (the bracket in the loss) is positive after training.
    reward_accuracy: float
    train_seconds: float  # the Trainer's loop
    wall_seconds: float  # tokenising, reference log probabilities, training, scoring and saving


@dataclass(frozen=True)
class EncodedPair:
    chosen: Encoded
    rejected: Encoded


def scored_conversations(pair: PreferencePair) -> tuple[list[Message], list[Message]]:
    """Prompt + chosen and prompt + rejected, with loss on every agent turn of chosen and rejected, nothing else."""
    prompt = [m.model_copy(update={"loss": False}) for m in pair.prompt]

    def scored(turns: list[Message]) -> list[Message]:
        return [m.model_copy(update={"loss": m.role == "assistant"}) for m in turns]

    return [*prompt, *scored(pair.chosen)], [*prompt, *scored(pair.rejected)]


def encode_pair(tokenizer: PreTrainedTokenizerBase, pair: PreferencePair, max_length: int) -> EncodedPair:
    """Ids and labels of both conversations of ``pair``; labels mark the agent turns (see :func:`scored_conversations`).

    Example:
        >>> encoded = encode_pair(policy.tokenizer, pair, max_length=2048)
        >>> policy.tokenizer.decode([t for t in encoded.chosen.labels if t != IGNORE_INDEX])  # chosen agent turns
    """
    chosen, rejected = scored_conversations(pair)
    return EncodedPair(
        chosen=encode_messages(tokenizer, chosen, max_length), rejected=encode_messages(tokenizer, rejected, max_length)
    )


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO's sigmoid loss of each pair, from summed log probabilities (each argument has one entry per pair)."""
    return -F.logsigmoid(beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)))


def summed_log_probs(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's log probability of its labelled tokens (labels equal the ids there, -100 elsewhere), summed.

    Rows must be right-padded: attention then runs causally without a mask, since a real token never
    sees the padding after it. As in SFT (``_LabelledPositionsTrainer``), the vocabulary projection runs
    only where a label is (agent turns are a small share of a trajectory's tokens), inside the forward
    of ``model``: the Trainer's wrapped model in training (mixed precision, DDP's gradient averaging).
    """
    targets = labels[:, 1:]
    labelled = targets != IGNORE_INDEX
    logits = model(input_ids=input_ids, logits_to_keep=F.pad(labelled, (0, 1))).logits.float()
    token_log_probs = -F.cross_entropy(logits, targets[labelled], reduction="none")
    rows = labelled.nonzero()[:, 0]  # each labelled position's row, in the order of the boolean indexing above
    return torch.zeros(len(input_ids), device=token_log_probs.device).index_add(0, rows, token_log_probs)


@dataclass(frozen=True)
class PairCollator:
    """Stacks a batch of pairs as rows [chosen_1..chosen_B, rejected_1..rejected_B], right-padded to one
    length, with the pairs' reference log probabilities (when present) in the same order."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["chosen_input_ids"] for f in features] + [f["rejected_input_ids"] for f in features]
        labels = [f["chosen_labels"] for f in features] + [f["rejected_labels"] for f in features]
        length = max(len(row) for row in ids)
        batch = {
            "input_ids": torch.tensor([row + [self.pad_token_id] * (length - len(row)) for row in ids]),
            "labels": torch.tensor([row + [IGNORE_INDEX] * (length - len(row)) for row in labels]),
        }
        if "reference_chosen" in features[0]:
            reference = [f["reference_chosen"] for f in features] + [f["reference_rejected"] for f in features]
            batch["reference_log_probs"] = torch.tensor(reference)
        return batch


class _DPOTrainer(Trainer):
    """The Trainer with DPO's loss on collated pairs (:class:`PairCollator`)."""

    # The loss is a mean over the micro-batch's pairs: the Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, beta: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta = beta

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # A mean over this process's pairs: DDP averages the processes' gradients, each with as many pairs.
        log_probs = summed_log_probs(model, inputs["input_ids"], inputs["labels"])
        chosen, rejected = log_probs.chunk(2)
        reference_chosen, reference_rejected = inputs["reference_log_probs"].chunk(2)
        return dpo_loss(chosen, rejected, reference_chosen, reference_rejected, self.beta).mean()


def train_dpo(
    policy: Policy,
    pairs: list[PreferencePair],
    settings: DPOSettings,
    beta: float,
    output_dir: Path,
    description: str = "train dpo",
) -> DPOResult:
    """Train ``policy.model`` in place with DPO on ``pairs`` and save it to ``output_dir`` (written all at once).

    Args:
        policy: the model to train; as it is now, it is also the frozen reference.
        pairs: ETO's preference pairs (:func:`eef.methods.eto.build_pairs`).
        settings: learning rate, epochs, batch, ... (:class:`eef.config.DPOSettings`).
        beta: DPO's beta, how far the policy may move from the reference (ETO: 0.1, later 0.5).
        output_dir: the checkpoint folder; the Trainer's logs go to ``<output_dir>.trainer``.
        description: the progress bar's name (steps, loss, time left; stderr).

    Example:
        >>> pairs = build_pairs(rollouts, expert_successes).pairs
        >>> result = train_dpo(load_policy("runs/x/sft/checkpoint"), pairs, DPOSettings(), 0.1, Path("dpo"))
        >>> result.margin_after > result.margin_before

    Raises:
        UserError: no pair keeps a scored token on both sides within ``settings.max_length``.
    """
    began = time.perf_counter()
    output_dir = Path(output_dir)
    encoded = [encode_pair(policy.tokenizer, pair, settings.max_length) for pair in pairs]
    # A side without a scored token has log probability 0 under both models: the pair would teach nothing.
    usable = [e for e in encoded if e.chosen.num_loss_tokens and e.rejected.num_loss_tokens]
    if not usable:
        raise UserError(
            f"none of the {len(pairs)} preference pairs keeps an agent turn on both sides within max_length "
            f"{settings.max_length}: raise max_length"
        )
    # As ETO (and TRL) do: with dropout the policy's log probabilities at the first step would not be the
    # reference's. (Attention dropout set in a model's config is not a module; Llama's is 0.)
    for module in policy.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0

    dataset = [
        {
            "chosen_input_ids": e.chosen.input_ids,
            "chosen_labels": e.chosen.labels,
            "rejected_input_ids": e.rejected.input_ids,
            "rejected_labels": e.rejected.labels,
        }
        for e in usable
    ]
    collator = PairCollator(policy.tokenizer.pad_token_id)
    trainer = _DPOTrainer(
        model=policy.model,
        # The pairs' keys are not arguments of the model's forward: the Trainer must pass them on.
        args=training_arguments(settings, trainer_folder(output_dir), remove_unused_columns=False),
        train_dataset=dataset,
        data_collator=collator,
        callbacks=[LogLastStep(), bar := ProgressBar(description)],
        beta=beta,
    )

    reference = _score(trainer, collator, dataset, settings.batch_size)
    for features, (chosen, rejected) in zip(dataset, reference, strict=True):
        features["reference_chosen"], features["reference_rejected"] = chosen, rejected
    trained = train_and_save(trainer, bar, policy, output_dir)
    after = _score(trainer, collator, dataset, settings.batch_size)

    rewards = [(c - rc) - (r - rr) for (c, r), (rc, rr) in zip(after, reference, strict=True)]
    return DPOResult(
        losses=trained.losses,
        final_loss=trained.losses[-1][1],
        steps=trained.steps,
        pairs=len(usable),
        skipped_pairs=len(encoded) - len(usable),
        scored_tokens=sum(e.chosen.num_loss_tokens + e.rejected.num_loss_tokens for e in usable),
        truncated_tokens=sum(e.chosen.num_truncated_tokens + e.rejected.num_truncated_tokens for e in encoded),
        margin_before=sum(c - r for c, r in reference) / len(reference),
        margin_after=sum(c - r for c, r in after) / len(after),
        reward_accuracy=sum(reward > 0 for reward in rewards) / len(rewards),
        train_seconds=trained.seconds,
        wall_seconds=time.perf_counter() - began,
    )


def _score(
    trainer: Trainer, collator: PairCollator, dataset: list[dict[str, Any]], batch_size: int
) -> list[tuple[float, float]]:
    """(log pi(chosen), log pi(rejected)) of every pair under the model as it is now, in the training's precision."""
    model = trainer.model
    model.eval()
    device = next(model.parameters()).device
    scores: list[tuple[float, float]] = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = collator(dataset[start : start + batch_size])
            with trainer.accelerator.autocast():
                log_probs = summed_log_probs(model, batch["input_ids"].to(device), batch["labels"].to(device))
            chosen, rejected = log_probs.cpu().chunk(2)
            scores.extend(zip(chosen.tolist(), rejected.tolist(), strict=True))
    return scores
