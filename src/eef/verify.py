"""`eef verify RUN_DIR`: a run directory's invariants, checked from its files.

Each check is one invariant; it names every file that breaks it. What a kill leaves is not a failure
(an unfinished stage, a torn last line of a file still being appended to, a torn last exploration
chunk: ``eef run --resume`` repairs those); what a kill cannot leave is (a duplicated line, a chunk torn
in a finished exploration, a done marker that disagrees with its data, a truncated checkpoint, a
results table that is not what the data give). ``eef run --resume`` runs the checks of the files it
keeps (all but the results, which it writes anew) and refuses a directory that fails them.

Files and folders whose names start with a dot are skipped: the temporary files and staging folders a
kill can leave behind, and the lock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eef import layout
from eef.config import RunConfig, load_config
from eef.errors import UserError
from eef.layout import RunLayout
from eef.lock import run_lock


@dataclass(frozen=True)
class Problem:
    """One broken invariant: the file, and what is wrong with it."""

    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass(frozen=True)
class Check:
    """The outcome of one invariant: how many files it looked at, and the problems it found."""

    name: str
    files: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Lines:
    """What the checks need of a JSONL file, read in one pass."""

    ids: list[tuple[int, Any]]  # (line number, "id") of every whole line that is a JSON object
    chunks: list[Any]  # "meta.chunk" of the same lines (rollouts.jsonl)
    keys: list[Any]  # "key" of the same lines (metrics.jsonl)
    bad: list[int]  # line numbers of whole lines that are not JSON objects
    torn_tail: bool  # the last line has no newline: a write stopped in it


def read_lines(path: Path) -> Lines:
    """``path``'s lines as :class:`Lines`; a last line without a newline is torn, not a record."""
    ids: list[tuple[int, Any]] = []
    chunks: list[Any] = []
    keys: list[Any] = []
    bad: list[int] = []
    torn = False
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                torn = True
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                bad.append(number)
                continue
            ids.append((number, record.get("id")))
            meta = record.get("meta")
            chunks.append(meta.get("chunk") if isinstance(meta, dict) else None)
            keys.append(record.get("key"))
    return Lines(ids=ids, chunks=chunks, keys=keys, bad=bad, torn_tail=torn)


class RunFiles:
    """A run directory as the checks see it: its config, its files (dot-files skipped), each JSONL
    file read once however many checks look at it."""

    def __init__(self, directory: Path, config: RunConfig):
        self.dir = Path(directory)
        self.config = config
        self._lines: dict[Path, Lines] = {}

    def find(self, pattern: str) -> list[Path]:
        """The files under the directory whose names match ``pattern``, in a stable order."""
        found = []
        for path in self.dir.rglob(pattern):
            parts = path.relative_to(self.dir).parts
            if path.is_file() and not any(part.startswith(".") for part in parts):
                found.append(path)
        return sorted(found)

    def lines(self, path: Path) -> Lines:
        """``path`` read by :func:`read_lines`, once."""
        if path not in self._lines:
            self._lines[path] = read_lines(path)
        return self._lines[path]

    def data_files(self) -> list[Path]:
        """The trajectory files: every JSONL file but the stage log and chat-model response caches
        (keyed answers, not trajectories; a repeated key there is harmless and dropped when read)."""
        log = RunLayout(self.dir).metrics
        return [p for p in self.find("*.jsonl") if p != log and not p.name.endswith(".cache.jsonl")]


def _appended_to(path: Path) -> bool:
    """Whether ``path`` may still grow by appends (then a kill can tear its last line): the rollouts of
    an unfinished exploration, the episodes of an unfinished collection."""
    if path.name == layout.ROLLOUTS:
        return not (path.parent / layout.ROLLOUTS_DONE).is_file()
    return path.name.endswith(".partial.jsonl")


