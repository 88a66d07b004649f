"""Batched rollouts on the real shop environment with a real (small, trained) tiny model."""

import pytest

from eef.config import RolloutConfig, SamplingConfig, SFTSettings
from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import HFGenerator
from eef.policy.models import load_policy
from eef.policy.tiny import environment_text
from eef.rollout import RolloutEngine
from eef.training.sft import train_sft
from eef.types import EpisodeStart


@pytest.fixture(scope="module")
def shop():
    return get_suite("shop")


@pytest.fixture(scope="module")
def expert_data(shop):
    return list(collect(shop, make_expert("shop", "scripted"), shop.tasks("train")[:60], seed=0))


@pytest.fixture(scope="module")
def policy(shop, expert_data, tmp_path_factory):
    """A tiny model with one short round of behaviour cloning: it emits real actions, some valid, some not."""
    texts = environment_text(shop.instruction, expert_data)
    policy = load_policy("tiny", tokenizer_texts=texts, seed=0)
    settings = SFTSettings(epochs=1, learning_rate=2e-3, batch_size=8, max_length=1024, seed=0)
    train_sft(policy, [t for t in expert_data if t.success], settings, tmp_path_factory.mktemp("ckpt") / "model")
    return policy


@pytest.fixture(scope="module")
def generator(policy):
    """The plain generator: every prompt encoded afresh."""
    return HFGenerator(policy.model, policy.tokenizer)


@pytest.fixture
def cached(policy):
    return CachedGenerator(policy.model, policy.tokenizer)


def _engine(shop, generator, batch_size, temperature=0.0):
    rollout = RolloutConfig(batch_size=batch_size, overlap_steps=False)
    return RolloutEngine(
        shop, generator, rollout, SamplingConfig(temperature=temperature, max_new_tokens=40), "policy:test"
    )


def test_batched_equals_one_at_a_time_under_greedy(shop, generator):
    starts = [EpisodeStart(task) for task in shop.tasks("dev")[:8]]
    batched = _engine(shop, generator, batch_size=8).run(starts, seed=0)
    single = _engine(shop, generator, batch_size=1).run(starts, seed=0)
    assert [t.model_dump() for t in batched] == [t.model_dump() for t in single]
    assert all(t.generated_tokens > 0 and t.prompt_tokens > 0 for t in batched)


def test_restart_from_expert_prefix_keeps_it_as_untrained_context(shop, generator, expert_data):
    failure = next(t for t in expert_data if not t.success and t.num_actions >= 4)
    task = next(t for t in shop.tasks("train") if t.task_id == failure.task_id)
    [trajectory] = _engine(shop, generator, batch_size=4).run([EpisodeStart(task, failure, 2)], seed=0)
    assert trajectory.start.expert_trajectory_id == failure.id and trajectory.start.action_index == 2
    prefix_turns = [m for m in trajectory.messages if m.role == "assistant"][:2]
    assert [m.content for m in prefix_turns] == failure.agent_turns()[:2]
    assert not any(m.loss for m in prefix_turns)
    assert trajectory.num_actions > 2 and trajectory.termination is not None


def test_cached_generator_equals_plain_under_greedy(shop, generator, cached):
    """Reused keys and values give the same turns as encoding every prompt afresh, for less prefill."""
    starts = [EpisodeStart(task) for task in shop.tasks("dev")[:8]]
    plain = _engine(shop, generator, batch_size=1).run(starts, seed=0)
    reused = _engine(shop, cached, batch_size=8).run(starts, seed=0)
    assert [t.messages for t in reused] == [t.messages for t in plain]
    assert [t.prompt_tokens for t in reused] == [t.prompt_tokens for t in plain]
    assert all(t.prefilled_tokens == t.prompt_tokens for t in plain)
    assert sum(t.prefilled_tokens for t in reused) < sum(t.prompt_tokens for t in reused) / 2
    assert len(cached.store) == 0  # every ended episode released its cache


def test_restarts_share_their_recorded_prefix(shop, generator, cached, expert_data):
    """EEF's restarts from one expert failure: same turns as without reuse, >= 3x fewer prefilled tokens."""
    failures = [t for t in expert_data if not t.success and t.num_actions >= 5][:4]
    assert len(failures) == 4
    tasks = {task.task_id: task for task in shop.tasks("train")}
    starts = [EpisodeStart(tasks[f.task_id], f, index) for f in failures for index in range(1, 5)]
    plain = _engine(shop, generator, batch_size=16).run(starts, seed=0)
    reused = _engine(shop, cached, batch_size=16).run(starts, seed=0)
    assert [t.messages for t in reused] == [t.messages for t in plain]
    prefilled_plain = sum(t.prefilled_tokens for t in plain) / len(plain)
    prefilled_reused = sum(t.prefilled_tokens for t in reused) / len(reused)
    assert prefilled_plain >= 3 * prefilled_reused


