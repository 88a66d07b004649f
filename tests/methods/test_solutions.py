"""EEF's bookkeeping on hand-made trajectories: every rule of steps 2-6 of docs/runs.md, "The algorithm as built"."""

import random

import pytest

from eef.methods.solutions import (
    PositiveRepository,
    analyse_failure,
    initial_state_candidates,
    recovery_state_candidates,
    restart_points,
    select,
    train_everything,
)
from eef.types import Message, StartState, Trajectory


def _messages(expert_turns: int, policy_turns: int) -> list[Message]:
    messages = [Message(role="system", content="rules"), Message(role="user", content="obs 0")]
    for i in range(expert_turns):
        messages += [Message(role="assistant", content=f"Action: expert[{i}]"), Message(role="user", content="o")]
    for i in range(policy_turns):
        messages += [Message(role="assistant", content=f"Action: policy[{i}]", loss=True)]
        messages += [Message(role="user", content="o")]
    return messages


def _expert_failure(num_actions: int = 12) -> Trajectory:
    return Trajectory(
        id="expert:x/t1",
        env="shop",
        task_id="t1",
        messages=_messages(num_actions, 0),
        reward=0.2,
        success=False,
        origin="expert:x",
        termination="done",
        num_actions=num_actions,
        seed=0,
    )


def _success(start_at: int, policy_turns: int, expert_id: str | None = "expert:x/t1", tag: str = "") -> Trajectory:
    start = StartState() if start_at == 0 else StartState(expert_trajectory_id=expert_id, action_index=start_at)
    return Trajectory(
        id=f"policy:p/t1@{start_at}{tag}",
        env="shop",
        task_id="t1",
        messages=_messages(start_at, policy_turns),
        reward=1.0,
        success=True,
        origin="policy:p",
        start=start,
        termination="success",
        num_actions=start_at + policy_turns,
        seed=0,
    )


@pytest.mark.parametrize(
    ("length", "m", "expected"),
    [(12, 5, [2, 4, 6, 8, 10]), (6, 5, [1, 2, 3, 4, 5]), (3, 5, [1, 2]), (1, 5, []), (20, 3, [5, 10, 15]), (9, 0, [])],
)
def test_restart_points_are_evenly_spaced_and_before_the_end(length, m, expected):
    assert restart_points(length, m) == expected


def test_repository_keeps_only_successes_once():
    repo = PositiveRepository()
    failure = _expert_failure().model_copy(update={"id": "f"})
    assert repo.add([_success(0, 3), _success(0, 3), failure]) == 1
    assert len(repo) == 1 and repo.successes("t1", None, 0)


def test_harmful_segment_and_recovery_state():
    # solved: s0 yes, s2 yes, s4 no, s6 no, s8 yes, s10 no -> harmful 2->4 and 8->10
    repo = PositiveRepository()
    repo.add([_success(0, 4), _success(2, 3), _success(8, 2)])
    analysis = analyse_failure(_expert_failure(), 5, repo)
    assert analysis.points == [0, 2, 4, 6, 8, 10]
    assert analysis.solved == [True, True, False, False, True, False]
    assert analysis.harmful_segments == [1, 4]
    assert analysis.recovery_indices == [2, 5]
    assert analysis.clean_between(0, 1) and not analysis.clean_between(0, 2)


def test_initial_state_solutions_train_clean_expert_prefixes():
    repo = PositiveRepository()
    repo.add([_success(2, 3), _success(8, 2)])  # s0 unsolved, so 0->2 is not harmful; 2->4 is
    analysis = analyse_failure(_expert_failure(), 5, repo)
    candidates = initial_state_candidates("t1", [analysis], repo)
    # s8's success is behind the harmful segment 2->4: not a solution for the initial state.
    assert [c.trajectory.meta["source"] for c in candidates] == ["policy:p/t1@2"]
    solution = candidates[0]
    assert solution.state == "initial" and solution.trained_expert_actions == 2
    trained = [m.content for m in solution.trajectory.messages if m.role == "assistant" and m.loss]
    assert trained == [
        "Action: expert[0]",
        "Action: expert[1]",
        "Action: policy[0]",
        "Action: policy[1]",
        "Action: policy[2]",
    ]


def test_recovery_solutions_keep_history_as_context():
    repo = PositiveRepository()
    repo.add([_success(0, 4), _success(4, 1), _success(6, 1)])
    # solved: s0 yes, s2 no, s4 yes, s6 yes, s8 no -> recovery states s2 and s8.
    analysis = analyse_failure(_expert_failure(), 5, repo)
    assert analysis.recovery_indices == [1, 4]
    candidates = recovery_state_candidates(analysis, 1, repo)
    by_source = {c.trajectory.meta["source"]: c for c in candidates}
    assert set(by_source) == {"policy:p/t1@4", "policy:p/t1@6"}
    via_s4 = by_source["policy:p/t1@4"]
    assert via_s4.state == "recovery" and via_s4.trained_expert_actions == 2
    turns = [(m.content, m.loss) for m in via_s4.trajectory.messages if m.role == "assistant"]
    assert turns == [
        ("Action: expert[0]", False),
        ("Action: expert[1]", False),
        ("Action: expert[2]", True),
        ("Action: expert[3]", True),
        ("Action: policy[0]", True),
    ]
    assert select(candidates, "shortest", random.Random(0)) is via_s4


def test_selection_rules():
    repo = PositiveRepository()
    repo.add([_success(0, 5), _success(0, 2, tag="b"), _success(0, 2, tag="a")])
    candidates = initial_state_candidates("t1", [], repo)
    assert select(candidates, "shortest", random.Random(0)).trajectory.meta["source"] == "policy:p/t1@0a"
    picks = {select(candidates, "random", random.Random(seed)).trajectory.id for seed in range(20)}
    assert len(picks) == 3


def test_ablation_trains_every_turn():
    repo = PositiveRepository()
    repo.add([_success(0, 4), _success(4, 1)])
    analysis = analyse_failure(_expert_failure(), 5, repo)
    assert analysis.recovery_indices[0] == 1
    solution = recovery_state_candidates(analysis, 1, repo)[0].trajectory
    assert not all(m.loss for m in solution.messages if m.role == "assistant")
    trajectory = train_everything(solution)
    assert all(m.loss for m in trajectory.messages if m.role == "assistant")
