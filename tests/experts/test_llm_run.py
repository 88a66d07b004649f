"""A run config names chat-model experts: each is collected, tagged and fed to the run like a scripted one."""

import json
from pathlib import Path

import pytest
from tests.experts.servers import SERVER_ERROR, ChatServer, next_turns

from eef.config import load_config
from eef.errors import IncompleteError, UserError
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.run import Run


def _config(tmp_path: Path, text: str, *overrides: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return load_config(path, list(overrides))


def test_a_run_collects_a_scripted_and_two_tagged_chat_model_experts(tmp_path):
    with ChatServer() as cheap, ChatServer() as strong:
        text = f"""
env: {{train_tasks: 3, test_tasks: 2}}
experts: [scripted, strong, cheap]
llm_experts:
  strong: {{model: replay, base_url: "{strong.url}", price_input: 2.5, price_output: 10.0, backoff_s: 0.01}}
  cheap: {{model: replay, base_url: "{cheap.url}", concurrency: 2}}
methods: [{{name: eef-3, kind: eef, experts: [scripted, strong, cheap]}}]
"""
        config = _config(tmp_path, text)
        run = Run.create(tmp_path / "run", config)
        # The strong server answers with the scripted expert's turns; the cheap one with turns naming no action.
        scripted = collect(run.suite, make_expert("shop", "scripted"), run.tasks.train + run.tasks.test, seed=0)
        strong.turns = next_turns(scripted)
        data = {name: run._expert_data(name) for name in config.experts}
    assert {name: {t.origin for t in ts} for name, ts in data.items()} == {
        "scripted": {"expert:scripted"},
        "strong": {"expert:strong"},
        "cheap": {"expert:cheap"},
    }
    assert [t.messages for t in data["strong"]] == [t.messages for t in data["scripted"]]
    assert all(t.termination == "invalid_limit" for t in data["cheap"])
    for name in config.experts:
        for split in ("train", "test"):
            assert (tmp_path / "run" / "experts" / f"{name}-{split}.summary.json").is_file()
    metrics = {r["key"]: r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())}
    strong_train = metrics["expert/strong/train"]
    assert strong_train["generated_tokens"] == sum(t.generated_tokens for t in data["strong"]) > 0
    cost = (2.5 * strong_train["prompt_tokens"] + 10.0 * strong_train["generated_tokens"]) / 1e6
    assert strong_train["cost_usd"] == pytest.approx(cost)
    assert metrics["expert/cheap/train"]["cost_usd"] is None  # no prices: no cost claimed
    assert "api_key" not in (tmp_path / "run" / "config.yaml").read_text().replace("api_key_env", "")


def test_a_run_stops_with_one_line_when_an_expert_cannot_be_collected(tmp_path):
    with ChatServer(fail_when=lambda messages: SERVER_ERROR) as server:
        text = f"""
env: {{train_tasks: 2, test_tasks: 1}}
experts: [down]
llm_experts: {{down: {{model: m, base_url: "{server.url}", max_retries: 1, backoff_s: 0.01}}}}
"""
        run = Run.create(tmp_path / "run", _config(tmp_path, text))
        with pytest.raises(IncompleteError, match="2 of 2 episodes could not be collected"):
            run._expert_data("down")
    assert not (tmp_path / "run" / "experts" / "down-train.summary.json").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("experts: [scripted]\nllm_experts: {gpt: {model: gpt-4o}}\n", "llm_experts names 'gpt', which is not in"),
        ("experts: ['openai:Qwen/Qwen2.5-7B']\n", "name it"),
        ("experts: [g]\nllm_experts: {g: {model: gpt-4o, concurrency: 0}}\n", "concurrency"),
        ("experts: [g]\nllm_experts: {g: {model: gpt-4o, api_key: sk-x}}\n", "api_key"),
        ("experts: [g]\nllm_experts: {g: {model: gpt-4o, api_key_env: 'my key'}}\n", "api_key_env"),
    ],
)
def test_bad_chat_model_expert_configs_are_user_errors(tmp_path, text, needle):
    with pytest.raises(UserError, match=needle):
        _config(tmp_path, text)


def test_openai_specs_need_no_llm_experts_entry(tmp_path):
    config = _config(tmp_path, "experts: [scripted, 'openai:gpt-4o-mini']\n")
    assert config.experts == ["scripted", "openai:gpt-4o-mini"] and config.llm_experts == {}