def test_sampling_is_reproducible_from_the_seed_in_any_batch_and_engine(shop, generator, cached):
    """Each episode samples from its own stream: the batch size, the other episodes and the engine
    change nothing; another seed, or another sample of the same start, changes the draws."""
    starts = [EpisodeStart(task, sample=k) for task in shop.tasks("dev")[:4] for k in range(2)]
    first = _engine(shop, cached, batch_size=8, temperature=1.0).run(starts, seed=7)
    again = _engine(shop, cached, batch_size=3, temperature=1.0).run(starts, seed=7)
    plain = _engine(shop, generator, batch_size=1, temperature=1.0).run(starts, seed=7)
    alone = _engine(shop, cached, batch_size=8, temperature=1.0).run(starts[5:6], seed=7)
    other = _engine(shop, cached, batch_size=8, temperature=1.0).run(starts, seed=8)
    assert [t.messages for t in again] == [t.messages for t in plain] == [t.messages for t in first]
    assert alone[0].messages == first[5].messages
    assert [t.messages for t in first] != [t.messages for t in other]
    assert any(a.messages != b.messages for a, b in zip(first[0::2], first[1::2], strict=True))


def test_overlapping_steps_with_generation_changes_no_greedy_result(cached, expert_data):
    """Two lanes taking turns (one generates while the other's environments step in threads) give the
    episodes one lane gives, restarts included, greedy or sampled."""
    threaded = get_suite("shop")
    threaded.concurrent_steps = True  # shop steps are in-process; the engine may still step them in threads
    failures = [t for t in expert_data if not t.success and t.num_actions > 2][:3]
    tasks = {task.task_id: task for task in threaded.tasks("train")}
    starts = [EpisodeStart(task) for task in threaded.tasks("dev")[:6]]
    starts += [EpisodeStart(tasks[f.task_id], f, m) for f in failures for m in (1, 2)]

    def run(overlap: bool, temperature: float = 0.0) -> list:
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=40)
        return RolloutEngine(threaded, cached, RolloutConfig(overlap_steps=overlap), sampling, "policy:test").run(
            starts, seed=3
        )

    sequential, overlapped = run(overlap=False), run(overlap=True)
    # Only the accounting of shared prefixes may differ: the lanes' calls split them differently.
    same = {"exclude": {"prefilled_tokens"}}
    assert [t.model_dump(**same) for t in overlapped] == [t.model_dump(**same) for t in sequential]
    assert len({t.num_actions for t in overlapped}) > 1  # episodes end at different turns: lanes drain unevenly
    assert [t.messages for t in run(True, 1.0)] == [t.messages for t in run(False, 1.0)]


def test_unparsable_turns_end_in_invalid_limit(shop, expert_data):
    """An untrained model rarely names an action: its episodes end on the invalid-action limit, never crash."""
    texts = environment_text(shop.instruction, expert_data)
    policy = load_policy("tiny", tokenizer_texts=texts, seed=1)
    engine = _engine(shop, HFGenerator(policy.model, policy.tokenizer), batch_size=4)
    trajectories = engine.run([EpisodeStart(task) for task in shop.tasks("dev")[:4]], seed=0)
    assert {t.termination for t in trajectories} <= {"invalid_limit", "step_limit", "done", "context_limit"}
    assert all(not t.success for t in trajectories)
    invalid = [m for t in trajectories for m in t.messages if m.role == "user" and m.content.startswith("Invalid")]
    assert invalid


def test_a_restart_that_does_not_replay_closes_every_environment_of_its_chunk(
    shop, expert_data, generator, monkeypatch
):
    from eef.envs.base import ReplayDivergence
    from tests.envs.test_restore import CountedEnvironment

    open_: set = set()
    make = shop.make
    monkeypatch.setattr(shop, "make", lambda: CountedEnvironment(make(), open_, forkable=True))
    failure = next(t for t in expert_data if not t.success and t.num_actions >= 4)
    # The observation after the second action, recorded wrong: a file collected with other options.
    second = [i for i, m in enumerate(failure.messages) if m.role == "assistant"][1] + 1
    messages = [*failure.messages[:second], failure.messages[second].model_copy(update={"content": "elsewhere"})]
    tampered = failure.model_copy(update={"messages": messages + failure.messages[second + 1 :]})
    task = next(t for t in shop.tasks("train") if t.task_id == failure.task_id)
    starts = [EpisodeStart(t) for t in shop.tasks("dev")[:3]] + [EpisodeStart(task, source=tampered, action_index=3)]
    with pytest.raises(ReplayDivergence, match="after action 1"):
        _engine(shop, generator, batch_size=4).run(starts, seed=0)
    assert open_ == set()