def _load_json(path: Path, problems: list[Problem]) -> Any:
    """``path``'s JSON, or None with a problem recorded."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        problems.append(Problem(path, f"not valid JSON ({err})"))
    return None


def _episodes(summary: Any) -> Any:
    """The episode count of an evaluation's or a collection's summary (None when it has none)."""
    try:
        return summary["summary"]["overall"]["episodes"]
    except (KeyError, TypeError):
        return None


# ---- the invariants -----------------------------------------------------------------------------


def check_jsonl_whole(files: RunFiles) -> Check:
    """Every line of every trajectory file is a JSON object with an id; only a file still being
    appended to may end in a torn line (files written at once are never torn)."""
    problems = []
    paths = files.data_files()
    for path in paths:
        lines = files.lines(path)
        if lines.bad:
            problems.append(Problem(path, f"line {lines.bad[0]} is not a JSON object ({len(lines.bad)} such lines)"))
        missing = [number for number, record_id in lines.ids if not isinstance(record_id, str)]
        if missing:
            problems.append(Problem(path, f"line {missing[0]} has no id ({len(missing)} such lines)"))
        if lines.torn_tail and not _appended_to(path):
            problems.append(Problem(path, "the last line is torn (no newline), in a file that is written whole"))
    return Check("JSONL lines whole", len(paths), problems)


def check_unique_ids(files: RunFiles) -> Check:
    """No trajectory id appears twice in one file (two writers, or a chunk appended twice, would do that)."""
    problems = []
    paths = files.data_files()
    for path in paths:
        seen: dict[Any, int] = {}
        repeats = []
        for number, record_id in files.lines(path).ids:
            if record_id in seen:
                repeats.append((record_id, seen[record_id], number))
            else:
                seen[record_id] = number
        if repeats:
            record_id, first, again = repeats[0]
            count = f"{len(repeats)} duplicate line{'s' if len(repeats) > 1 else ''}"
            problems.append(Problem(path, f"{count} (first: id {record_id!r} on lines {first} and {again})"))
    return Check("no duplicate ids", len(paths), problems)


def check_stages_logged_once(files: RunFiles) -> Check:
    """``metrics.jsonl`` logs every stage at most once (its torn lines, which a kill leaves, are skipped)."""
    path = RunLayout(files.dir).metrics
    if not path.is_file():
        return Check("each stage logged once", 0)
    lines = files.lines(path)
    repeated = [key for key, count in Counter(lines.keys).items() if count > 1 and key is not None]
    if not repeated:
        return Check("each stage logged once", 1)
    problem = Problem(path, f"stage {repeated[0]!r} is logged more than once ({len(repeated)} such stages)")
    return Check("each stage logged once", 1, [problem])


def exploration_problem(chunks: list[Any], batch_size: int, done: int | None) -> str | None:
    """What is wrong with the chunk numbers of a rollouts.jsonl's lines, in file order; ``done``: the
    rollouts.done.json count of a finished exploration, None for an unfinished one.

    Chunks are appended whole, in order, each ``batch_size`` rollouts but the last. A kill can leave
    the last chunk short (resume drops and reruns it); a finished exploration has every chunk whole."""
    if any(not isinstance(chunk, int) for chunk in chunks):
        return "a line has no meta.chunk"
    if chunks != sorted(chunks):
        return "chunks are out of order"
    counts = Counter(chunks)
    present = sorted(counts)
    if present != list(range(len(present))):
        missing = min(set(range(len(present) + 1)) - set(present))
        return f"chunk {missing} is missing but chunk {present[-1]} is there"
    if done is None:
        last = present[-1] if present else None
        for chunk in present:
            if counts[chunk] > batch_size or (chunk != last and counts[chunk] < batch_size):
                return f"chunk {chunk} has {counts[chunk]} rollouts, a chunk has {batch_size}"
        return None
    expected = {chunk: min(batch_size, done - chunk * batch_size) for chunk in range(-(-done // batch_size))}
    for chunk in sorted(set(expected) | set(counts)):
        if counts.get(chunk, 0) != expected.get(chunk, 0):
            return (
                f"chunk {chunk} has {counts.get(chunk, 0)} of {expected.get(chunk, 0)} rollouts, "
                "in a finished exploration"
            )
    return None


def check_exploration_chunks(files: RunFiles) -> Check:
    """Every exploration chunk of a finished exploration is whole; an unfinished one has whole chunks
    but maybe the last (see :func:`exploration_problem`)."""
    problems = []
    paths = files.find(layout.ROLLOUTS)
    for path in paths:
        marker = path.parent / layout.ROLLOUTS_DONE
        done = None
        if marker.is_file():
            data = _load_json(marker, [])  # a broken marker is the done markers' check's to name
            done = data.get("rollouts") if isinstance(data, dict) else None
            if not isinstance(done, int):
                continue
        problem = exploration_problem(files.lines(path).chunks, files.config.rollout.batch_size, done)
        if problem is not None:
            problems.append(Problem(path, problem))
    return Check("exploration chunks whole", len(paths), problems)


def _rollouts_done(files: RunFiles, marker: Path, problems: list[Problem]) -> None:
    data = marker.with_name(layout.ROLLOUTS)
    content = _load_json(marker, problems)
    count = content.get("rollouts") if isinstance(content, dict) else None
    if content is None:
        return
    if not data.is_file():
        problems.append(Problem(marker, f"says the exploration is done, but {data.name} is missing"))
    elif count != len(files.lines(data).ids):
        problems.append(Problem(data, f"{len(files.lines(data).ids)} rollouts, but {marker.name} says {count}"))


def _build_done(marker: Path, problems: list[Problem]) -> None:
    if _load_json(marker, problems) is not None and not marker.with_name(layout.TRAINING_SET).is_file():
        problems.append(Problem(marker, "says the training set is built, but train.jsonl is missing"))


def _pairs_done(files: RunFiles, marker: Path, problems: list[Problem]) -> None:
    content = _load_json(marker, problems)
    if content is None:
        return
    data = marker.with_name(layout.PAIRS)
    if not data.is_file():
        problems.append(Problem(marker, f"counts preference pairs, but {data.name} is missing"))
    elif (count := len(files.lines(data).ids)) != content.get("pairs"):
        problems.append(Problem(data, f"{count} pairs, but {marker.name} says {content.get('pairs')}"))


def _episodes_done(files: RunFiles, marker: Path, data: Path, problems: list[Problem]) -> None:
    """An evaluation's results.json or a collection's summary, against the trajectories it counted."""
    summary = _load_json(marker, problems)
    if summary is None:
        return
    if not data.is_file():
        problems.append(Problem(marker, f"counts episodes of {data.name}, which is missing"))
        return
    episodes, lines = _episodes(summary), len(files.lines(data).ids)
    if episodes != lines:
        problems.append(Problem(data, f"{lines} trajectories, but {marker.name} counts {episodes} episodes"))


def check_done_markers(files: RunFiles) -> Check:
    """Every stage's done marker (written last) agrees with the data it marks: rollouts.done.json's count
    with rollouts.jsonl, build.json with train.jsonl, pairs.json's count with pairs.jsonl, an evaluation's
    results.json and an expert's .summary.json with their trajectories' count."""
    problems: list[Problem] = []
    markers = 0
    for marker in files.find(layout.ROLLOUTS_DONE):
        markers += 1
        _rollouts_done(files, marker, problems)
    for marker in files.find(layout.BUILD):
        markers += 1
        _build_done(marker, problems)
    for marker in files.find(layout.PAIRS_DONE):
        markers += 1
        _pairs_done(files, marker, problems)
    for marker in files.find(layout.EVALUATION):
        if marker.parent.name.startswith("eval-"):
            markers += 1
            _episodes_done(files, marker, marker.with_name(layout.EVALUATION_TRAJECTORIES), problems)
    for marker in files.find("*.summary.json"):
        markers += 1
        _episodes_done(files, marker, marker.with_name(marker.name.removesuffix(".summary.json") + ".jsonl"), problems)
    return Check("done markers match their data", markers, problems)


def safetensors_problem(path: Path) -> str | None:
    """What makes a safetensors file unreadable: its header (8-byte little-endian length + JSON) cut
    or not JSON, or a file shorter than the end of its last tensor (truncated)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size < 8:
            return f"{size} bytes: shorter than a safetensors header"
        length = int.from_bytes(handle.read(8), "little")
        if 8 + length > size:
            return f"the header says it has {length} bytes, the file only {size}: truncated"
        try:
            header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError):
            return "the header is not a safetensors header"
    if 8 + length + end > size:
        return f"its tensors end at byte {8 + length + end}, the file at {size}: truncated"
    return None


