"""ETO and AgentGym files <-> ours: lossless round trips, the public shapes as their repositories write
them, the CLI's summaries, and one-line errors for bad files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eef.errors import UserError
from eef.interchange import export_trajectories, import_trajectories
from eef.storage import read_trajectories, write_trajectories
from eef.types import Message, StartState, Trajectory

# Shaped as ETO's data/sciworld_sft.json and data/webshop_sft.json (instruction, "OK", task, turns...);
# webshop entries carry `reward` and `source`, numeric ids, and the file repeats an id.
ETO_SFT = [
    {
        "id": "0_21",
        "conversations": [
            {"from": "human", "value": "You are a helpful assistant to do some scientific experiment."},
            {"from": "gpt", "value": "OK"},
            {"from": "human", "value": "Task Description:\nYour task is to boil water."},
            {"from": "gpt", "value": "Thought: I should go to the kitchen.\nAction: teleport to kitchen"},
            {"from": "human", "value": "Observation: You teleport to the kitchen."},
            {"from": "gpt", "value": "Thought: Focus on the water.\nAction: focus on water"},
        ],
    },
    {
        "id": 4116,
        "reward": 0.75,
        "source": "human",
        "conversations": [
            {"from": "human", "value": "You are web shopping."},
            {"from": "gpt", "value": "OK"},
            {"from": "human", "value": "WebShop [SEP] Instruction: [SEP] socks [SEP] Search"},
            {"from": "gpt", "value": "Thought: search.\nAction: search[socks]"},
        ],
    },
    {
        "id": 4116,
        "reward": 1.0,
        "source": "human",
        "conversations": [
            {"from": "human", "value": "You are web shopping."},
            {"from": "gpt", "value": "OK"},
            {"from": "human", "value": "WebShop [SEP] Instruction: [SEP] socks [SEP] Search"},
            {"from": "gpt", "value": "Thought: buy.\nAction: click[buy now]"},
        ],
    },
]

# Shaped as ETO's exploration output (eval_agent State.to_dict: `meta` + `conversations`, one task per
# file named after the task id, the prompt and task in one first human turn).
ETO_OUTPUT = {
    "meta": {
        "steps": 1,
        "reward": 0.25,
        "finished": True,
        "success": False,
        "terminate_reason": "max_steps",
        "error": None,
    },
    "conversations": [
        {"from": "human", "value": "You are a helpful assistant...\nTask Description:\nYour task is to melt ice."},
        {"from": "gpt", "value": "Thought: go.\nAction: teleport to kitchen"},
        {"from": "human", "value": "Observation: You teleport to the kitchen."},
    ],
}

# Shaped as AgentGym's AgentTraj-L (item_id, per-turn loss, null on human turns) and its evaluator's
# JSON lines (with reward and success 0/1).
AGENTGYM_TRAJ = [
    {
        "conversations": [
            {"from": "human", "loss": None, "value": "You are an agent for science world. ..."},
            {
                "from": "gpt",
                "loss": False,
                "value": "OK. I'll follow your instructions and try my best to solve the task.",
            },
            {"from": "human", "loss": None, "value": "Your task is to boil water.\nThis room is called the hallway."},
            {"from": "gpt", "loss": True, "value": "Thought:\nFind water.\n\nAction:\ngo to kitchen"},
            {"from": "human", "loss": None, "value": "You move to the kitchen."},
            {"from": "gpt", "loss": False, "value": "Thought:\nLook.\n\nAction:\nlook around"},
        ],
        "item_id": "sciworld_12",
    }
]
AGENTGYM_EVAL_LINE = {
    "conversations": [
        {"from": "human", "loss": None, "value": "You are web shopping. ..."},
        {"from": "gpt", "loss": False, "value": "Ok."},
        {"from": "human", "loss": None, "value": "WebShop [SEP] Instruction: [SEP] socks [SEP] Search"},
        {"from": "gpt", "loss": True, "value": "Thought:\nSearch.\n\nAction:\nsearch[socks]"},
        {"from": "human", "loss": None, "value": "Your score: 0.5"},
    ],
    "item_id": "webshop_5238",
    "reward": 0.5,
    "success": 0,
}


def _ours(index: int, **overrides) -> Trajectory:
    fields = dict(
        id=f"solution:a{index}:policy:x/boil-{index}|s0|0",
        env="sciworld",
        task_id=f"boil-{index}",
        messages=[
            Message(role="system", content="rules"),
            Message(role="user", content="Your task is to boil water."),
            Message(role="assistant", content="Thought: a\nAction: teleport to kitchen", loss=False),
            Message(role="user", content="You teleport."),
            Message(role="assistant", content="Thought: b\nAction: focus on water", loss=True),
            Message(role="user", content="Done."),
        ],
        reward=0.83,
        success=False,
        origin="policy:ckpt",
        start=StartState(expert_trajectory_id="expert:gold/boil-3", action_index=1),
        termination="step_limit",
        num_actions=2,
        seed=77,
        difficulty="boil",
        prompt_tokens=10,
        prefilled_tokens=4,
        generated_tokens=6,
        meta={"important_state": 1},
    )
    fields.update(overrides)
    return Trajectory(**fields)


@pytest.mark.parametrize("fmt", ["eto", "agentgym"])
def test_round_trip_ours_public_ours_is_lossless(tmp_path: Path, fmt: str):
    ours = [_ours(1), _ours(2, success=True, reward=1.0, termination="success")]
    ours.append(_ours(3, messages=[Message(role="user", content="no system"), Message(role="assistant", content="x")]))
    path = tmp_path / "public.json"
    path.write_text(json.dumps(export_trajectories(ours, fmt)))
    assert import_trajectories(path, fmt, "sciworld") == ours


def test_eto_export_shape(tmp_path: Path):
    [entry] = export_trajectories([_ours(21)], "eto")
    assert entry["id"] == "0_21"  # ETO's <taskname2id index>_<variation>
    assert [t["from"] for t in entry["conversations"]] == ["human", "gpt", "human", "gpt", "human", "gpt", "human"]
    assert entry["conversations"][:2] == [{"from": "human", "value": "rules"}, {"from": "gpt", "value": "OK"}]
    assert {"steps", "reward", "finished", "success", "terminate_reason", "error"} <= set(entry["meta"])
    assert entry["meta"]["terminate_reason"] == "max_steps"
    assert entry["meta"]["eef"]["untrained_turns"] == [2]


def test_agentgym_export_shape():
    [entry] = export_trajectories([_ours(21)], "agentgym")
    assert entry["item_id"] == "boil-21" and entry["success"] == 0 and entry["reward"] == 0.83
    assert entry["conversations"][:3] == [
        {"from": "human", "loss": None, "value": "rules"},
        {"from": "gpt", "loss": False, "value": "Ok."},
        {"from": "human", "loss": None, "value": "Your task is to boil water."},
    ]
    assert [t["loss"] for t in entry["conversations"] if t["from"] == "gpt"] == [False, False, True]


def test_import_eto_sft(tmp_path: Path):
    path = tmp_path / "sciworld_sft.json"
    path.write_text(json.dumps(ETO_SFT))
    boil, socks, socks_again = import_trajectories(path, "eto", "sciworld", origin="gpt-4")
    assert boil.id == "expert:gpt-4/boil-21" and boil.task_id == "boil-21" and boil.difficulty == "boil"
    assert [m.role for m in boil.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert boil.messages[0].content == "You are a helpful assistant to do some scientific experiment."
    assert all(m.loss for m in boil.messages if m.role == "assistant")  # ETO trains every gpt turn
    # No reward in ETO's ScienceWorld SFT data: an expert demonstration, marked as assumed.
    assert (boil.reward, boil.success, boil.termination, boil.num_actions) == (1.0, True, "success", 2)
    assert boil.meta == {"eto": {"id": "0_21"}, "outcome_assumed": True}
    assert (socks.task_id, socks.reward, socks.success, socks.termination) == ("4116", 0.75, False, "done")
    assert socks.meta == {"eto": {"id": 4116, "source": "human"}}
    assert socks_again.id == "expert:gpt-4/4116#2" and socks_again.success
    # And back: the public file comes out as it went in, plus reward and ETO's meta.
    for original, exported in zip(ETO_SFT, export_trajectories([boil, socks, socks_again], "eto"), strict=True):
        assert exported["id"] == original["id"] and exported["conversations"] == original["conversations"]
        assert exported.get("source") == original.get("source")


def test_import_eto_output_folder(tmp_path: Path):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "3_7.json").write_text(json.dumps(ETO_OUTPUT))
    [melt] = import_trajectories(tmp_path / "outputs", "eto", "sciworld")
    assert melt.id == "expert:imported-eto/melt-7" and melt.origin == "expert:imported-eto"
    assert [m.role for m in melt.messages] == ["user", "assistant", "user"]  # no canned "OK": no system turn
    assert (melt.reward, melt.success, melt.termination) == (0.25, False, "step_limit")
    [back] = export_trajectories([melt], "eto")
    assert back["conversations"] == ETO_OUTPUT["conversations"]
    assert {k: back["meta"][k] for k in ETO_OUTPUT["meta"]} == ETO_OUTPUT["meta"]


def test_import_agentgym(tmp_path: Path):
    traj = tmp_path / "sciworld_train.json"
    traj.write_text(json.dumps(AGENTGYM_TRAJ))
    [boil] = import_trajectories(traj, "agentgym", "sciworld")
    assert boil.task_id == "sciworld_12" and boil.id == "expert:imported-agentgym/sciworld_12"
    assert [(m.role, m.loss) for m in boil.messages] == [
        ("system", False),
        ("user", False),
        ("assistant", True),
        ("user", False),
        ("assistant", False),  # AgentGym's per-turn loss is kept
    ]
    assert boil.meta["acknowledgement"].startswith("OK. I'll follow")
    assert boil.success and boil.meta["outcome_assumed"]
    [back] = export_trajectories([boil], "agentgym")
    assert back["conversations"] == AGENTGYM_TRAJ[0]["conversations"] and back["item_id"] == "sciworld_12"

    lines = tmp_path / "eval.jsonl"
    lines.write_text(json.dumps(AGENTGYM_EVAL_LINE) + "\n" + json.dumps(AGENTGYM_EVAL_LINE) + "\n")
    first, second = import_trajectories(lines, "agentgym", "webshop")
    assert (first.reward, first.success, first.termination, first.num_actions) == (0.5, False, "done", 1)
    assert "acknowledgement" not in first.meta and second.id.endswith("#2")


def _eef(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eef", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "EEF_QUIET": "1"},
        timeout=120,
    )


def _one_error_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_import_then_stats_and_export(tmp_path: Path):
    source, ours, back = tmp_path / "sft.json", tmp_path / "ours.jsonl", tmp_path / "back.json"
    source.write_text(json.dumps(ETO_SFT))
    result = _eef("import", "--format", "eto", str(source), "--env", "sciworld", "--out", str(ours))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 trajectories (2 successes, 4 trained agent turns)")
    stats = json.loads(_eef("stats", str(ours), "--json").stdout)
    assert stats["overall"]["episodes"] == 3 and stats["overall"]["successes"] == 2
    result = _eef("export", "--format", "agentgym", str(ours), "--out", str(back), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trajectories"] == 3
    assert [e["item_id"] for e in json.loads(back.read_text())] == ["boil-21", "4116", "4116"]


def test_cli_bad_files(tmp_path: Path):
    out = tmp_path / "out.jsonl"

    def run(content: str, fmt: str = "eto", env: str = "sciworld") -> subprocess.CompletedProcess:
        path = tmp_path / "in.json"
        path.write_text(content)
        return _eef("import", "--format", fmt, str(path), "--env", env, "--out", str(out))

    _one_error_line(run("[{"), "in.json:1", "not valid JSON")
    _one_error_line(run('"text"'), "expected a JSON list")
    _one_error_line(run('[{"id": "a"}]'), "entry 0 (id a)", "no 'conversations'")
    bad_speaker = [{"id": "b", "conversations": [{"from": "robot", "value": "hi"}]}]
    _one_error_line(run(json.dumps(bad_speaker)), "entry 0 (id b)", "turn 0", "unknown speaker 'robot'")
    _one_error_line(run(json.dumps(AGENTGYM_TRAJ)), "item_id sciworld_12", "use --format agentgym")
    _one_error_line(run(json.dumps(ETO_SFT), fmt="agentgym"), "entry 0", "use --format eto")
    _one_error_line(run(json.dumps(ETO_SFT), env="mars"), "unknown environment 'mars'")
    assert not out.exists()  # nothing half-written
    ours = tmp_path / "ours.jsonl"
    write_trajectories(ours, [_ours(1)])
    _one_error_line(
        _eef("import", "--format", "eto", str(ours), "--env", "sciworld", "--out", str(out)), "eef trajectory file"
    )
    assert read_trajectories(ours) == [_ours(1)]


def test_env_mismatch_with_our_export(tmp_path: Path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(export_trajectories([_ours(1)], "eto")))
    with pytest.raises(UserError, match="exported from environment 'sciworld'"):
        import_trajectories(path, "eto", "shop")
