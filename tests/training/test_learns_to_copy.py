"""The whole learning path (tiny tokenizer and model, loss masks, SFT, prompt encoding, batched greedy
generation) learns to condition on its context: copy two words of an instruction into an action."""

import random

import pytest

from eef.config import SamplingConfig, SFTSettings
from eef.policy.engine import HFGenerator
from eef.policy.models import load_policy
from eef.policy.tokenize import encode_prompt
from eef.training.sft import train_sft
from eef.types import Message, Trajectory

WORDS = [
    "red",
    "blue",
    "green",
    "lamp",
    "chair",
    "sofa",
    "desk",
    "mug",
    "cup",
    "shirt",
    "sock",
    "shoe",
    "hat",
    "bag",
    "pen",
    "book",
    "clock",
    "fan",
    "rug",
    "bed",
]


def _conversation(first: str, second: str, answered: bool) -> list[Message]:
    messages = [
        Message(role="system", content="Shop."),
        Message(role="user", content=f"Instruction: [SEP] i want a {first} {second} [SEP] Search"),
    ]
    if answered:
        turn = f"Thought: I'll search for {first} {second}.\nAction: search[{first} {second}]"
        messages.append(Message(role="assistant", content=turn, loss=True))
    return messages


@pytest.mark.slow
def test_tiny_learns_to_copy_from_the_instruction(tmp_path):
    rng = random.Random(0)
    pairs = [(rng.choice(WORDS), rng.choice(WORDS)) for _ in range(400)]
    data = [
        Trajectory(
            id=str(i),
            env="copy",
            task_id=str(i),
            messages=_conversation(a, b, True),
            reward=1.0,
            success=True,
            origin="test",
            termination="success",
            num_actions=1,
            seed=0,
        )
        for i, (a, b) in enumerate(pairs)
    ]
    policy = load_policy("tiny", tokenizer_texts=[m.content for t in data for m in t.messages], seed=0)
    # 800 steps: copying appears late and suddenly (0% of exact copies at 200 steps, 100% at 800).
    train_sft(policy, data, SFTSettings(epochs=16, learning_rate=2e-3, batch_size=8), tmp_path / "model")

    unseen = [(rng.choice(WORDS), rng.choice(WORDS)) for _ in range(50)]
    prompts = [encode_prompt(policy.tokenizer, _conversation(a, b, False)) for a, b in unseen]
    outputs = HFGenerator(policy.model, policy.tokenizer).generate(
        prompts, SamplingConfig(temperature=0, max_new_tokens=30), seeds=[0] * len(prompts)
    )
    copied = sum(out.text.endswith(f"search[{a} {b}]") for out, (a, b) in zip(outputs, unseen, strict=True))
    assert copied >= 45
