"""Training in two processes (torchrun, DDP over gloo on this CPU machine) against one process at the same
effective batch: real launches of `eef train` and of a small `eef run`, no mocks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.processes import command_lines, within
from tests.small_run import quiet_env, small_run_command

from eef.policy.models import load_policy

# Measured on 2 cores (32 trajectories, batch 8, 2 epochs, seeds 0-2): the logged losses of one and of two
# processes differed by at most 1.1e-6 and the saved weights by at most 1.9e-7 (the order of float sums).
# A loss not scaled for the processes halves (4.46 against 8.92); processes that did not average their
# gradients would train on different data.
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-5
TRAIN = ["--epochs", "2", "--batch-size", "8", "--max-length", "1024", "--json"]


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=quiet_env(), timeout=timeout)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 scripted-expert trajectories of the shop: 4 full batches of 8."""
    data = tmp_path_factory.mktemp("data") / "expert.jsonl"
    collected = run([sys.executable, "-m", "eef", "collect", "--limit", "32", "--out", str(data)])
    assert collected.returncode == 0, collected.stderr
    return data


@pytest.fixture(scope="module")
def one_process(trajectories: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("one") / "checkpoint"
    trained = run([sys.executable, "-m", "eef", "train", "--data", str(trajectories), "--out", str(out), *TRAIN])
    assert trained.returncode == 0, trained.stderr
    return json.loads(trained.stdout), out


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "launch",
    [[*TORCHRUN, "-m", "eef", "train"], [sys.executable, "-m", "eef", "train", "--processes", "2"]],
    ids=["torchrun", "--processes"],
)
def test_two_processes_take_the_steps_and_the_losses_of_one(
    trajectories: Path, one_process: tuple[dict, Path], tmp_path: Path, launch: list[str]
):
    alone, alone_checkpoint = one_process
    out = tmp_path / "checkpoint"
    trained = run([*launch, "--data", str(trajectories), "--out", str(out), *TRAIN])
    assert trained.returncode == 0, trained.stderr
    together = json.loads(trained.stdout)  # one report: the second process prints nothing
    assert (together["processes"], alone["processes"]) == (2, 1)
    assert together["examples"] == alone["examples"] == 32
    assert together["steps"] == alone["steps"] == 8  # 32 / 8 a step, 2 epochs
    assert [step for step, _ in together["losses"]] == [step for step, _ in alone["losses"]]
    for (_, loss), (_, reference) in zip(together["losses"], alone["losses"], strict=True):
        assert loss == pytest.approx(reference, abs=LOSS_TOLERANCE)
    assert together["final_loss"] < alone["losses"][0][1]  # it trained
    weights, reference = load_file(out / "model.safetensors"), load_file(alone_checkpoint / "model.safetensors")
    assert max((weights[name] - reference[name]).abs().max().item() for name in reference) < WEIGHT_TOLERANCE
    assert load_policy(str(out)).model.training is False  # a checkpoint like any other
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint", "checkpoint.trainer"]


def test_a_batch_the_processes_do_not_split_is_one_line_before_any_work(trajectories: Path, tmp_path: Path):
    out = tmp_path / "checkpoint"
    command = [sys.executable, "-m", "eef", "train", "--data", str(trajectories), "--out", str(out)]
    refused = run([*command, "--processes", "2", "--batch-size", "7"])
    assert refused.returncode == 2 and refused.stdout == ""
    expected = "eef: error: --batch-size 7 does not split over 2 training processes: make it a multiple of 2\n"
    assert refused.stderr == expected
    assert not out.exists()


@pytest.mark.slow
def test_a_run_trains_its_stages_in_two_processes(small_run: Path, tmp_path: Path):
    """The small run with cluster.train_processes=2: every SFT and DPO stage in two processes, as many steps
    as the run in one process (the shared ``small_run``), losses within the tolerance above."""
    out = tmp_path / "run"
    finished = run(small_run_command(out, "--set", "cluster.train_processes=2"), timeout=600)
    assert finished.returncode == 0, finished.stderr

    def trainings(directory: Path) -> dict[str, dict]:
        records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
        return {record["key"]: record for record in records if record["stage"] == "train"}

    together, alone = trainings(out), trainings(small_run)
    assert sorted(together) == sorted(alone) == ["eef/iter-1/train", "eto/iter-1/train", "sft/train"]
    for key, record in together.items():
        assert record["steps"] == alone[key]["steps"] > 0
        assert record["final_loss"] == pytest.approx(alone[key]["final_loss"], abs=LOSS_TOLERANCE)
    verified = run([sys.executable, "-m", "eef", "verify", str(out)])
    assert verified.returncode == 0, verified.stdout
    assert "train_processes: 2" in (out / "config.yaml").read_text()


def test_processes_draw_the_same_length_grouped_order_whatever_their_global_generator(tmp_path: Path):
    """Each process takes its share of every batch, so all must draw the same order, every epoch; LoRA's
    dropout draws from torch's global generator as much as each process's share asks."""
    from tests.training.test_sft import tiny

    from eef.config import SFTSettings
    from eef.training.sft import _LabelledPositionsTrainer
    from eef.training.trainer_parts import training_arguments

    policy = tiny()
    dataset = [{"input_ids": [1] * length, "labels": [1] * length} for length in range(5, 37)]
    settings = SFTSettings(batch_size=4, report_to="none")
    args = training_arguments(settings, tmp_path, train_sampling_strategy="group_by_length")
    orders = []
    for draws in (0, 7):  # two processes whose dropout drew differently
        sampler = _LabelledPositionsTrainer(model=policy.model, args=args, train_dataset=dataset)._get_train_sampler()
        epochs = []
        for _ in range(2):
            epochs.append(list(sampler))
            torch.rand(draws)
        orders.append(epochs)
    assert orders[0] == orders[1]
    assert orders[0][0] != orders[0][1]  # each epoch has an order of its own


def test_a_killed_eef_leaves_no_training_process_behind(trajectories: Path, tmp_path: Path):
    """SIGKILL gives `eef train --processes 2` no chance to stop torchrun: the kernel ends torchrun with it, and
    torchrun its processes, so that no training goes on writing where a resumed run writes."""
    out = tmp_path / "checkpoint"
    command = [sys.executable, "-m", "eef", "train", "--processes", "2", "--data", str(trajectories)]
    parent = subprocess.Popen(
        [*command, "--out", str(out), "--epochs", "200", "--batch-size", "8"],  # minutes: killed long before
        env={**quiet_env(), "TMPDIR": str(tmp_path)},  # where the job's folder is: in the trainers' command lines
        start_new_session=True,  # torchrun stays in it; the trainers start sessions of their own
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # torchrun and its two processes: the job's folder is in their command lines.
    trainers = lambda: [line for line in command_lines() if "eef.training" in line and str(tmp_path) in line]  # noqa: E731
    assert within(120, lambda: len(trainers()) == 3), command_lines(parent.pid)
    parent.kill()
    parent.wait()
    assert within(30, lambda: not trainers() and not command_lines(parent.pid)), trainers() + command_lines(parent.pid)
    assert not out.exists()
