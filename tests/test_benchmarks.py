"""The benchmark scripts run, and what they check holds (small sizes: figures are not judged here)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.small_run import quiet_env

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], env=quiet_env(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_way_of_decode_attention_gives_the_same_output():
    output = run_script("decode_attention.py", "--rows", "6", "--context", "40", "--repeats", "2")
    ways = [line for line in output.splitlines() if "of the floor rate" in line]
    assert len(ways) == 4, output
    assert all(line.endswith("same output") for line in ways), output


@pytest.mark.slow
def test_direct_decode_forward_gives_the_models_logits(small_run):
    output = run_script(
        "decode_forward.py", "--model", str(small_run / "sft" / "checkpoint"), "--rows", "1,5", "--context", "60"
    )
    rows = [line for line in output.splitlines() if line.rstrip().endswith(("equal", "DIFFER"))]
    assert len(rows) == 2 and all(line.endswith("equal") for line in rows), output


@pytest.mark.slow
def test_rollout_benchmark_engines_play_identical_trajectories(small_run):
    output = run_script(
        "rollout_throughput.py",
        *("--model", str(small_run / "sft" / "checkpoint"), "--episodes", "4", "--batch-size", "4"),
        *("--repeats", "1", "--naive-episodes", "2", "--restart-sources", "2", "--restarts", "2"),
        *("--max-new-tokens", "16", "--draft-rows", "4"),  # ours drafts in every call
    )
    assert output.count("identical trajectories (the first 2 episodes): yes") == 2, output
    assert "ours/naive" in output
    paired = re.findall(r"ours/naive episodes/s, run by run: ([\d.]+) \(median ([\d.]+)\)", output)
    assert len(paired) == 2 and all(ratio == median for ratio, median in paired), output  # one run each


@pytest.mark.slow
def test_training_benchmark_groups_batches_with_less_padding():
    output = run_script("training_throughput.py", "--model", "tiny", "--tasks", "300", "--epochs", "0.3")
    padding = {
        line.split()[0]: float(re.search(r"([\d.]+)% padding", line)[1])
        for line in output.splitlines()
        if "% padding" in line
    }
    assert set(padding) == {"naive", "ours"}, output
    assert padding["ours"] < padding["naive"], output


def test_prompt_encoding_benchmark_gives_whole_tokenisations_ids():
    output = run_script("prompt_encoding.py", "--tokenizer", "tiny", "--episodes", "8", "--repeats", "1")
    assert "identical ids: yes" in output and "ours/naive" in output, output


def test_training_encoding_benchmark_gives_the_same_ids_and_labels_both_ways():
    output = run_script("training_encoding.py", "--tasks", "40", "--repeats", "1")
    assert "identical ids and labels: yes" in output and "ours/naive" in output, output


@pytest.mark.slow
def test_rollout_profile_times_every_generation_call(small_run):
    output = run_script(
        "profile_rollout.py",
        *("--model", str(small_run / "sft" / "checkpoint"), "--split", "dev", "--episodes", "4"),
        *("--max-new-tokens", "16", "--turns"),
    )
    call_line = re.compile(r"\s*\d+\s+\d+\s+[\d,]+\s+\d+\s+[\d.]+")
    calls = [line.split() for line in output.splitlines() if call_line.fullmatch(line)]
    assert calls and calls[0][1] == "4", output  # the first turn serves every episode
    assert all(int(call[1]) <= 4 and int(call[3]) < 16 for call in calls), output
    generating, total = map(float, re.search(r"generation calls ([\d.]+) s of ([\d.]+) s", output).groups())
    assert 0 < generating <= total, output


def test_token_choice_benchmark_finds_argmaxs_indices():
    output = run_script("token_choice.py", "--rows", "1,5", "--vocabulary", "300", "--repeats", "2")
    rows = [line for line in output.splitlines() if line.rstrip().endswith(("same", "DIFFERENT"))]
    assert len(rows) == 2 and all(line.endswith("same") for line in rows), output


def _sciworld_unavailable() -> str | None:
    from eef.envs.sciworld.java import unavailable_reason

    return unavailable_reason()


@pytest.mark.slow
@pytest.mark.skipif(_sciworld_unavailable() is not None, reason=str(_sciworld_unavailable()))
@pytest.mark.xdist_group("sciworld")  # beside tests/envs/test_sciworld.py's JVM checks: tests/conftest.py
def test_sciworld_step_benchmark_runs_the_engine_with_its_stand_ins():
    """The benchmark swaps the model and the prompt encoder for stand-ins: they must still fit the engine."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sciworld_steps
    finally:
        sys.path.remove(str(BENCHMARKS))
    sciworld_steps.rollout_stepping(episodes=2, turns=2)


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time: tests/conftest.py
def test_ray_benchmark_rolls_out_the_same_trajectories_in_process_and_on_workers(small_run):
    output = run_script(
        "ray_rollouts.py",
        *("--model", str(small_run / "sft" / "checkpoint"), "--episodes", "6", "--chunk-size", "3"),
        *("--max-new-tokens", "16", "--repeats", "1"),
    )
    assert "identical trajectories: yes" in output, output
    ways = [line.split()[0:4] for line in output.splitlines() if line.startswith(("this process", "Ray,"))]
    assert len(ways) == 4, output
    assert re.search(r"overhead per chunk \(1 worker − this process with 1 thread\): -?\d+ ms", output), output
