"""JSONL and JSON files: validated reads that name the bad line, atomic writes, appends that survive kills
and full disks; and where eef caches what it derives once (converted models, simulator splits).

A write that fails (disk full, read-only file system, no permission) raises :class:`WriteError` naming
the file it was writing, and leaves that file as it was."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from eef.errors import UserError, WriteError, first_problem
from eef.types import Trajectory

Record = TypeVar("Record", bound=BaseModel)


# The process's umask, read once here (os.umask reads it only by setting it, which would race with threads).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file
FOLDER_MODE = 0o777 & ~_UMASK  # what mkdir() gives a new folder


def cache_root() -> Path:
    """``$EEF_CACHE``, default ``~/.cache/eef``."""
    return Path(os.environ.get("EEF_CACHE") or Path.home() / ".cache" / "eef").expanduser()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename: readers never see half a file, and a
    failed write (raised as :class:`WriteError`) leaves the old file and no temporary one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise WriteError.of(err, path) from err
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes it private; results and reports are as readable as any file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise WriteError.of(err, path) from err
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) to ``path`` and fsync. A write that fails is cut back to the file's
    old length before :class:`WriteError` is raised, so a full disk leaves no torn line; a kill still can,
    mid-write (readers of appended files drop a torn last line)."""
    path = Path(path)
    data = memoryview(text.encode("utf-8"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise WriteError.of(err, path) from err
    try:
        # Appends to a file come from one thread of one process (a run directory has one writer: eef.lock).
        length = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError as err:
            with contextlib.suppress(OSError):  # truncating frees space: it works on a full disk
                os.ftruncate(fd, length)
            raise WriteError.of(err, path) from err
    finally:
        os.close(fd)


# A path whose folders cannot exist as given: the user's to fix (a write that fails for lack of space or
# permission is a WriteError instead: the same command works once the cause is gone).
_IMPOSSIBLE_PATH = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST})


# The folders prepare_output made in this process, outermost first: where the command then fails, the CLI
# removes those still empty (remove_empty_made_folders), so that a failed command leaves no folder behind.
_made_folders: list[Path] = []


def prepare_output(path: Path, option: str, *, folder: bool = False) -> Path:
    """Make the folder that ``path`` (a file, or with ``folder`` a folder) will be written in, before any
    work is done: where it cannot exist (a parent that is a file, a file system that refuses it), say so
    now in one line rather than after the work. ``option`` names where the path came from (``--out``)."""
    path = Path(path)
    if not folder and path.is_dir():
        raise UserError(f"{option} {path}: that is a folder; give a file path (e.g. {path / 'out.jsonl'})")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: that is a file; give a folder path")
    missing = [parent for parent in (path.parent, *path.parent.parents) if not parent.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _made_folders.extend(reversed(missing))
    except OSError as err:
        if err.errno not in _IMPOSSIBLE_PATH:
            raise WriteError.of(err, path.parent) from err
        raise UserError(
            f"{option} {path}: cannot create the folder {path.parent} ({os.strerror(err.errno).lower()}); "
            "give a path in a folder that exists or can be created"
        ) from None
    return path


def remove_empty_made_folders() -> None:
    """Remove the folders :func:`prepare_output` made that are still empty, innermost first (a folder the
    work wrote in, such as a run to resume, stays)."""
    while _made_folders:
        with contextlib.suppress(OSError):  # not empty, or gone
            _made_folders.pop().rmdir()


def read_text(path: Path) -> str:
    """The UTF-8 text of the file ``path``; bytes that are not UTF-8 are a UserError naming the line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x}); give a text file in UTF-8"
        ) from None


def parse_json(text: str, where: str) -> Any:
    """``text`` as JSON; anything that is not (bad syntax, a number too long to convert, nesting too deep
    to parse) is a UserError at ``where`` (``FILE:LINE`` or ``FILE``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: not valid JSON ({err.msg}); fix or remove it") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4,300 digits
        raise UserError(f"{where}: JSON this program cannot read ({err}); fix or remove it") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except (ValueError, RecursionError):
        return parse_json(text, str(path))  # says what it cannot read


def _to_line(record: BaseModel) -> str:
    return json.dumps(record.model_dump(mode="json", by_alias=True), ensure_ascii=False)


def write_jsonl(path: Path, records: Iterable[BaseModel]) -> int:
    """Atomically replace ``path`` with one JSON line per record; returns the count."""
    lines = [_to_line(record) for record in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def ends_with_newline(path: Path) -> bool:
    """False when the file's last line is torn (no final newline); a missing or empty file is whole."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return True
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def append_jsonl(path: Path, records: Iterable[BaseModel]) -> None:
    """Append whole lines (:func:`append_text`). A kill mid-write can leave at most one torn last
    line, which :func:`read_jsonl` with ``drop_torn_tail=True`` discards on resume."""
    append_text(path, "".join(_to_line(record) + "\n" for record in records))


def iter_jsonl(path: Path, model: type[Record], *, drop_torn_tail: bool = False) -> Iterator[Record]:
    """Validated records of ``path``; a bad line raises UserError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    lines = path.read_bytes().splitlines(keepends=True)
    for number, raw in enumerate(lines, start=1):
        torn = number == len(lines) and not raw.endswith((b"\n", b"\r"))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if torn and drop_torn_tail:  # a kill can cut a character in two
                return
            raise UserError(
                f"{path}:{number}: not UTF-8 text (byte {raw[err.start]:#04x}); give a JSONL file in UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            if torn and drop_torn_tail:
                return
            raise UserError(f"{path}:{number}: not valid JSON ({err.msg}); fix or remove that line") from None
        except (ValueError, RecursionError):
            parse_json(line, f"{path}:{number}")  # raises, saying what it cannot read
        try:
            yield model.model_validate(data)
        except ValidationError as err:
            where, problem = first_problem(err, "record")
            raise UserError(
                f"{path}:{number}: invalid {model.__name__} record: {where}: {problem}; fix or remove that line"
            ) from None


def read_jsonl(path: Path, model: type[Record], *, drop_torn_tail: bool = False) -> list[Record]:
    return list(iter_jsonl(path, model, drop_torn_tail=drop_torn_tail))


def whole_chunks(
    path: Path, model: type[Record], sizes: list[int], chunk_of: Callable[[Record], int]
) -> tuple[list[Record], set[int]]:
    """Resume a file appended to in chunks (:func:`append_jsonl` of each whole chunk, ``chunk_of`` of a
    record its chunk's index, ``sizes`` each chunk's record count): the records of the complete chunks,
    and which chunks those are. What a kill left of a chunk (fewer records, a torn last line) is cut from
    the file, so that the chunk can be appended again whole."""
    kept = read_jsonl(path, model, drop_torn_tail=True) if Path(path).is_file() else []
    counts = Counter(chunk_of(record) for record in kept)
    complete = {chunk for chunk, count in counts.items() if count == sizes[chunk]}
    records = [record for record in kept if chunk_of(record) in complete]
    if len(records) != len(kept) or not ends_with_newline(path):
        write_jsonl(path, records)
    return records, complete


def read_trajectories(path: Path) -> list[Trajectory]:
    return read_jsonl(path, Trajectory)


def write_trajectories(path: Path, trajectories: Iterable[Trajectory]) -> int:
    return write_jsonl(path, trajectories)
