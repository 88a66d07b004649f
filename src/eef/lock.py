"""One writer per run directory: an exclusive OS lock held for as long as a command works in it.

The lock is ``fcntl.flock`` on ``DIR/.eef.lock``. The OS drops it when its holder ends, however it ends
(a SIGKILL included), so a killed run never leaves a lock that blocks the next one; the lock file itself
stays, empty, and is never removed (removing it would let two processes lock two different files).
Beside it, ``DIR/.eef.lock.json`` says who holds the lock (command, pid, host, since when), written
atomically once the lock is taken and removed before it is released: a second process names the holder
in its one-line error. After a kill that file stays behind, stale and harmless: the next holder
replaces it, and nothing reads it unless the lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from eef.errors import WRITE_FAILURES, UserError, WriteError
from eef.storage import write_json

LOCK_FILE = ".eef.lock"
HOLDER_FILE = ".eef.lock.json"


@contextmanager
def run_lock(directory: Path, command: str, *, writes: bool = True) -> Iterator[None]:
    """Hold ``directory``'s lock for the block; ``command`` (e.g. ``eef run``) is what others are told holds it.

    Raises :class:`UserError` at once, before anything is written, when another process holds it.
    ``writes=False`` is for a command that only reads (``eef verify``): it takes the lock so that no
    writer starts meanwhile, but goes on without it where it cannot be taken for want of space or
    permission (no run can write there either), and never fails for the holder file."""
    directory = Path(directory)
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if writes or err.errno not in WRITE_FAILURES:
            raise
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(_in_use(directory)) from None
        holder = directory / HOLDER_FILE
        try:
            write_json(holder, _holder(command))
        except WriteError:
            if writes:
                raise
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                holder.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock


def _holder(command: str) -> dict[str, object]:
    return {
        "command": command,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def holder(directory: Path) -> dict[str, object] | None:
    """Who holds ``directory``'s lock, as its holder wrote it; None when that cannot be read (not yet written)."""
    try:
        data = json.loads((Path(directory) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _in_use(directory: Path) -> str:
    who = holder(directory)
    if who is None:  # the holder took the lock a moment ago and has not said who it is yet
        return f"{directory} is in use by another eef process: wait for it to end, or stop it, then try again"
    pid = who.get("pid")
    return (
        f"{directory} is in use by `{who.get('command')}` (pid {pid} on {who.get('host')}, since {who.get('since')}): "
        f"wait for it to end, or stop it (kill {pid}), then try again"
    )
