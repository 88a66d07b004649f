import re

import pytest
import torch

from eef.config import LoraSettings, SFTSettings
from eef.errors import UserError
from eef.policy.models import Policy, load_policy
from eef.policy.tokenize import encode_prompt
from eef.react import format_turn, parse_action
from eef.training.sft import train_sft
from eef.types import Message, Trajectory

SYSTEM = "You are a shopping agent. Answer with 'Thought: ...' then 'Action: ...'."
GOALS = [("red hat", "B017"), ("blue shoes", "B042"), ("green scarf", "B311"), ("black belt", "B905")]


def shopping_trajectory(index: int, item: str, product: str) -> Trajectory:
    messages = [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=f"WebShop [SEP] Instruction: [SEP] i want a {item} [SEP] Search"),
        Message(role="assistant", content=format_turn("I search for the item.", f"search[{item}]"), loss=True),
        Message(role="user", content=f"Results [SEP] {product} [SEP] {item} [SEP] B000 [SEP] a box"),
        Message(role="assistant", content=format_turn("The first result matches.", f"click[{product}]"), loss=True),
        Message(role="user", content="Thank you for shopping with us."),
    ]
    return Trajectory(
        id=f"expert/{index}",
        env="shop",
        task_id=str(index),
        messages=messages,
        reward=1.0,
        success=True,
        origin="expert:test",
        termination="success",
        num_actions=2,
        seed=0,
    )


TRAJECTORIES = [shopping_trajectory(i, item, product) for i, (item, product) in enumerate(GOALS)]
TEXTS = [m.content for t in TRAJECTORIES for m in t.messages]
FAST = SFTSettings(epochs=30, learning_rate=3e-3, batch_size=4, warmup_ratio=0.0, logging_steps=5)


def tiny(seed: int = 0) -> Policy:
    return load_policy("tiny", tokenizer_texts=TEXTS, seed=seed)


def greedy_turn(policy: Policy, messages: list[Message]) -> str:
    prompt = torch.tensor([encode_prompt(policy.tokenizer, messages)])
    with torch.no_grad():
        output = policy.model.generate(input_ids=prompt, max_new_tokens=40, do_sample=False)
    return policy.tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True)


def test_sft_learns_the_trained_actions(tmp_path):
    # One trajectory: a from-scratch tiny model learns to condition on the instruction's words only
    # after many more steps than a unit test affords; telling its two turns apart it learns at once.
    trajectory = TRAJECTORIES[0]
    policy = tiny()
    assert parse_action(greedy_turn(policy, trajectory.messages[:2])) != "search[red hat]"

    result = train_sft(policy, [trajectory], FAST, tmp_path / "checkpoint")

    assert result.final_loss < result.losses[0][1] / 5
    assert result.steps == 30 and result.examples == 1 and result.skipped_examples == 0
    assert result.total_tokens > result.loss_tokens > 0
    assert greedy_turn(policy, trajectory.messages[:2]) == trajectory.messages[2].content  # and it stopped
    assert parse_action(greedy_turn(policy, trajectory.messages[:4])) == "click[B017]"
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    assert greedy_turn(reloaded, trajectory.messages[:2]) == trajectory.messages[2].content
    # No staging leftovers: the checkpoint, and the Trainer's folder with the TensorBoard logs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "checkpoint.trainer"]


def test_sft_with_the_same_seed_gives_the_same_losses(tmp_path, capsys):
    settings = FAST.model_copy(update={"epochs": 3, "logging_steps": 1})
    first = train_sft(tiny(), TRAJECTORIES, settings, tmp_path / "first")
    second = train_sft(tiny(), TRAJECTORIES, settings, tmp_path / "second")
    assert first.losses == second.losses and first.final_loss == second.final_loss
    # Quiet (no terminal here): the Trainer prints no log entry per step.
    assert "'loss'" not in capsys.readouterr().err


def test_sft_with_lora_saves_a_loadable_merged_checkpoint(tmp_path):
    policy = tiny()
    settings = FAST.model_copy(update={"epochs": 3, "lora": LoraSettings(r=4, alpha=8)})
    result = train_sft(policy, TRAJECTORIES, settings, tmp_path / "checkpoint")
    assert result.final_loss < result.losses[0][1]
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    ids = torch.tensor([encode_prompt(policy.tokenizer, TRAJECTORIES[0].messages[:2])])
    with torch.no_grad():
        assert torch.allclose(policy.model(ids).logits, reloaded.model(ids).logits)
        assert not torch.allclose(tiny().model(ids).logits, reloaded.model(ids).logits)


def test_sft_skips_trajectories_truncated_to_no_trained_turn(tmp_path):
    long_context = Message(role="user", content="filler " * 400)
    cut = TRAJECTORIES[0].model_copy(update={"messages": [TRAJECTORIES[0].messages[0], long_context]})
    settings = FAST.model_copy(update={"epochs": 1, "max_length": 200})
    result = train_sft(tiny(), [*TRAJECTORIES, cut], settings, tmp_path / "checkpoint")
    assert result.examples == 4 and result.skipped_examples == 1 and result.truncated_tokens > 0
    with pytest.raises(UserError, match="max_length"):
        train_sft(tiny(), [cut], settings, tmp_path / "other")


