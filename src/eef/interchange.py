"""ETO's and AgentGym's trajectory files <-> our trajectories (``eef import`` / ``eef export``).

Both public formats are ShareGPT lists: ``conversations`` of ``from`` (human / gpt) and ``value``.
ETO (Song et al., 2024) writes its SFT data as ``[{"id", "conversations", "reward"?, "source"?,
"game_file"?}]`` and its exploration outputs as one ``{"meta": {steps, reward, finished, success,
terminate_reason, error}, "conversations"}`` per task file; it trains on every gpt turn. AgentGym's
AgentTraj-L is ``[{"item_id", "conversations"}]`` with a per-message ``loss`` (null on human turns), and
its evaluator adds ``reward`` and ``success`` (0/1), one JSON object per line.

Both put the instruction prompt in the first human turn, answered by a canned gpt turn ("OK", "Ok.");
we hold the prompt as a ``system`` message and drop the canned turn, remembering its text in
``meta["acknowledgement"]`` when it is not the format's usual one, so that export writes it back.
Top-level keys we do not use are kept in ``meta["eto"]`` / ``meta["agentgym"]`` and written back on
export. Our fields with no public counterpart travel in an ``eef`` object (ETO: ``meta.eef``), which
ETO's and AgentGym's readers ignore, so ours -> public -> ours is lossless. docs/data-format.md has the
whole mapping.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from eef.errors import UserError
from eef.storage import parse_json, read_text
from eef.types import Message, Termination, Trajectory

Format = Literal["eto", "agentgym"]
FORMATS: tuple[Format, ...] = ("eto", "agentgym")

# The canned answer to the instruction turn that each format's own files use.
DEFAULT_ACKNOWLEDGEMENT: dict[Format, str] = {"eto": "OK", "agentgym": "Ok."}
_ID_KEY: dict[Format, str] = {"eto": "id", "agentgym": "item_id"}
# Top-level keys the conversion reads or writes itself; any other key is kept in meta[format].
_CONSUMED: dict[Format, set[str]] = {
    "eto": {"id", "conversations", "reward", "meta"},
    "agentgym": {"item_id", "conversations", "reward", "success", "eef"},
}
# Keys of the eef object that are about the conversion, not Trajectory fields.
_OURS_ONLY = {"untrained_turns", "instruction_part"}
_SPEAKER_TO_ROLE = {"human": "user", "gpt": "assistant", "system": "system"}
_ACTION_LINE = re.compile(r"^\s*action\s*:", re.IGNORECASE | re.MULTILINE)
# ETO's State.terminate_reason values -> our termination.
_ETO_TERMINATION: dict[str, Termination] = {
    "success": "success",
    "max_steps": "step_limit",
    "exceeding maximum input length": "context_limit",
}
_TERMINATION_TO_ETO = {
    "success": "success",
    "step_limit": "max_steps",
    "context_limit": "exceeding maximum input length",
}

# ETO names ScienceWorld tasks "<index>_<variation>" with the indices of its taskname2id.json; ours are
# "<simulator task name>-<variation>". Indices of tasks outside ETO's splits are included for completeness.
_ETO_SCIWORLD_TASKS = {
    0: "boil",
    1: "change-the-state-of-matter-of",
    2: "freeze",
    3: "melt",
    4: "measure-melting-point-known-substance",
    6: "use-thermometer",
    7: "power-component",
    8: "power-component-renewable-vs-nonrenewable-energy",
    9: "test-conductivity",
    10: "test-conductivity-of-unknown-substances",
    11: "find-animal",
    12: "find-living-thing",
    13: "find-non-living-thing",
    14: "find-plant",
    15: "grow-fruit",
    16: "grow-plant",
    17: "chemistry-mix",
    18: "chemistry-mix-paint-secondary-color",
    19: "chemistry-mix-paint-tertiary-color",
    20: "lifespan-longest-lived",
    21: "lifespan-longest-lived-then-shortest-lived",
    22: "lifespan-shortest-lived",
    23: "identify-life-stages-1",
    24: "identify-life-stages-2",
}
_ETO_SCIWORLD_INDEX = {name: index for index, name in _ETO_SCIWORLD_TASKS.items()}


def _check_format(format: str) -> Format:
    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}: choose eto or agentgym")
    return format  # type: ignore[return-value]


# ---------------------------------------------------------------- reading public files


def read_public_entries(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, entry)`` pairs of a public file: a JSON list, one JSON object (an ETO output file), JSON
    lines (AgentGym's evaluator), or a folder of such ``*.json`` files. ``where`` names file and index."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise UserError(f"{path}: no *.json files in this folder")
        return [pair for file in files for pair in _read_public_file(file)]
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return _read_public_file(path)


def _read_public_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":
            raise UserError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        data = _json_lines(path, text)
    except (ValueError, RecursionError):
        parse_json(text, str(path))  # raises, saying what it cannot read
    if isinstance(data, dict):
        # One ETO output file is one task's trajectory; ETO names the file after the task.
        return [(f"{path}: entry 0", {"id": path.stem, **data} if "id" not in data else data)]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of trajectories, got {type(data).__name__}")
    entries = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise UserError(f"{path}: entry {index}: expected an object, got {type(entry).__name__}")
        entries.append((f"{path}: entry {index}", entry))
    return entries


def _json_lines(path: Path, text: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            records.append(parse_json(line, f"{path}:{number}"))
    return records


# ---------------------------------------------------------------- import


def import_trajectories(path: Path, format: str, env: str, origin: str | None = None) -> list[Trajectory]:
    """The trajectories of an ETO or AgentGym file, for environment ``env``. ``origin`` (default
    ``expert:imported-<format>``) names who acted; ``NAME`` without a colon becomes ``expert:NAME``."""
    fmt = _check_format(format)
    given_origin = None if origin is None else origin if ":" in origin else f"expert:{origin}"
    trajectories = [
        _import_entry(entry, fmt, env, given_origin, where) for where, entry in read_public_entries(Path(path))
    ]
    return _unique_ids(trajectories)


def _import_entry(entry: dict[str, Any], fmt: Format, env: str, origin: str | None, where: str) -> Trajectory:
    public_id = entry.get(_ID_KEY[fmt])
    for key in (_ID_KEY[fmt], *_ID_KEY.values()):  # name the entry by whichever id it has
        if entry.get(key) is not None:
            where = f"{where} ({key} {entry[key]})"
            break
    _check_shape(entry, fmt, where)
    eto_meta = entry.get("meta") if fmt == "eto" else None
    if eto_meta is not None and not isinstance(eto_meta, dict):
        raise UserError(f"{where}: 'meta' must be an object")
    ours = (eto_meta or {}).get("eef") if fmt == "eto" else entry.get("eef")
    if ours is not None and not isinstance(ours, dict):
        raise UserError(f"{where}: 'eef' must be an object (written by `eef export`)")

    # Our own exports say whether the first turns are an instruction part; other files are judged by shape.
    instruction_part = None if ours is None else bool(ours.get("instruction_part"))
    messages, acknowledgement = _import_messages(entry["conversations"], fmt, where, instruction_part)
    if ours is not None and ours.get("untrained_turns"):
        for index in ours["untrained_turns"]:
            if not (0 <= index < len(messages) and messages[index].role == "assistant"):
                raise UserError(f"{where}: eef.untrained_turns names turn {index}, which is not an agent turn")
            messages[index].loss = False

    reward, success, assumed = _outcome(entry, eto_meta, fmt, where)
    extras = {key: value for key, value in entry.items() if key not in _CONSUMED[fmt]}
    if ours is None:
        # Kept as written so that export gives them back (ids may be numbers; ETO's meta has steps, error...).
        if public_id is not None:
            extras[_ID_KEY[fmt]] = public_id
        kept = {k: v for k, v in (eto_meta or {}).items() if k not in {"reward", "success"}}
        if kept:
            extras["meta"] = kept

    if ours is not None:
        fields = {key: value for key, value in ours.items() if key not in _OURS_ONLY}
        if fields.get("env", env) != env:
            raise UserError(
                f"{where}: exported from environment {fields['env']!r}, not {env!r}: use --env {fields['env']}"
            )
        meta = dict(fields.get("meta") or {})
    else:
        task_id = _task_id(public_id, fmt, env, where)
        termination = _termination(success, eto_meta)
        fields = {
            "task_id": task_id,
            "termination": termination,
            "seed": 0,  # neither format records one
            "difficulty": _difficulty(task_id, env),
        }
        meta = {}
    meta.update({fmt: extras} if extras else {})
    if acknowledgement is not None and acknowledgement != DEFAULT_ACKNOWLEDGEMENT[fmt]:
        meta["acknowledgement"] = acknowledgement
    if assumed:
        meta["outcome_assumed"] = True
    resolved_origin = origin or fields.get("origin") or f"expert:imported-{fmt}"
    record = {
        "num_actions": sum(m.role == "assistant" for m in messages),
        **fields,
        "env": env,
        "origin": resolved_origin,
        "id": fields.get("id") if ours is not None and origin is None else f"{resolved_origin}/{fields['task_id']}",
        "messages": messages,
        "reward": reward,
        "success": success,
        "meta": meta,
    }
    try:
        return Trajectory.model_validate(record)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "record"
        raise UserError(f"{where}: {field}: {first['msg']}") from None


def _check_shape(entry: dict[str, Any], fmt: Format, where: str) -> None:
    """Say plainly when a file is of the other format, or is one of ours."""
    if "termination" in entry and "origin" in entry:
        raise UserError(f"{where}: this is an eef trajectory file already; use it as it is (no import needed)")
    other: Format = "agentgym" if fmt == "eto" else "eto"
    conversations = entry.get("conversations")
    has_loss = isinstance(conversations, list) and any(isinstance(t, dict) and "loss" in t for t in conversations)
    if fmt == "eto" and ("item_id" in entry or has_loss):
        raise UserError(f"{where}: looks like an AgentGym file (item_id / per-turn loss): use --format {other}")
    if fmt == "agentgym" and "item_id" not in entry and ("id" in entry or "meta" in entry):
        raise UserError(f"{where}: looks like an ETO file (id / meta, no item_id): use --format {other}")
    if not isinstance(conversations, list) or not conversations:
        raise UserError(f"{where}: no 'conversations' list; each entry needs its turns")


def _import_messages(
    turns: list[Any], fmt: Format, where: str, instruction_part: bool | None
) -> tuple[list[Message], str | None]:
    """Our messages and the canned acknowledgement (None when the conversation has none)."""
    parsed: list[tuple[str, str, bool | None]] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise UserError(f"{where}: turn {index}: needs 'from' and a text 'value'")
        speaker = turn.get("from")
        if speaker not in _SPEAKER_TO_ROLE:
            raise UserError(f"{where}: turn {index}: unknown speaker {speaker!r} (expected human or gpt)")
        loss = turn.get("loss")
        if loss is not None and not isinstance(loss, bool):
            raise UserError(f"{where}: turn {index}: 'loss' must be true, false or null, got {loss!r}")
        parsed.append((_SPEAKER_TO_ROLE[speaker], turn["value"], loss))

    acknowledgement = None
    if instruction_part is None:
        instruction_part = _is_instruction_part(parsed)
    if instruction_part:
        if len(parsed) < 2 or parsed[0][0] != "user" or parsed[1][0] != "assistant":
            raise UserError(f"{where}: eef.instruction_part is set but the first turns are not human, gpt")
        acknowledgement = parsed[1][1]
        parsed = [("system", parsed[0][1], None), *parsed[2:]]
    messages = []
    for role, value, loss in parsed:
        trained = role == "assistant" and (loss is True if fmt == "agentgym" else True)
        messages.append(Message(role=role, content=value, loss=trained))
    return messages, acknowledgement


def _is_instruction_part(turns: list[tuple[str, str, bool | None]]) -> bool:
    """A human turn answered by a gpt turn that names no action (and, in AgentGym, is not trained),
    followed by a human turn: the instruction prompt and its canned acknowledgement."""
    if len(turns) < 3 or [role for role, _, _ in turns[:3]] != ["user", "assistant", "user"]:
        return False
    _, reply, loss = turns[1]
    return loss is not True and not _ACTION_LINE.search(reply)


def _outcome(
    entry: dict[str, Any], eto_meta: dict[str, Any] | None, fmt: Format, where: str
) -> tuple[float, bool, bool]:
    """``(reward, success, assumed)``. Files without either (ETO's ScienceWorld/ALFWorld SFT data,
    AgentTraj-L) hold expert demonstrations kept for succeeding: reward 1 and success, marked assumed."""
    meta = eto_meta or {}
    reward = entry.get("reward", meta.get("reward"))
    success = entry.get("success") if fmt == "agentgym" else meta.get("success")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
        raise UserError(f"{where}: 'reward' must be a number, got {reward!r}")
    if success is not None and success not in (0, 1):  # AgentGym writes 0/1, ETO true/false
        raise UserError(f"{where}: 'success' must be true/false or 0/1, got {success!r}")
    if reward is None and success is None:
        return 1.0, True, True
    if success is None:
        return float(reward), float(reward) >= 1.0, False
    return float(reward if reward is not None else float(bool(success))), bool(success), False


def _termination(success: bool, eto_meta: dict[str, Any] | None) -> Termination:
    if success:
        return "success"
    return _ETO_TERMINATION.get(str((eto_meta or {}).get("terminate_reason")), "done")


def _task_id(public_id: Any, fmt: Format, env: str, where: str) -> str:
    if public_id is None or isinstance(public_id, bool) or not isinstance(public_id, str | int):
        raise UserError(f"{where}: needs an '{_ID_KEY[fmt]}' (string or number) to name its task")
    task_id = str(public_id)
    if fmt == "eto" and env == "sciworld":
        match = re.fullmatch(r"(\d+)_(\d+)", task_id)
        if match and int(match[1]) in _ETO_SCIWORLD_TASKS:
            return f"{_ETO_SCIWORLD_TASKS[int(match[1])]}-{match[2]}"
    return task_id


def _difficulty(task_id: str, env: str) -> str:
    # sciworld's difficulty level is its task name (docs/sciworld.md); other environments' levels
    # need the task list, which an import does not load.
    if env == "sciworld" and re.fullmatch(r"[a-z0-9-]+-\d+", task_id):
        return task_id.rsplit("-", 1)[0]
    return ""


def _unique_ids(trajectories: list[Trajectory]) -> list[Trajectory]:
    """Public files repeat ids (ETO's webshop_sft.json has task 4116 twice): later ones get ``#2``, ..."""
    seen: Counter[str] = Counter()
    result = []
    for trajectory in trajectories:
        seen[trajectory.id] += 1
        if seen[trajectory.id] > 1:
            trajectory = trajectory.model_copy(update={"id": f"{trajectory.id}#{seen[trajectory.id]}"})
        result.append(trajectory)
    return result


# ---------------------------------------------------------------- export


def export_trajectories(trajectories: list[Trajectory], format: str) -> list[dict[str, Any]]:
    """Our trajectories as ETO or AgentGym entries (a JSON list to write)."""
    fmt = _check_format(format)
    return [_export_one(trajectory, fmt) for trajectory in trajectories]


def _export_one(trajectory: Trajectory, fmt: Format) -> dict[str, Any]:
    meta = dict(trajectory.meta)
    extras = dict(meta.pop(fmt, None) or {})
    acknowledgement = meta.pop("acknowledgement", DEFAULT_ACKNOWLEDGEMENT[fmt])
    meta.pop("outcome_assumed", None)
    ours = trajectory.model_dump(mode="json", exclude={"messages", "reward", "success", "meta"})
    ours["meta"] = meta
    untrained = [i for i, m in enumerate(trajectory.messages) if m.role == "assistant" and not m.loss]

    conversations: list[dict[str, Any]] = []
    messages = trajectory.messages
    ours["instruction_part"] = bool(messages) and messages[0].role == "system"
    if ours["instruction_part"]:
        conversations += [_turn("human", messages[0].content, None, fmt), _turn("gpt", acknowledgement, False, fmt)]
        messages = messages[1:]
    for message in messages:
        speaker = "gpt" if message.role == "assistant" else "human"
        conversations.append(_turn(speaker, message.content, message.loss if speaker == "gpt" else None, fmt))

    if fmt == "eto":
        if untrained:
            ours["untrained_turns"] = untrained  # ETO trains every gpt turn and has no per-turn flag
        eto_meta = {
            "steps": trajectory.num_actions,
            "finished": True,
            "terminate_reason": _TERMINATION_TO_ETO.get(trajectory.termination, trajectory.termination),
            "error": None,
            **extras.pop("meta", {}),
            "reward": trajectory.reward,
            "success": trajectory.success,
            "eef": ours,
        }
        public_id = extras.pop("id", None)
        if public_id is None:
            public_id = _eto_id(trajectory)
        return {
            "id": public_id,
            "conversations": conversations,
            "reward": trajectory.reward,
            **extras,
            "meta": eto_meta,
        }
    item_id = extras.pop("item_id", trajectory.task_id)
    return {
        "item_id": item_id,
        "conversations": conversations,
        **extras,
        "reward": trajectory.reward,
        "success": int(trajectory.success),  # as AgentGym's evaluator writes it
        "eef": ours,
    }


def _turn(speaker: str, value: str, loss: bool | None, fmt: Format) -> dict[str, Any]:
    if fmt == "eto":
        return {"from": speaker, "value": value}
    return {"from": speaker, "loss": loss, "value": value}


def _eto_id(trajectory: Trajectory) -> str:
    if trajectory.env == "sciworld":
        name, _, variation = trajectory.task_id.rpartition("-")
        if name in _ETO_SCIWORLD_INDEX and variation.isdigit():
            return f"{_ETO_SCIWORLD_INDEX[name]}_{variation}"
    return trajectory.task_id


# ---------------------------------------------------------------- files (the CLI's commands)


def import_file(source: Path, format: str, env: str, out: Path, origin: str | None = None) -> dict[str, Any]:
    """``eef import``: convert ``source`` and write our JSONL atomically; returns the summary."""
    from eef.envs.registry import entries
    from eef.storage import write_trajectories

    known = [entry.name for entry in entries()]
    if env not in known:
        raise UserError(f"unknown environment {env!r}: choose one of {', '.join(known)} (see `eef envs`)")
    trajectories = import_trajectories(Path(source), format, env, origin)
    write_trajectories(Path(out), trajectories)
    return _report(trajectories, source, out, format)


def export_file(source: Path, format: str, out: Path) -> dict[str, Any]:
    """``eef export``: our JSONL -> one public JSON list, written atomically; returns the summary."""
    from eef.storage import read_trajectories, write_json

    _check_format(format)
    trajectories = read_trajectories(Path(source))
    write_json(Path(out), export_trajectories(trajectories, format))
    return _report(trajectories, source, out, format)


def _report(trajectories: list[Trajectory], source: Path, out: Path, fmt: str) -> dict[str, Any]:
    return {
        "format": fmt,
        "source": str(source),
        "out": str(out),
        "trajectories": len(trajectories),
        "successes": sum(t.success for t in trajectories),
        "agent_turns_trained": sum(m.loss for t in trajectories for m in t.messages if m.role == "assistant"),
    }