def check_checkpoints(files: RunFiles) -> Check:
    """Every model folder (one with a config.json) has its weights, and every safetensors file is whole."""
    problems = []
    weights = files.find("*.safetensors")
    for folder in {path.parent for path in files.find("config.json")}:
        if not any(folder.glob("*.safetensors")):
            problems.append(Problem(folder / "model.safetensors", "missing from a model folder"))
    for path in weights:
        problem = safetensors_problem(path)
        if problem is not None:
            problems.append(Problem(path, problem))
    return Check("checkpoints readable", len(weights), sorted(problems, key=lambda p: str(p.path)))


def first_difference(stored: Any, fresh: Any, where: str = "") -> str | None:
    """Where two JSON values first differ, as ``table[2].test_win_rate: 0.5, the data give 0.0``; None when equal."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in [*stored, *(k for k in fresh if k not in stored)]:
            inner = f"{where}.{key}" if where else str(key)
            if key not in stored or key not in fresh:
                return f"{inner}: {'not in the file' if key not in stored else 'not in the data'}"
            found = first_difference(stored[key], fresh[key], inner)
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return f"{where or 'the file'}: {len(stored)} entries, the data give {len(fresh)}"
        for index, (a, b) in enumerate(zip(stored, fresh, strict=True)):
            found = first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    if stored == fresh:
        return None
    return f"{where or 'the file'}: {_short(stored)}, the data give {_short(fresh)}"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_results(files: RunFiles) -> Check:
    """``results.json`` is what :func:`eef.results.collect_results` makes of the directory's data, and
    ``results.md`` is :func:`eef.results.markdown` of it (the table is never edited by hand)."""
    from eef.results import collect_results, markdown

    path, table = RunLayout(files.dir).results, RunLayout(files.dir).results_table
    if not path.is_file():
        return Check("results match the data", 0)  # an unfinished run: no results yet
    problems: list[Problem] = []
    stored = _load_json(path, problems)
    if stored is None:
        return Check("results match the data", 1, problems)
    redo = f"`eef run --resume {files.dir}` writes it anew"
    try:
        fresh = json.loads(json.dumps(collect_results(files.dir, files.config)))  # as results.json holds it
    except (UserError, KeyError, TypeError, ValueError) as err:
        problems.append(Problem(path, f"the data it comes from cannot be read ({err})"))
    else:
        difference = first_difference(stored, fresh)
        if difference is not None:
            problems.append(Problem(path, f"not what the data give: {difference}; {redo}"))
    if not table.is_file():
        problems.append(Problem(table, f"missing beside results.json; {redo}"))
    else:
        try:
            written = markdown(stored)
        except (KeyError, TypeError, ValueError) as err:
            written = f"results.json cannot be rendered: {err}"
        if table.read_text(encoding="utf-8") != written:
            problems.append(Problem(table, f"not the table of results.json; {redo}"))
    return Check("results match the data", 2, problems)


KEPT: tuple[Callable[[RunFiles], Check], ...] = (
    check_jsonl_whole,
    check_unique_ids,
    check_stages_logged_once,
    check_exploration_chunks,
    check_done_markers,
    check_checkpoints,
)
"""The checks of what a resumed run keeps."""

ALL: tuple[Callable[[RunFiles], Check], ...] = (*KEPT, check_results)


def run_files(directory: Path) -> RunFiles:
    """The run directory ``directory`` with its config; a missing directory or config is a UserError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; give a run directory (`eef run --out DIR` makes one)")
    config = RunLayout(directory).config
    if not config.is_file():
        raise UserError(f"{directory}: not a run directory (no config.yaml); give one that `eef run` wrote")
    return RunFiles(directory, load_config(config, []))


def verify(directory: Path) -> list[Check]:
    """Every check of the run directory ``directory``, holding its lock (no run writes meanwhile)."""
    files = run_files(directory)
    with run_lock(files.dir, "eef verify", writes=False):
        return [check(files) for check in ALL]


def refuse_if_broken(directory: Path, config: RunConfig) -> None:
    """Raise a one-line :class:`UserError` when what a resumed run would keep fails a check."""
    files = RunFiles(directory, config)
    problems = [problem for check in KEPT for problem in check(files).problems]
    if problems:
        raise UserError(
            f"{directory} cannot be resumed: {problems[0]} ({len(problems)} problems in all; `eef verify {directory}` "
            "lists them): delete that file and what was made from it, or start a new run"
        )