@pytest.mark.slow
def test_smollm2_one_sft_step_writes_a_loadable_checkpoint(tmp_path):
    policy = load_policy("smollm2-135m")
    settings = SFTSettings(epochs=1, batch_size=1, learning_rate=1e-5, warmup_ratio=0.0)
    result = train_sft(policy, TRAJECTORIES[:1], settings, tmp_path / "checkpoint")
    assert result.steps == 1 and result.final_loss > 0
    reloaded = load_policy(str(tmp_path / "checkpoint"))
    turn = greedy_turn(reloaded, TRAJECTORIES[0].messages[:2])
    assert turn.strip()


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_loss_at_labelled_positions_equals_the_models_own_loss(tmp_path, padding_side):
    from transformers import TrainingArguments

    from eef.policy.tokenize import encode_messages
    from eef.training.sft import _LabelledPositionsTrainer

    policy = tiny()
    # The second row ends after its first agent turn: it is padded to the first's length.
    conversations = [TRAJECTORIES[0].messages, TRAJECTORIES[1].messages[:3]]
    encoded = [encode_messages(policy.tokenizer, messages, 512) for messages in conversations]
    length = max(len(e.input_ids) for e in encoded)
    assert min(len(e.input_ids) for e in encoded) < length

    def padded(values: list[int], fill: int) -> list[int]:
        padding = [fill] * (length - len(values))
        return values + padding if padding_side == "right" else padding + values

    pad = policy.tokenizer.pad_token_id
    inputs = {
        "input_ids": torch.tensor([padded(e.input_ids, pad) for e in encoded]),
        "attention_mask": torch.tensor([padded([1] * len(e.input_ids), 0) for e in encoded]),
        "labels": torch.tensor([padded(e.labels, -100) for e in encoded]),
    }
    trainer = _LabelledPositionsTrainer(
        model=policy.model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none")
    )
    with torch.no_grad():
        ours = trainer.compute_loss(policy.model, inputs)
        reference = policy.model(**inputs).loss
    assert torch.allclose(ours, reference, atol=1e-5)


def test_bf16_training_computes_the_decoder_in_bf16(tmp_path):
    """Mixed precision reaches the layers, which the loss reaches through model.forward (all that
    accelerate's autocast wraps); float32 weights stay the master copy."""
    policy = tiny()
    seen = []
    layer = policy.model.get_decoder().layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    settings = FAST.model_copy(update={"epochs": 1, "bf16": True, "report_to": "none"})
    train_sft(policy, TRAJECTORIES, settings, tmp_path / "checkpoint")
    assert seen and set(seen) == {torch.bfloat16}
    assert layer.weight.dtype == torch.float32


def test_losses_go_to_tensorboard_by_default(tmp_path):
    train_sft(tiny(), TRAJECTORIES, SFTSettings(epochs=1, batch_size=4), tmp_path / "checkpoint")
    events = list((tmp_path / "checkpoint.trainer").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_a_logger_that_is_not_installed_is_a_user_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(UserError, match="pip install wandb"):
        train_sft(tiny(), TRAJECTORIES, SFTSettings(epochs=1, report_to="wandb"), tmp_path / "checkpoint")


def test_the_attention_mask_is_dropped_only_where_padding_follows_the_tokens():
    from eef.training.sft import _mask_unless_right_padded

    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert _mask_unless_right_padded(right) is None  # causal attention sees real tokens only
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert _mask_unless_right_padded(left) is left


def _stderr_on_a_terminal(code: str, **env: str) -> str:
    """What ``python -c code`` writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    import os
    import pty
    import subprocess
    import sys

    main, terminal = pty.openpty()
    environment = {key: value for key, value in os.environ.items() if key != "EEF_QUIET"} | env
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=environment,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


@pytest.mark.slow
def test_sft_shows_steps_loss_and_time_left_on_stderr_unless_quiet(tmp_path):
    def training(out: str) -> str:
        return (
            "from tests.training.test_sft import FAST, TRAJECTORIES, tiny\n"
            "from eef.training.sft import train_sft\n"
            "settings = FAST.model_copy(update={'epochs': 6, 'logging_steps': 2})\n"
            f"train_sft(tiny(), TRAJECTORIES, settings, {str(tmp_path / out)!r}, description='train bc')\n"
        )

    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", _stderr_on_a_terminal(training("model")))  # no colours
    assert "train bc" in shown, shown
    final = shown.rsplit("train bc", 1)[1]  # the bar as it stands at the end: steps, loss, time left
    assert "6/6" in final and "step 6, loss " in final and "0:00:00" in final, final
    assert "{'loss'" not in shown  # not the Trainer's printed log dicts
    assert "train bc" not in _stderr_on_a_terminal(training("quiet"), EEF_QUIET="1")
