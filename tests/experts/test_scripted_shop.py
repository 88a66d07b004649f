"""The scripted shop expert: its failure model's targets, determinism, and exact replay of its episodes."""

import pytest

from eef.envs.base import ReplayDivergence, restore
from eef.envs.shop.analysis import reached_target, shop_expert_stats
from eef.envs.shop.env import ShopSuite
from eef.envs.shop.goals import HARD_DIFFICULTIES
from eef.experts.collect import collect
from eef.experts.scripted_shop import SKILL_LEVELS, ScriptedShopExpert, ShopMistakes
from eef.react import parse_action


@pytest.fixture(scope="module")
def suite() -> ShopSuite:
    return ShopSuite(seed=0)


@pytest.fixture(scope="module")
def train(suite):
    tasks = suite.tasks("train")
    return tasks, list(collect(suite, ScriptedShopExpert(), tasks, seed=0))


def test_failure_model_targets_on_train(train):
    tasks, trajectories = train
    stats = shop_expert_stats(trajectories, tasks)
    assert stats.episodes == len(tasks)
    assert 0.25 <= stats.success_rate <= 0.45
    rates = {level: group.success_rate for level, group in stats.by_difficulty.items()}
    assert rates["easy"] >= 3 * min(rates[level] for level in HARD_DIFFICULTIES)
    # Failed hard episodes mostly made the right moves first: they opened the target item.
    assert stats.reached_target_fraction >= 0.5
    assert stats.to_dict()["by_difficulty"]["easy"]["success_rate"] == rates["easy"]


def test_episodes_are_well_formed(train):
    tasks, trajectories = train
    targets = {task.task_id: task.meta["goal"]["asin"] for task in tasks}
    for trajectory in trajectories:
        assert trajectory.origin == "expert:scripted"
        assert trajectory.termination in ("success", "done")  # bought something, within the step limit
        assert trajectory.success == (trajectory.reward == 1.0)
        assert all(turn.startswith("Thought: ") and parse_action(turn) for turn in trajectory.agent_turns())
        assert not any(observation.startswith("Invalid action") for observation in trajectory.observations())
        if trajectory.success:  # a careful expert finds the target: the first listing that can score 1
            assert reached_target(trajectory, targets[trajectory.task_id])


def test_without_mistakes_every_goal_is_solved(suite):
    perfect = SKILL_LEVELS["scripted-perfect"]
    assert all(getattr(perfect, name) == 0.0 for name in ShopMistakes.__dataclass_fields__)
    tasks = suite.tasks("train")[:300] + suite.tasks("test")
    trajectories = list(collect(suite, ScriptedShopExpert("scripted-perfect", perfect), tasks, seed=0))
    assert all(trajectory.success for trajectory in trajectories)


def test_skill_levels_order(suite):
    tasks = suite.tasks("dev")
    rates = {}
    for name, mistakes in SKILL_LEVELS.items():
        stats = shop_expert_stats(collect(suite, ScriptedShopExpert(name, mistakes), tasks, seed=0), tasks)
        rates[name] = stats.success_rate
    assert rates["scripted-weak"] < rates["scripted"] < rates["scripted-strong"] < rates["scripted-perfect"] == 1.0
    assert ShopMistakes().scaled(10).wrong_option == 1.0


def test_same_seed_same_episodes(suite, train):
    tasks, trajectories = train
    again = list(collect(suite, ScriptedShopExpert(), tasks[:50], seed=0))
    assert [t.messages for t in again] == [t.messages for t in trajectories[:50]]
    other = list(collect(suite, ScriptedShopExpert(), tasks[:50], seed=1))
    assert [t.messages for t in other] != [t.messages for t in trajectories[:50]]


def test_restore_replays_expert_episodes_exactly(suite, train):
    tasks, trajectories = train
    env = suite.make()
    for task, trajectory in zip(tasks[:100], trajectories[:100], strict=True):
        actions = [parse_action(turn) for turn in trajectory.agent_turns()]
        observations = trajectory.observations()
        observation, last = restore(env, task, actions, observations)
        assert observation == observations[-1]
        assert last.done and last.reward == trajectory.reward
        # Any prefix restores too (EEF restarts from intermediate states).
        middle = len(actions) // 2
        assert restore(env, task, actions[:middle], observations[:middle])[0] == observations[middle - 1]


def test_restore_detects_a_tampered_recording(suite, train):
    tasks, trajectories = train
    task, trajectory = tasks[0], trajectories[0]
    actions = [parse_action(turn) for turn in trajectory.agent_turns()]
    tampered = trajectory.observations()
    tampered[1] = tampered[1].replace("$", "€", 1)
    with pytest.raises(ReplayDivergence):
        restore(suite.make(), task, actions, tampered)


def test_suite_reports_expert_analysis(suite, train):
    tasks, trajectories = train
    analysis = suite.expert_analysis(trajectories, {task.task_id: task for task in tasks})
    assert analysis["hard failures that opened the target item"] >= 0.5
    assert suite.difficulty_levels() == ["easy", "options", "paging", "tempting"]
