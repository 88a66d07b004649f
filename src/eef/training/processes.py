"""Training in several processes (data parallel, DDP): how many a launcher (torchrun, accelerate launch)
started, and the rule that keeps the effective batch of one process (docs/scale-out.md)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from eef import console
from eef.errors import UserError

PARENT_VARIABLE = "EEF_TRAINING_PARENT"  # the pid of the process that started a training's processes
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def process_count() -> int:
    """The processes training together: the WORLD_SIZE that torchrun and accelerate launch set, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_first_process() -> bool:
    """This process is the first of those a launcher started (RANK 0), or the only one: the rule by which
    the others print nothing (``console.SILENT``)."""
    return not console.SILENT


def check_batch_split(batch_size: int, processes: int, setting: str) -> None:
    """Each step's batch of ``batch_size`` is split over the processes (``batch_size / processes`` each), so
    that the effective batch, and the number of optimizer steps, are those of one process; ``setting``
    names where the batch size came from (``--batch-size``, ``sft.batch_size``)."""
    if batch_size % processes:
        raise UserError(
            f"{setting} {batch_size} does not split over {processes} training processes: "
            f"make it a multiple of {processes}"
        )


def end_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent dies, and stop now if it died already (the
    parent's pid is in EEF_TRAINING_PARENT): a training whose `eef` was killed must not go on writing into
    a run directory that a resumed run writes to (one writer per run directory). torchrun, on SIGTERM,
    stops the processes it started. Elsewhere than on Linux this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = os.environ.get(PARENT_VARIABLE)
    if parent and os.getppid() != int(parent):  # it died before prctl: we were handed to another parent
        sys.exit(1)
