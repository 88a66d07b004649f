import json
from pathlib import Path

import pytest

from eef.errors import UserError
from eef.policy.folders import atomic_directory
from eef.storage import (
    append_jsonl,
    atomic_write_text,
    read_jsonl,
    read_trajectories,
    whole_chunks,
    write_jsonl,
    write_trajectories,
)
from eef.types import Message, StartState, Trajectory


def _trajectory(index: int, **overrides) -> Trajectory:
    fields = dict(
        id=f"t{index}",
        env="shop",
        task_id=f"shop-train-{index}",
        messages=[
            Message(role="system", content="rules"),
            Message(role="user", content="WebShop [SEP] Instruction: [SEP] buy socks"),
            Message(role="assistant", content="Thought: search\nAction: search[socks]", loss=True),
            Message(role="user", content="Back to Search [SEP] Page 1"),
        ],
        reward=0.5,
        success=False,
        origin="expert:scripted",
        start=StartState(expert_trajectory_id="expert:scripted/shop-train-3", action_index=2),
        termination="done",
        num_actions=1,
        seed=1234,
        difficulty="easy",
    )
    fields.update(overrides)
    return Trajectory(**fields)


def test_round_trip_keeps_every_field(tmp_path: Path):
    records = [_trajectory(i) for i in range(3)]
    path = tmp_path / "data.jsonl"
    assert write_trajectories(path, records) == 3
    assert read_trajectories(path) == records


def test_file_is_sharegpt_shaped(tmp_path: Path):
    path = tmp_path / "data.jsonl"
    write_trajectories(path, [_trajectory(0)])
    record = json.loads(path.read_text().splitlines()[0])
    assert [turn["from"] for turn in record["conversations"]] == ["system", "human", "gpt", "human"]
    assert record["conversations"][2] == {
        "from": "gpt",
        "value": "Thought: search\nAction: search[socks]",
        "loss": True,
    }


def test_reads_agentgym_style_null_loss():
    message = Message.model_validate({"from": "human", "value": "hi", "loss": None})
    assert message.role == "user" and message.loss is False


def test_bad_json_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_trajectory(0).model_dump(mode="json", by_alias=True))
    path.write_text(good + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        read_trajectories(path)


def test_invalid_record_names_field_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    record = _trajectory(0).model_dump(mode="json", by_alias=True)
    record["termination"] = "exploded"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:1: invalid Trajectory record: termination"):
        read_trajectories(path)


def test_missing_file_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="no such file"):
        read_trajectories(tmp_path / "absent.jsonl")


def test_torn_tail_is_dropped_only_when_asked(tmp_path: Path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [_trajectory(0), _trajectory(1)])
    with open(path, "a") as handle:
        handle.write('{"id": "t2", "env": "sh')  # a kill in the middle of an append
    assert [t.id for t in read_jsonl(path, Trajectory, drop_torn_tail=True)] == ["t0", "t1"]
    with pytest.raises(UserError):
        read_jsonl(path, Trajectory)


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path: Path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, [_trajectory(0)])

    class Exploding(Trajectory):
        def model_dump(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(path, [Exploding(**_trajectory(1).model_dump())])
    assert [t.id for t in read_trajectories(path)] == ["t0"]
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_unknown_speaker_names_the_file_speakers(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    record = _trajectory(0).model_dump(mode="json", by_alias=True)
    record["conversations"][1]["from"] = "robot"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(UserError, match=r"bad\.jsonl:1: .*conversations\.1\.from: .*system, human or gpt, got 'robot'"):
        read_trajectories(path)


def test_metrics_log_never_repeats_a_key_and_survives_a_torn_line(tmp_path: Path):
    from eef.metrics import MetricsLog

    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.log("sft/train", steps=3)
    log.log("sft/train", steps=4)
    with open(path, "a") as handle:
        handle.write('{"key": "rft/ex')  # a kill in the middle of a line
    resumed = MetricsLog(path)
    resumed.log("rft/explore", rollouts=2)
    assert [(r["key"], r.get("steps", r.get("rollouts"))) for r in resumed.records()] == [
        ("sft/train", 3),
        ("rft/explore", 2),
    ]


def test_whole_chunks_keeps_complete_chunks_and_cuts_what_a_kill_left(tmp_path: Path):
    path = tmp_path / "rollouts.jsonl"
    chunk = lambda t: t.meta["chunk"]  # noqa: E731
    records = [_trajectory(i, meta={"chunk": i // 2}) for i in range(5)]  # chunks of 2, 2 and 1
    append_jsonl(path, records[:2])
    append_jsonl(path, records[2:3])  # chunk 1 cut short by a kill
    with open(path, "a") as handle:
        handle.write('{"id": "torn')  # and a torn line after it
    kept, complete = whole_chunks(path, Trajectory, [2, 2, 1], chunk)
    assert [t.id for t in kept] == ["t0", "t1"] and complete == {0}
    assert read_jsonl(path, Trajectory) == kept  # the file holds the whole chunks only: chunk 1 appends anew
    append_jsonl(path, records[2:])
    assert whole_chunks(path, Trajectory, [2, 2, 1], chunk) == (records, {0, 1, 2})
    assert whole_chunks(tmp_path / "none.jsonl", Trajectory, [2], chunk) == ([], set())
    assert not (tmp_path / "none.jsonl").exists()


def test_atomic_writes_are_as_readable_as_any_new_file_or_folder(tmp_path: Path):
    # mkstemp and mkdtemp make private files and folders: a results table, report or checkpoint shared with a
    # team (or served) must get the permissions open() and mkdir() give under the process's umask.
    (tmp_path / "plain.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    atomic_write_text(tmp_path / "results.json", "{}")
    with atomic_directory(tmp_path / "checkpoint") as staging:
        (staging / "config.json").write_text("{}")

    def mode(name: str) -> int:
        return (tmp_path / name).stat().st_mode & 0o777

    assert mode("results.json") == mode("plain.json")
    assert mode("checkpoint") == mode("plain")
