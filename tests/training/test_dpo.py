"""DPO on ETO pairs with the tiny model: which tokens are scored, the loss against a hand computation,
and a few steps that raise the chosen-minus-rejected margin."""

import math

import pytest
import torch
from tests.policy.test_tokenize import trained_runs
from transformers import TrainingArguments

from eef.config import DPOSettings
from eef.errors import UserError
from eef.methods.eto import build_pairs
from eef.policy.models import Policy, load_policy
from eef.policy.tokenize import IGNORE_INDEX
from eef.react import format_turn
from eef.training.dpo import PairCollator, _DPOTrainer, encode_pair, train_dpo
from eef.types import Message, PreferencePair, Trajectory

SYSTEM = "You are a shopping agent. Answer with 'Thought: ...' then 'Action: ...'."
GOALS = [("red hat", "B017"), ("blue shoes", "B042"), ("green scarf", "B311")]


def _trajectory(task: int, who: str, actions: list[str], reward: float) -> Trajectory:
    item, _ = GOALS[task]
    messages = [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=f"WebShop [SEP] Instruction: [SEP] i want a {item} [SEP] Search"),
    ]
    for turn, action in enumerate(actions):
        # The stored loss flags differ between the sides (rollouts are stored untrained): DPO scores all agent turns.
        messages.append(Message(role="assistant", content=format_turn(f"Step {turn}.", action), loss=who == "expert"))
        messages.append(Message(role="user", content=f"Page {turn + 1} [SEP] {item} [SEP] B000 [SEP] a box"))
    return Trajectory(
        id=f"{who}/{task}",
        env="shop",
        task_id=str(task),
        messages=messages,
        reward=reward,
        success=reward == 1.0,
        origin=f"{who}:test",
        termination="success" if reward == 1.0 else "done",
        num_actions=len(actions),
        seed=0,
    )


def _pairs() -> list[PreferencePair]:
    experts = [
        _trajectory(i, "expert", [f"search[{item}]", f"click[{pid}]"], 1.0) for i, (item, pid) in enumerate(GOALS)
    ]
    rollouts = [
        _trajectory(i, "policy", ["search[something]", "click[B000]", "click[< Prev]"], 0.0) for i in range(len(GOALS))
    ]
    return build_pairs(rollouts, experts).pairs


PAIRS = _pairs()
TEXTS = [m.content for pair in PAIRS for m in [*pair.prompt, *pair.chosen, *pair.rejected]]


def tiny(seed: int = 0) -> Policy:
    return load_policy("tiny", tokenizer_texts=TEXTS, seed=seed)


def plain_log_prob(model, input_ids: list[int], labels: list[int]) -> float:
    """log p(labelled tokens) from one plain forward pass of the whole model, one sequence, no padding."""
    with torch.no_grad():
        logits = model(torch.tensor([input_ids])).logits[0].double()
    log_probs = logits.log_softmax(-1)
    return sum(log_probs[t - 1, labels[t]].item() for t in range(1, len(labels)) if labels[t] != IGNORE_INDEX)


def pair_log_probs(model, tokenizer, pair: PreferencePair) -> tuple[float, float]:
    encoded = encode_pair(tokenizer, pair, max_length=1024)
    return (
        plain_log_prob(model, encoded.chosen.input_ids, encoded.chosen.labels),
        plain_log_prob(model, encoded.rejected.input_ids, encoded.rejected.labels),
    )


def test_the_scored_tokens_are_exactly_the_agent_turns_of_both_sides():
    policy = tiny()
    pair = PAIRS[0]
    assert pair.expert_side == "chosen" and not any(m.loss for m in pair.rejected)
    encoded = encode_pair(policy.tokenizer, pair, max_length=1024)
    for side, turns in ((encoded.chosen, pair.chosen), (encoded.rejected, pair.rejected)):
        expected = [m.content + "<|end|>" for m in turns if m.role == "assistant"]
        assert trained_runs(policy.tokenizer, side.labels) == expected
    # After collation: chosen rows first, then rejected, right-padded without labels.
    other = encode_pair(policy.tokenizer, PAIRS[1], 1024)
    batch = PairCollator(policy.tokenizer.pad_token_id)([_features(encoded), _features(other)])
    rows = [encoded.chosen, other.chosen, encoded.rejected, other.rejected]
    assert len({len(row.input_ids) for row in rows}) > 1  # padding is exercised
    for row, (ids, labels) in zip(
        rows, zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True), strict=True
    ):
        padding = len(ids) - len(row.input_ids)
        assert ids == row.input_ids + [policy.tokenizer.pad_token_id] * padding
        assert labels == row.labels + [IGNORE_INDEX] * padding


