"""Which episodes a method explores and which data it trains on, on hand-made trajectories."""

from eef.config import MethodConfig, RunConfig, SFTSettings
from eef.methods.exploration import (
    best_restart,
    build_training_set,
    exploration_starts,
    iteration_start,
    rates,
    success_by_start,
)
from eef.methods.solutions import PositiveRepository
from eef.types import Task
from tests.methods.test_solutions import _expert_failure, _success

TASKS = [Task(env="shop", task_id=f"t{i}", split="train", instruction="buy", difficulty="easy") for i in (1, 2)]


def test_rft_explores_k_times_from_initial_states_only():
    starts = exploration_starts(MethodConfig(name="rft", kind="rft", k=3), TASKS, [_expert_failure()])
    assert [(s.task.task_id, s.source, s.sample) for s in starts] == [
        (task, None, k) for task in ("t1", "t2") for k in range(3)
    ]


def test_eef_adds_one_rollout_per_restart_point():
    failure = _expert_failure(12)
    starts = exploration_starts(MethodConfig(name="eef", kind="eef", m=5), TASKS, [failure])
    restarts = [(s.task.task_id, s.action_index) for s in starts if s.source is not None]
    assert restarts == [("t1", 2), ("t1", 4), ("t1", 6), ("t1", 8), ("t1", 10)]
    assert len(starts) == 2 + 5


def _repository():
    repo = PositiveRepository()
    repo.add([_success(0, 4), _success(4, 1)])  # s0 solved, s2 not -> recovery state s2, solved via s4
    return repo


def test_eef_training_set_has_expert_successes_and_both_kinds_of_solutions():
    expert_success = _success(0, 3).model_copy(update={"id": "expert:x/t2", "task_id": "t2"})
    method = MethodConfig(name="eef", kind="eef", m=5)
    built = build_training_set(method, TASKS, [expert_success], [_expert_failure()], _repository(), seed=0)
    assert built.composition == {"expert_successes": 1, "from_initial_states": 1, "from_recovery_states": 1}
    # solved: s0, s4; unsolved: s2, s6, s8, s10 -> recovery states s2 (solved via s4) and s6 (no solution)
    assert built.important_states == {
        "initial": 2,
        "recovery": 2,
        "initial_with_solution": 1,
        "recovery_with_solution": 1,
    }
    assert built.solved_tasks == ["t1", "t2"]
    assert built.newly_solved_tasks == ["t1"]  # t2 has the expert's success
    recovery = next(t for t in built.trajectories if t.meta.get("important_state") == "recovery")
    assert not all(m.loss for m in recovery.messages if m.role == "assistant")


def test_ablations_change_the_data():
    failures, repo = [_expert_failure()], _repository()
    no_recovery = MethodConfig(name="a", kind="eef", recovery_states=False)
    assert build_training_set(no_recovery, TASKS, [], failures, repo, 0).composition["from_recovery_states"] == 0
    unmasked = build_training_set(MethodConfig(name="b", kind="eef", mask_harmful=False), TASKS, [], failures, repo, 0)
    assert all(m.loss for t in unmasked.trajectories for m in t.messages if m.role == "assistant")
    rft = build_training_set(MethodConfig(name="c", kind="rft"), TASKS, [], failures, repo, 0)
    assert rft.composition == {"expert_successes": 0, "from_initial_states": 1, "from_recovery_states": 0}


def test_success_by_start_counts_each_level_and_all():
    failure = _expert_failure(12)
    hard = {"difficulty": "paging"}
    rollouts = [
        _success(0, 3).model_copy(update=hard),
        _success(4, 1).model_copy(update=hard),
        _expert_failure().model_copy(update={"id": "x", "success": False, **hard}),  # from s0, failed
        _success(8, 1, tag="b").model_copy(update={"difficulty": "easy"}),
    ]
    counts = success_by_start(rollouts, [failure], m=5)
    assert counts["paging"] == {"s0": {"episodes": 2, "successes": 1}, "s2": {"episodes": 1, "successes": 1}}
    assert counts["easy"] == {"s4": {"episodes": 1, "successes": 1}}
    assert rates(counts["all"]) == {"s0": 0.5, "s2": 1.0, "s4": 1.0}
    assert best_restart(counts["all"]) == "s2"  # the earliest of the best
    assert best_restart(counts["paging"]) == "s2" and best_restart({"s0": {"episodes": 1, "successes": 1}}) is None


def test_new_solutions_are_counted_by_level_and_start():
    method = MethodConfig(name="eef", kind="eef", m=5)
    built = build_training_set(method, TASKS, [], [_expert_failure()], _repository(), seed=0)
    # t1 (easy): its start solved by the policy itself; recovery state s2 solved via s4
    assert built.solutions_by_level == {"easy": {"s0": 1, "recovery": 1}}
    repo = PositiveRepository()
    repo.add([_success(4, 1)])  # only a restart solved: the expert's clean prefix + the policy's finish
    built = build_training_set(method, TASKS, [], [_expert_failure()], repo, seed=0)
    assert built.solutions_by_level == {"easy": {"restart": 1}}


def test_an_iteration_trains_from_the_base_with_sft_or_continues_with_iteration_sft():
    sft, continued = SFTSettings(epochs=10), SFTSettings(epochs=2)
    config = RunConfig(sft=sft, iteration_sft=continued)
    retrain = MethodConfig(name="eef", kind="eef")  # the method default, as the paper
    keep_going = MethodConfig(name="eef", kind="eef", retrain_from_base=False)
    assert iteration_start(config, retrain, "base", "sft/checkpoint") == ("base", sft)
    assert iteration_start(config, keep_going, "base", "sft/checkpoint") == ("sft/checkpoint", continued)
    unset = RunConfig(sft=sft)  # no iteration_sft: a continuing iteration trains as sft
    assert iteration_start(unset, keep_going, "base", "sft/checkpoint") == ("sft/checkpoint", sft)
