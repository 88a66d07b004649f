import json
from pathlib import Path

import pytest

from eef.compare import compare
from tests.test_cli import assert_user_error, eef


def _run(directory: Path, seed: int, eef_win: float, rft_win: float) -> Path:
    table = [
        {"method": "rft", "test_win_rate": rft_win, "test_mean_reward": 0.5},
        {"method": "eef", "test_win_rate": eef_win, "test_mean_reward": 0.6 + seed / 100},
    ]
    directory.mkdir()
    (directory / "config.yaml").write_text(f"seed: {seed}\n")
    (directory / "results.json").write_text(json.dumps({"name": "default", "seed": seed, "table": table}))
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
    assert_user_error(eef("compare", str(runs[0]), "--versus", "ghost"), "--versus ghost", "rft, eef")
