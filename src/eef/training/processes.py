"""Training in several processes (data parallel, DDP): how many a launcher (torchrun, accelerate launch)
started, and the rule that keeps the effective batch of one process (docs/scale-out.md)."""

from __future__ import annotations

import os

from eef.errors import UserError


def process_count() -> int:
    """The processes training together: the WORLD_SIZE that torchrun and accelerate launch set, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_first_process() -> bool:
    """This process is the first of those a launcher started (RANK 0), or the only one."""
    return os.environ.get("RANK", "0") in ("", "0")


def check_batch_split(batch_size: int, processes: int, setting: str) -> None:
    """Each step's batch of ``batch_size`` is split over the processes (``batch_size / processes`` each), so
    that the effective batch, and the number of optimizer steps, are those of one process; ``setting``
    names where the batch size came from (``--batch-size``, ``sft.batch_size``)."""
    if batch_size % processes:
        raise UserError(
            f"{setting} {batch_size} does not split over {processes} training processes: "
            f"make it a multiple of {processes}"
        )