def _features(encoded, reference: tuple[float, float] | None = None) -> dict:
    features = {
        "chosen_input_ids": encoded.chosen.input_ids,
        "chosen_labels": encoded.chosen.labels,
        "rejected_input_ids": encoded.rejected.input_ids,
        "rejected_labels": encoded.rejected.labels,
    }
    if reference is not None:
        features["reference_chosen"], features["reference_rejected"] = reference
    return features


def test_the_loss_of_a_batch_equals_a_hand_computation_from_two_models(tmp_path):
    reference, policy = tiny(seed=0), tiny(seed=1)  # same tokenizer, other weights
    beta = 0.5
    features, expected = [], []
    for pair in PAIRS[:2]:  # two pairs of different lengths: padding must not count
        ref_chosen, ref_rejected = pair_log_probs(reference.model, reference.tokenizer, pair)
        pi_chosen, pi_rejected = pair_log_probs(policy.model, policy.tokenizer, pair)
        logit = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))
        expected.append(-math.log(1 / (1 + math.exp(-logit))))
        features.append(_features(encode_pair(policy.tokenizer, pair, 1024), (ref_chosen, ref_rejected)))
    batch = PairCollator(policy.tokenizer.pad_token_id)(features)
    trainer = _DPOTrainer(
        model=policy.model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"), beta=beta
    )
    with torch.no_grad():
        loss = trainer.compute_loss(policy.model, batch)
    assert loss.item() == pytest.approx(sum(expected) / 2, abs=1e-4)
    assert abs(sum(expected) / 2 - math.log(2)) > 0.01  # the two models differ: not the trivial loss


def test_a_few_steps_raise_the_chosen_margin(tmp_path):
    policy = tiny()
    before = [pair_log_probs(policy.model, policy.tokenizer, pair) for pair in PAIRS]
    settings = DPOSettings(
        learning_rate=1e-3, epochs=4, batch_size=3, warmup_ratio=0.0, logging_steps=1, report_to="none"
    )
    result = train_dpo(policy, PAIRS, settings, 0.5, tmp_path / "checkpoint")

    assert result.steps == 4 and result.pairs == 3 and result.skipped_pairs == 0
    # The reference is the policy before training: the first step's loss is -log sigmoid(0).
    assert result.losses[0] == (1, pytest.approx(math.log(2), abs=1e-4))
    assert result.final_loss < math.log(2) and result.reward_accuracy == 1.0
    assert result.margin_after > result.margin_before
    # Independently, with plain forward passes of the saved checkpoint.
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    after = [pair_log_probs(reloaded.model, reloaded.tokenizer, pair) for pair in PAIRS]
    margins_before = [c - r for c, r in before]
    margins_after = [c - r for c, r in after]
    assert all(a > b for a, b in zip(margins_after, margins_before, strict=True))
    assert result.margin_before == pytest.approx(sum(margins_before) / 3, abs=1e-3)
    assert result.margin_after == pytest.approx(sum(margins_after) / 3, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # report_to none: no Trainer folder left


def test_pairs_without_a_scored_token_within_max_length_are_skipped(tmp_path):
    long_prompt = [PAIRS[0].prompt[0], Message(role="user", content="filler " * 300)]
    cut = PAIRS[0].model_copy(update={"prompt": long_prompt})
    settings = DPOSettings(epochs=1, batch_size=2, max_length=150, report_to="none")
    result = train_dpo(tiny(), [*PAIRS, cut], settings, 0.1, tmp_path / "checkpoint")
    assert result.pairs == 3 and result.skipped_pairs == 1 and result.truncated_tokens > 0
    with pytest.raises(UserError, match="max_length"):
        train_dpo(tiny(), [cut], settings, 0.1, tmp_path / "other")


def test_gradient_accumulation_takes_the_mean_over_the_pairs_of_a_step(tmp_path):
    """Three pairs in three micro-batches of one step: the step's loss (the one that is differentiated) is
    their mean, -log sigmoid(0) at the first step, not their sum."""
    settings = DPOSettings(
        learning_rate=1e-3, epochs=1, batch_size=1, gradient_accumulation=3, warmup_ratio=0.0, report_to="none"
    )
    result = train_dpo(tiny(), PAIRS, settings, 0.1, tmp_path / "checkpoint")
    assert result.steps == 1 and result.losses == [(1, pytest.approx(math.log(2), abs=1e-4))]
