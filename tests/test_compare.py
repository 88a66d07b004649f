import json
from pathlib import Path

import pytest
from PIL import Image

from eef.compare import compare
from eef.layout import EVALUATION_TRAJECTORIES as EPISODES
from eef.layout import RunLayout
from eef.storage import write_jsonl
from eef.types import Message, Trajectory
from tests.test_cli import assert_user_error, eef

GOALS = 20  # test goals of each made-up run: one goal is 5 points


def _episodes(path: Path, method: str, won: list[bool]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(
        path,
        [
            Trajectory(
                id=f"policy:{method}|shop-test-{i}",
                env="shop",
                task_id=f"shop-test-{i}",
                conversations=[Message(role="user", content="goal")],
                reward=float(success),
                success=success,
                origin=f"policy:{method}",
                termination="success" if success else "done",
                num_actions=1,
                seed=0,
            )
            for i, success in enumerate(won)
        ],
    )


def _run(directory: Path, seed: int, eef_win: float, rft_win: float) -> Path:
    """A finished run's results table and the test episodes behind it: RFT wins the first goals, EEF
    the last ones, so that the two share as few wins as their rates allow."""
    eef_reward = 0.6 + seed / 100
    levels = {"test_by_difficulty": {"easy": 0.5, "hard": 0.1 * seed}}
    table = [
        {"method": "rft", "kind": "rft", "iteration": 1, "test_win_rate": rft_win, "test_mean_reward": 0.5, **levels},
        {
            "method": "eef",
            "kind": "eef",
            "iteration": 2,
            "test_win_rate": eef_win,
            "test_mean_reward": eef_reward,
            "test_by_difficulty": {"easy": 0.5},
            "cost": {"rollouts": 100 + seed},
        },
    ]
    # EEF's second iteration (the one its row reports) solved 3 + seed hard tasks the expert had failed.
    found = [{"newly_solved_by_difficulty": {"easy": 9}}, {"newly_solved_by_difficulty": {"hard": 3 + seed}}]
    iterations = {"eef": found}
    directory.mkdir()
    (directory / "config.yaml").write_text(f"seed: {seed}\n")
    results = {"name": "default", "seed": seed, "table": table, "iterations": iterations}
    (directory / "results.json").write_text(json.dumps(results))
    run = RunLayout(directory)
    rft_wins, eef_wins = round(rft_win * GOALS), round(eef_win * GOALS)
    _episodes(run.evaluation("rft/iter-1", "test") / EPISODES, "rft", [i < rft_wins for i in range(GOALS)])
    _episodes(run.evaluation("eef/iter-2", "test") / EPISODES, "eef", [i >= GOALS - eef_wins for i in range(GOALS)])
    return directory


def test_mean_and_sample_spread_per_method(tmp_path: Path):
    runs = [_run(tmp_path / f"s{seed}", seed, win, 0.1) for seed, win in enumerate([0.2, 0.3, 0.4])]
    result = compare(runs)
    assert [r["seed"] for r in result["runs"]] == [0, 1, 2]
    eef = result["methods"]["eef"]["test_win_rate"]
    assert eef["mean"] == pytest.approx(0.3)
    assert eef["std"] == pytest.approx(0.1)  # sample standard deviation
    assert eef["values"] == [0.2, 0.3, 0.4]
    assert result["methods"]["rft"]["test_win_rate"]["std"] == 0.0
    assert result["methods"]["eef"]["test_mean_reward"]["mean"] == pytest.approx(0.61)


def test_levels_and_what_each_method_harvested_are_averaged_over_the_runs(tmp_path: Path):
    runs = [_run(tmp_path / f"s{seed}", seed, 0.2, 0.1) for seed in (0, 1)]
    methods = compare(runs)["methods"]
    assert methods["rft"]["test_by_difficulty"] == pytest.approx({"easy": 0.5, "hard": 0.05})
    assert methods["eef"]["test_by_difficulty"] == {"easy": 0.5}
    assert methods["rft"]["harvest"] is None  # its runs hold no iteration record
    assert methods["eef"]["harvest"] == pytest.approx({"rollouts": 100.5, "expert_failed_solved": 3.5, "hard": 3.5})
    table = eef("compare", *map(str, runs)).stdout
    assert "| rft | 50.0% | 5.0% |" in table and "| eef | 50.0% | 0.0% |" in table  # a level it lacks: 0
    assert "| eef | 100 | 3.5 | 0.0 | 3.5 |" in table


def test_cli_prints_the_table_and_rejects_an_unfinished_run(tmp_path: Path):
    finished = _run(tmp_path / "a", 0, 0.25, 0.1)
    result = eef("compare", str(finished))
    assert result.returncode == 0
    assert "| eef | 1 | 25.0% ± 0.0% |" in result.stdout
    unfinished = tmp_path / "b"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("seed: 0\n")
    assert_user_error(eef("compare", str(finished), str(unfinished)), "no results.json", "--resume")
    assert_user_error(eef("compare", str(finished), str(tmp_path / "c")), "no such directory")
    assert_user_error(eef("compare", str(finished), str(tmp_path)), "not a run directory")


def test_margins_are_paired_by_run(tmp_path: Path):
    runs = [_run(tmp_path / f"s{seed}", seed, eef, rft) for seed, (eef, rft) in enumerate([(0.3, 0.1), (0.2, 0.25)])]
    (margin,) = compare(runs, versus=["rft"])["margins"]
    assert margin["method"] == "eef" and margin["versus"] == "rft"
    assert margin["values"] == pytest.approx([0.2, -0.05])
    assert margin["mean"] == pytest.approx(0.075)
    assert margin["wins"] == 1
    # Two runs: mean ± t(0.975, 1 degree) s / sqrt(2), s = 0.25 / sqrt(2), t = 12.706.
    assert margin["interval"] == pytest.approx([0.075 - 12.7062 * 0.125, 0.075 + 12.7062 * 0.125], abs=1e-4)
    assert_user_error(eef("compare", str(runs[0]), "--versus", "ghost"), "--versus ghost", "rft, eef")


def test_each_run_pairs_the_two_methods_goal_by_goal(tmp_path: Path):
    # Seed 0: RFT wins goals 0-1, EEF goals 14-19: 6 goals EEF's alone, 2 RFT's alone, 12 neither.
    (margin,) = compare([_run(tmp_path / "s0", 0, 0.3, 0.1)], versus=["rft"])["margins"]
    assert margin["interval"] is None  # one run has no spread over runs
    (run,) = margin["per_run"]
    assert (run["goals"], run["only_method"], run["only_versus"]) == (20, 6, 2)
    # The per-goal differences: six +1, two -1, twelve 0: mean 0.2, sample variance (8 - 20 * 0.04) / 19.
    half = 2.0930 * (7.2 / 19) ** 0.5 / 20**0.5  # t(0.975, 19 degrees) = 2.0930
    assert run["interval"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-4)
    result = eef("compare", str(tmp_path / "s0"), "--versus", "rft")
    assert "| eef − rft | +20.0% ± 0.0% | - (one run) | +20.0% ± 28.8% | 6 : 2 | 1 of 1 |" in result.stdout


def test_a_margin_needs_both_methods_test_episodes(tmp_path: Path):
    run = _run(tmp_path / "s0", 0, 0.3, 0.1)
    (RunLayout(run).evaluation("rft/iter-1", "test") / EPISODES).unlink()
    missing = eef("compare", str(run), "--versus", "rft")
    assert_user_error(missing, "rft's test episodes are missing", "pairs the methods' test episodes by goal")
    assert eef("compare", str(run)).returncode == 0  # the table alone reads results.json only


def test_a_real_runs_margins_agree_with_its_table(small_run: Path):
    comparison = compare([small_run], versus=["sft"])
    assert {m["method"] for m in comparison["margins"]} == {"expert (scripted)", "eef", "eto"}
    for margin in comparison["margins"]:
        (run,) = margin["per_run"]
        assert run["goals"] == 4  # the small run's test split
        assert (run["only_method"] - run["only_versus"]) / run["goals"] == pytest.approx(margin["mean"])


def test_plot_draws_win_rates_and_margins_and_refuses_a_folder(tmp_path: Path):
    runs = [str(_run(tmp_path / f"s{seed}", seed, eef, 0.1)) for seed, eef in enumerate([0.3, 0.2])]
    plot = tmp_path / "plots" / "compare.png"
    assert eef("compare", *runs, "--versus", "rft", "--plot", str(plot)).returncode == 0
    with Image.open(plot) as image:
        assert image.size == (1080, 378)  # two panels of 12 x 4.2 inches at 90 dpi: win rates and margins
    alone = tmp_path / "alone.png"
    assert eef("compare", *runs, "--plot", str(alone)).returncode == 0
    with Image.open(alone) as image:
        assert image.size == (585, 378)  # no margin asked: one panel
    assert_user_error(eef("compare", *runs, "--plot", str(tmp_path)), "--plot", "that is a folder")
