"""Finding the processes a test started: by their command lines, or by session, since every process a
command leaves (daemons included) stays in the session it was started in (``start_new_session=True``: the
session's id is the command's pid) unless it starts one of its own (as torchrun's processes do)."""

import os
import time
from collections.abc import Callable
from pathlib import Path


def command_lines(session: int | None = None) -> list[str]:
    """The command lines of the live processes (those in ``session`` only, where it is given)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if session is None or os.getsid(int(pid)) == session:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue  # gone meanwhile
    return found


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds within ``seconds`` (tried every half second)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
