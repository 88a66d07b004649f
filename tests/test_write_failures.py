"""A write that fails (full disk, read-only file system) ends in one line naming the file and what to
do, exit code 1, nothing torn; once the cause is gone, the same command finishes as if nothing happened.

Real full and read-only disks are small tmpfs mounts, where this process may mount them (root; skipped
elsewhere); a full disk is also injected into a real run's appends, which works anywhere."""

import errno
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eef.errors import WriteError
from tests.small_run import assert_same_data, quiet_env, small_run_command
from tests.test_cli import eef

# `eef ARGS...` in a process whose disk fills while it appends to TARGET that already holds data: the
# write puts half of its bytes in, then fails with ENOSPC, as a disk that fills in the middle does.
FULL_DISK = """
import errno, os, sys
target = sys.argv.pop(1)
real_write = os.write

def write(fd, data):
    status = os.fstat(fd)
    if status.st_size > 0 and os.path.exists(target) and os.path.samestat(status, os.stat(target)):
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_write(fd, data)

os.write = write
from eef.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """eef's own lines on stderr (training libraries draw progress bars there too); no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("eef")]


class Tmpfs:
    """A tmpfs mounted at ``path`` with mount ``options`` (e.g. ``size=256k``, ``ro``)."""

    def __init__(self, path: Path, options: str):
        self.path = path
        path.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip() or 'mount failed'})")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Tmpfs]:
    disk = Tmpfs(tmp_path / "disk", "size=256k")
    yield disk
    disk.unmount()


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Tmpfs]:
    disk = Tmpfs(tmp_path / "disk", "ro,size=64k")
    yield disk
    disk.unmount()


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "no space left on device; free space, then eef run --resume runs/x"),
        (errno.EROFS, "read-only file system; make the file system writable, then eef run --resume runs/x"),
        (errno.EACCES, "permission denied; give this user write permission there, then eef run --resume runs/x"),
    ],
)
def test_a_write_error_says_what_where_and_what_to_do(code: int, says: str):
    assert (
        str(WriteError(Path("runs/x/metrics.jsonl"), code, "eef run --resume runs/x"))
        == f"runs/x/metrics.jsonl: {says}"
    )


def test_collect_on_a_full_disk_stops_with_one_line_then_finishes_once_space_is_freed(small_disk: Tmpfs, tmp_path):
    out = small_disk.path / "expert.jsonl"
    partial = out.with_suffix(".partial.jsonl")
    full = eef("collect", "--limit", "300", "--out", str(out))  # ~1 MB of trajectories onto 256 kB
    assert full.returncode == 1
    assert _error_lines(full) == [
        f"eef: error: {partial}: no space left on device; free space, "
        "then run the same command again (the episodes collected so far are kept)"
    ]
    kept = partial.read_text()
    assert kept.endswith("\n") and all(json.loads(line) for line in kept.splitlines())  # no torn line
    assert not out.exists()

    small_disk.remount("size=16m")
    again = eef("collect", "--limit", "300", "--out", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["resumed_episodes"] == len(kept.splitlines())
    whole = tmp_path / "whole.jsonl"
    assert eef("collect", "--limit", "300", "--out", str(whole)).returncode == 0
    assert out.read_text() == whole.read_text()


def test_a_read_only_file_system_is_one_line(read_only_disk: Tmpfs):
    out = read_only_disk.path / "expert.jsonl"
    result = eef("collect", "--limit", "3", "--out", str(out))
    assert result.returncode == 1
    assert _error_lines(result) == [
        f"eef: error: {out.with_suffix('.partial.jsonl')}: read-only file system; make the file system writable, "
        "then run the same command again (the episodes collected so far are kept)"
    ]


def test_a_checkpoint_on_a_full_disk_is_a_write_error_and_leaves_nothing(small_disk: Tmpfs, small_run: Path):
    from eef.policy.models import load_policy, save_policy

    policy = load_policy(str(small_run / "sft" / "checkpoint"))  # ~5 MB of weights onto 256 kB
    with pytest.raises(WriteError) as failure:
        save_policy(policy, small_disk.path / "checkpoint")  # safetensors' own error type, with errno 28 inside
    assert str(failure.value).startswith(f"{small_disk.path / 'checkpoint'}: no space left on device; free space")
    assert list(small_disk.path.iterdir()) == []  # no half checkpoint, no staging folder


def _resume(run: Path) -> None:
    resumed = eef("run", "--resume", str(run), timeout=600)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_disk_full_mid_exploration_then_resume_matches_an_uninterrupted_run(small_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    rollouts = run / "eef" / "iter-1" / "rollouts.jsonl"
    command = [sys.executable, "-c", FULL_DISK, str(rollouts), *small_run_command(run)[3:]]
    full = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=600)
    assert full.returncode == 1, full.stderr
    assert _error_lines(full) == [
        f"eef: error: {rollouts}: no space left on device; free space, then eef run --resume {run}"
    ]
    # The first chunk (8 rollouts) whole; the second, half written when the disk filled, cut back.
    assert rollouts.read_text().count("\n") == 8 and rollouts.read_text().endswith("\n")
    assert not rollouts.with_name("rollouts.done.json").exists()

    _resume(run)
    assert_same_data(run, small_run)


@pytest.mark.slow
def test_a_run_on_a_disk_that_fills_stops_with_one_line_then_resumes_once_space_is_freed(
    small_run: Path, tmp_path: Path
):
    # 12 MB hold the expert data, the base model and the SFT checkpoint (~5 MB each with its tokenizer),
    # not the next checkpoint: the run fills the disk in a file that safetensors or the (Rust) tokenizers write.
    disk = Tmpfs(tmp_path / "disk", "size=12m")
    try:
        run = disk.path / "run"
        full = subprocess.run(small_run_command(run), env=quiet_env(), capture_output=True, text=True, timeout=600)
        assert full.returncode == 1, full.stderr
        [line] = _error_lines(full)
        assert line.startswith(f"eef: error: {run}/"), line
        assert line.endswith(f": no space left on device; free space, then eef run --resume {run}"), line

        disk.remount("size=64m")
        _resume(run)
        assert_same_data(run, small_run)
    finally:
        disk.unmount()
