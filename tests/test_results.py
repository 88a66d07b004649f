import json

from eef.metrics import MetricsLog
from eef.results import _costs, _per_iteration_tables


def test_costs_are_exploration_and_training_never_evaluation(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.log("sft/train", stage="train", wall_time_s=10.0)
    log.log("sft/eval-test", stage="eval", generated_tokens=99, wall_time_s=5.0)
    log.log("eef/iter-1/explore", stage="explore", rollouts=3, generated_tokens=30, env_steps=12, wall_time_s=2.0)
    log.log("eef/iter-1/train", stage="train", wall_time_s=4.0)
    log.log("eef/iter-1/eval-dev", stage="eval", generated_tokens=50, wall_time_s=1.0)
    costs = _costs(log.records())
    assert costs["sft"] == {"rollouts": 0, "generated_tokens": 0, "env_steps": 0, "wall_time_s": 10.0}
    assert costs["eef"] == {"rollouts": 3, "generated_tokens": 30, "env_steps": 12, "wall_time_s": 6.0}


def _iteration(solutions_by_level: dict, success_by_start_and_level: dict) -> dict:
    return {
        "iteration": 1,
        "dev_win_rate": 0.25,
        "test_win_rate": 0.2,
        "solved_tasks": 5,
        "solved_by_difficulty": {"options": 3, "easy": 2},
        "newly_solved_by_difficulty": {"options": 2},
        "composition": {"expert_successes": 10},
        "solutions_by_level": solutions_by_level,
        "success_by_start_and_level": success_by_start_and_level,
    }


def test_iteration_tables_show_solutions_by_level_and_start_and_success_by_restart_position():
    counts = {
        "all": {"s0": {"episodes": 8, "successes": 2}, "s1": {"episodes": 4, "successes": 3}},
        "paging": {"s0": {"episodes": 4, "successes": 0}, "s1": {"episodes": 4, "successes": 3}},
        "easy": {"s0": {"episodes": 4, "successes": 2}},
    }
    found = {"paging": {"s0": 0, "restart": 3, "recovery": 1}, "easy": {"s0": 2, "restart": 0, "recovery": 0}}
    text = "\n".join(_per_iteration_tables({"eef": [_iteration(found, counts)]}))
    shares = "E+ 10 (62%), s0 2 (12%), restart 3 (19%), recovery 1 (6%)"
    assert f"| eef | 1 | 25.0% | 20.0% | 5 (easy 2, options 3) | 2 (options 2) | {shares} |" in text
    assert "| method | iter | easy | paging |\n|---|---|---|---|\n| eef | 1 | 2 / 0 / 0 | 0 / 3 / 1 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| eef | 1 | ") and line.count("|") == 6]
    assert rows == [
        "| eef | 1 | easy | 50% (4) | - |",
        "| eef | 1 | paging | 0% (4) | 75% (4) |",
        "| eef | 1 | all | 25% (8) | 75% (4) |",
    ]


def test_an_iteration_without_new_solutions_says_none_instead_of_an_empty_table():
    text = "\n".join(_per_iteration_tables({"rft": [_iteration({}, {})]}))
    assert "New solutions by difficulty level (s0 / restart / recovery):\n\n(none)\n" in text


def test_a_run_from_before_newly_solved_tasks_were_counted_shows_a_dash():
    iteration = _iteration({}, {})
    del iteration["newly_solved_by_difficulty"]
    text = "\n".join(_per_iteration_tables({"rft": [iteration]}))
    assert "| rft | 1 | 25.0% | 20.0% | 5 (easy 2, options 3) | - | E+ 10 (100%), s0 0 (0%), " in text


def test_each_row_has_its_win_rate_where_the_main_expert_failed(small_run):
    def won(path) -> dict[str, bool]:
        return {record["task_id"]: record["success"] for record in map(json.loads, path.read_text().splitlines())}

    results = json.loads((small_run / "results.json").read_text())
    expert = won(small_run / "experts" / "scripted-test.jsonl")
    failed = [goal for goal, success in expert.items() if not success]
    assert results["main_expert"] == "scripted" and results["expert_failed_test_goals"] == len(failed) > 0
    main, *others = results["table"]
    assert main["test_win_rate_expert_failed"] is None  # the main expert failed all of them, by definition
    for row in others:
        folder = "sft" if row["method"] == "sft" else f"{row['method']}/iter-{row['iteration']}"
        episodes = won(small_run / folder / "eval-test" / "trajectories.jsonl")
        assert row["test_win_rate_expert_failed"] == sum(episodes[goal] for goal in failed) / len(failed)
    table = (small_run / "results.md").read_text()
    assert f"test win rate where scripted failed ({len(failed)} goals)" in table
