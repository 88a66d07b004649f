"""Collection is resumable for every expert: finished episodes survive a kill, a rerun skips them."""

import json

import pytest

from eef.errors import UserError
from eef.experts.collect import collect_to_file, partial_path
from eef.storage import read_trajectories


def _collect(out, seed=0, limit=10):
    return collect_to_file(env_name="shop", expert_spec="scripted", split="train", out=out, seed=seed, limit=limit)


def test_a_rerun_keeps_finished_episodes_drops_a_torn_line_and_adds_no_duplicate(tmp_path):
    clean = tmp_path / "clean.jsonl"
    _collect(clean)
    expected = read_trajectories(clean)

    # What a kill leaves: four durable episodes (one of them twice) and half of a fifth.
    out = tmp_path / "resumed.jsonl"
    lines = clean.read_text().splitlines(keepends=True)
    partial_path(out).write_text("".join([*lines[:4], lines[2], lines[4][:50]]))
    report = _collect(out)
    assert report["resumed_episodes"] == 4
    assert [t.model_dump() for t in read_trajectories(out)] == [t.model_dump() for t in expected]
    assert not partial_path(out).exists()
    assert json.loads(out.with_suffix(".summary.json").read_text())["summary"] == report["summary"]


def test_a_partial_file_of_another_collection_is_refused(tmp_path):
    out = tmp_path / "x.jsonl"
    _collect(tmp_path / "seed1.jsonl", seed=1, limit=3)
    partial_path(out).write_text((tmp_path / "seed1.jsonl").read_text())
    with pytest.raises(UserError, match="holds an unfinished collection with other settings"):
        _collect(out, seed=0, limit=3)
