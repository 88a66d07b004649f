"""Where output goes: results to stdout, progress and messages to stderr (CLI convention)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from eef.summary import Summary

if TYPE_CHECKING:
    from eef.types import Trajectory

# Under a launcher of training processes (torchrun, accelerate launch: docs/scale-out.md) every process
# runs the command; the first one (RANK 0) prints the results and the progress for them all. Each prints
# the error that stops it: the launcher may end the first before it has printed its own.
SILENT = os.environ.get("RANK", "0") not in ("", "0")

# Without a fixed file, rich writes to whatever sys.stdout / sys.stderr is at the time (a test's capture too).
results = Console(soft_wrap=True, quiet=SILENT)
messages = Console(stderr=True, soft_wrap=True, quiet=SILENT)
errors = Console(stderr=True, soft_wrap=True)  # the one line of an error that stops the command


def quiet() -> bool:
    """No live progress bars: set EEF_QUIET=1 (CI logs), when stderr is not a terminal, or in a process
    that is not the first of a launcher's."""
    return SILENT or os.environ.get("EEF_QUIET") == "1" or not sys.stderr.isatty()


def print_json(data: Any) -> None:
    if not SILENT:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def summary_table(summary: Summary, title: str) -> Table:
    table = Table(title=title)
    for column in ("difficulty", "episodes", "win rate", "mean reward", "mean actions"):
        table.add_column(column, justify="left" if column == "difficulty" else "right")
    rows = [*summary.by_difficulty.items(), ("all", summary.overall)]
    for level, stats in rows:
        table.add_row(
            level,
            str(stats.episodes),
            f"{stats.win_rate:.1%}",
            f"{stats.mean_reward:.3f}",
            f"{stats.mean_actions:.1f}",
        )
    return table


class EpisodeStatus:
    """The status text of a progress bar over episodes: successes so far and generation speed."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.successes = 0
        self.generated_tokens = 0

    def add(self, trajectory: Trajectory) -> str:
        """Count a finished trajectory; returns the new status text."""
        self.successes += trajectory.success
        self.generated_tokens += trajectory.generated_tokens
        status = f"{self.successes} successes"
        if self.generated_tokens:
            rate = self.generated_tokens / max(time.perf_counter() - self.began, 1e-9)
            status += f", {rate:,.0f} generated tok/s"
        return status


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[str], None]]:
    """A live bar on stderr (hidden in quiet mode) with done / total, a status text and time left.
    Yields ``advance(status, done=1)``: call it once per finished item (``done=0`` changes the status only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, TimeRemainingColumn(), console=messages, disable=quiet()) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(status: str = "", done: int = 1) -> None:
            bar.update(task, advance=done, status=status)

        yield advance
