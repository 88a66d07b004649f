"""The chat-model expert against real loopback HTTP servers that answer like a known expert.

The server replays the scripted shop expert's turns for each conversation it recorded, so a correct
client must reproduce the scripted trajectories exactly (successes and failures), through retries and
resumes. Faults (429, 5xx, malformed bodies, dropped connections, a server that is down) are injected."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.experts.servers import (
    DROPPED,
    MALFORMED_JSON,
    NO_CHOICES,
    RATE_LIMITED,
    SERVER_ERROR,
    ChatServer,
    Fault,
    free_port,
    next_turns,
)

from eef.cli import main
from eef.envs.registry import get_suite
from eef.errors import IncompleteError, UserError
from eef.experts.collect import (
    _token_totals,
    collect,
    collect_async,
    collect_to_file,
    partial_path,
    raise_if_incomplete,
)
from eef.experts.llm import (
    CachedResponse,
    LLMExpert,
    LLMExpertSettings,
    cache_path,
    clip_turn,
    parse_spec,
    settings_from_spec,
)
from eef.experts.registry import make_expert
from eef.react import INVALID_TURN
from eef.storage import read_jsonl, read_trajectories
from eef.types import Trajectory

SECRET = "sk-test-5ecret-never-written"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 10.0}


@pytest.fixture(scope="module")
def scripted() -> tuple[list, list[Trajectory]]:
    """Six shop tasks the scripted expert plays to the end (it never gives up on them): some succeed, some fail."""
    suite = get_suite("shop")
    tasks = suite.tasks("train")[:12]
    trajectories = collect(suite, make_expert("shop", "scripted"), tasks, seed=0)
    kept = [(task, t) for task, t in zip(tasks, trajectories, strict=True) if t.termination != "gave_up"][:6]
    assert {t.success for _, t in kept} == {True, False}
    return [task for task, _ in kept], [t for _, t in kept]


def _limit_to(tasks: list, split_tasks: list) -> int:
    """--limit that covers ``tasks`` (a prefix of the split with some tasks skipped)."""
    ids = [t.task_id for t in split_tasks]
    return max(ids.index(task.task_id) for task in tasks) + 1


def _collect(out: Path, server: ChatServer, limit: int, **options) -> dict:
    settings = LLMExpertSettings(model="replay", base_url=server.url, **{**FAST, **options})
    return collect_to_file(
        env_name="shop", expert_spec="replay", split="train", out=out, seed=0, limit=limit, llm=settings
    )


def _same_episode(ours: Trajectory, theirs: Trajectory) -> None:
    assert ours.messages == theirs.messages
    assert (ours.reward, ours.success, ours.termination, ours.num_actions) == (
        theirs.reward,
        theirs.success,
        theirs.termination,
        theirs.num_actions,
    )


def test_replays_the_scripted_expert_exactly_and_counts_tokens_and_cost(tmp_path, scripted):
    tasks, expected = scripted
    split = get_suite("shop").tasks("train")
    limit = _limit_to(tasks, split)
    by_task = {t.task_id: t for t in expected}
    turns = next_turns(expected)
    out = tmp_path / "llm.jsonl"
    with ChatServer(turns) as server:
        report = _collect(out, server, limit, price_input=2.0, price_cached_input=0.5, price_output=8.0, concurrency=4)
        first_requests = len(server.requests)
    trajectories = read_trajectories(out)
    replayed = [t for t in trajectories if t.task_id in by_task]
    assert len(replayed) == len(tasks)
    for trajectory in replayed:
        _same_episode(trajectory, by_task[trajectory.task_id])
        assert trajectory.origin == "expert:replay" and trajectory.id == f"expert:replay/{trajectory.task_id}"
        assert trajectory.generated_tokens == sum(len(turn.split()) for turn in trajectory.agent_turns())
        # The server reports all but each request's newest message as cached: the observations are prefilled.
        newest = [trajectory.messages[i - 1] for i, m in enumerate(trajectory.messages) if m.role == "assistant"]
        assert trajectory.prefilled_tokens == sum(len(m.content.split()) for m in newest) < trajectory.prompt_tokens
    assert [t.task_id for t in trajectories] == [t.task_id for t in split[:limit]]  # task order, each once
    usage = report["usage"]
    assert usage["requests"] == first_requests == sum(t.num_actions for t in trajectories)
    assert usage["retries"] == usage["cached_responses"] == usage["failed_requests"] == 0
    assert usage["prompt_tokens"] == report["tokens"]["prompt"] == sum(t.prompt_tokens for t in trajectories)
    assert usage["completion_tokens"] == report["tokens"]["generated"]
    cached = usage["cached_prompt_tokens"]
    assert cached == report["tokens"]["cached_prompt"] > 0
    assert cached == sum(t.prompt_tokens - t.prefilled_tokens for t in trajectories)
    cost = (2.0 * (usage["prompt_tokens"] - cached) + 0.5 * cached + 8.0 * usage["completion_tokens"]) / 1e6
    to_the_micro_dollar = pytest.approx(cost, abs=1e-6)
    assert usage["cost_usd"] == to_the_micro_dollar and report["tokens"]["cost_usd"] == to_the_micro_dollar
    assert len(read_jsonl(cache_path(out), CachedResponse)) == first_requests
    assert not partial_path(out).exists()

    # Collecting again (the finished file replaced) asks the server nothing: every answer is cached.
    with ChatServer(turns) as server:
        again = _collect(out, server, limit)
        assert server.requests == []
    assert again["usage"]["cached_responses"] == first_requests and again["usage"]["requests"] == 0
    assert "cost_usd" not in again["usage"]  # no prices given this time
    assert [t.messages for t in read_trajectories(out)] == [t.messages for t in trajectories]


def test_transient_faults_are_retried_and_change_nothing(tmp_path, scripted):
    tasks, expected = scripted
    limit = _limit_to(tasks[:2], get_suite("shop").tasks("train"))
    faults = [RATE_LIMITED, SERVER_ERROR, MALFORMED_JSON, NO_CHOICES, DROPPED, Fault(status=503)]
    with ChatServer(next_turns(expected), faults=faults) as server:
        report = _collect(tmp_path / "llm.jsonl", server, limit, concurrency=1)
    assert report["failed"] == [] and report["usage"]["retries"] == len(faults)
    assert report["usage"]["requests"] == report["usage"]["retries"] + sum(
        t.num_actions for t in read_trajectories(tmp_path / "llm.jsonl")
    )
    by_task = {t.task_id: t for t in expected}
    for trajectory in read_trajectories(tmp_path / "llm.jsonl"):
        if trajectory.task_id in by_task:
            _same_episode(trajectory, by_task[trajectory.task_id])


def _eef(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eef", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, "EEF_QUIET": "1", **extra}


def test_a_failing_episode_is_reported_kept_out_and_retried_by_a_rerun(tmp_path, scripted):
    """Through the CLI: one task's requests always fail (500, with the key echoed in the error); the others
    are collected; exit code 1 with one line; a rerun, once the server is fixed, asks only for that task.
    The API key reaches the server and is written nowhere."""
    tasks, expected = scripted
    bad = tasks[1]
    bad_expected = next(t for t in expected if t.task_id == bad.task_id)
    limit = str(_limit_to(tasks[:3], get_suite("shop").tasks("train")))

    def fails_on_bad_task(messages):
        if messages[1]["content"] == bad_expected.messages[1].content:  # the task's first observation
            return Fault(status=500, body=json.dumps({"error": {"message": f"upstream rejected key {SECRET}"}}))
        return None

    out = tmp_path / "llm.jsonl"
    command = ["collect", "--expert", "openai:replay@replay", "--limit", limit, "--out", str(out), "--json"]
    command += ["--max-retries", "2", "--backoff", "0.01", "--concurrency", "2"]
    env = _cli_env(OPENAI_API_KEY=SECRET)
    with ChatServer(next_turns(expected), fail_when=fails_on_bad_task) as server:
        first = _eef(*command, "--base-url", server.url, env=env)
        first_requests = list(server.requests)
    assert first.returncode == 1, first.stderr
    error_lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith("eef: error: 1 of ")
    assert f"task {bad.task_id}: HTTP 500" in error_lines[0] and "gave up after 3 attempts" in error_lines[0]
    assert "rerun the same command" in error_lines[0]
    report = json.loads(first.stdout)
    assert [f["task_id"] for f in report["failed"]] == [bad.task_id]
    assert report["usage"]["failed_requests"] == 1 and report["usage"]["retries"] == 2
    assert not out.exists() and not out.with_suffix(".summary.json").exists()
    kept = read_trajectories(partial_path(out))
    assert bad.task_id not in {t.task_id for t in kept} and len(kept) == int(limit) - 1
    assert all(auth == f"Bearer {SECRET}" for _, auth in first_requests)

    with ChatServer(next_turns(expected)) as server:
        second = _eef(*command, "--base-url", server.url, env=env)
        assert len(server.requests) == bad_expected.num_actions  # only the failed episode is played again
    assert second.returncode == 0, second.stderr
    final = read_trajectories(out)
    assert [t.task_id for t in final] == [t.task_id for t in get_suite("shop").tasks("train")[: int(limit)]]
    _same_episode(next(t for t in final if t.task_id == bad.task_id), bad_expected)
    assert json.loads(second.stdout)["resumed_episodes"] == int(limit) - 1
    assert not partial_path(out).exists()

    outputs = [first.stdout, first.stderr, second.stdout, second.stderr]
    outputs += [path.read_text() for path in tmp_path.rglob("*") if path.is_file()]
    assert not any(SECRET in text for text in outputs)
    assert "***" in first.stdout  # the server's echo of the key was redacted from the error


def _eef_here(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """`eef ARGS` in this process (no interpreter start-up), without OPENAI_* variables; (exit code, stdout, stderr)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EEF_QUIET", "1")
    code = main(list(args))  # the CLI's consoles write to sys.stdout / sys.stderr as they are: capsys's
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_server_that_is_down_fails_every_episode_with_one_clear_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "llm.jsonl"
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    command = ["collect", "--expert", "openai:any", "--base-url", url, "--limit", "2", "--out", str(out)]
    code, stdout, stderr = _eef_here(capsys, monkeypatch, *command, "--max-retries", "1", "--backoff", "0.01")
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "2 of 2 episodes could not be collected" in lines[0]
    assert f"cannot reach {url}" in lines[0] and "gave up after 2 attempts" in lines[0]
    assert "failed: task" in stdout and not out.exists()


def test_errors_that_retrying_cannot_fix_are_not_retried(tmp_path, scripted):
    unauthorized = Fault(status=401, body='{"error": {"message": "Incorrect API key provided"}}')
    with ChatServer(next_turns(scripted[1]), fail_when=lambda messages: unauthorized) as server:
        report = _collect(tmp_path / "llm.jsonl", server, limit=2)
        assert len(server.requests) == 2  # one per episode, no retries
    assert report["usage"]["retries"] == 0 and len(report["failed"]) == 2
    assert "HTTP 401" in report["failed"][0]["error"] and "not retried" in report["failed"][0]["error"]
    with pytest.raises(IncompleteError, match="2 of 2 episodes could not be collected"):
        raise_if_incomplete(report)


@pytest.mark.parametrize(("max_envs", "in_flight"), [(None, 4), (2, 2)])
def test_episodes_run_concurrently_within_the_environments_bound(tmp_path, max_envs, in_flight):
    suite = get_suite("shop")
    suite.max_concurrent_envs = max_envs  # this instance only
    made = suite.make
    alive = []

    def counted_make():
        alive.append(1)
        return made()

    suite.make = counted_make
    with ChatServer({}, delay_s=0.1) as server:
        expert = LLMExpert("m", LLMExpertSettings(model="m", base_url=server.url, concurrency=4), tmp_path / "c.jsonl")
        result = asyncio.run(collect_async(suite, expert, suite.tasks("train")[:6], seed=0))
    assert len(result.trajectories) == 6 and server.max_in_flight == in_flight
    assert len(alive) == in_flight  # one environment per worker, reused across its episodes


def test_a_turn_without_an_action_gets_the_students_invalid_turn_observation(tmp_path):
    """The episode goes on as the student's rollouts do, and ends after 3 invalid turns in a row."""
    with ChatServer({}) as server:  # answers every conversation "Thought: I do not know this page."
        _collect(tmp_path / "llm.jsonl", server, limit=1)
    (trajectory,) = read_trajectories(tmp_path / "llm.jsonl")
    assert trajectory.termination == "invalid_limit" and trajectory.num_actions == 3 and not trajectory.success
    assert [m.content for m in trajectory.messages[3::2]] == [INVALID_TURN] * 3


def test_missing_key_for_openais_api_is_a_user_error(tmp_path, capsys, monkeypatch):
    command = ["collect", "--expert", "openai:gpt-4o-mini", "--limit", "1", "--out", str(tmp_path / "x.jsonl")]
    code, _, stderr = _eef_here(capsys, monkeypatch, *command)
    assert code == 2
    assert stderr.strip() == (
        "eef: error: set OPENAI_API_KEY to your API key (or give --base-url for a server that needs none)"
    )


@pytest.mark.parametrize(
    ("flag", "value"), [("--base-url", "http://127.0.0.1:1/v1"), ("--backoff", "1"), ("--timeout", "5")]
)
def test_llm_options_need_a_chat_model_expert(tmp_path, capsys, monkeypatch, flag, value):
    command = ["collect", flag, value, "--out", str(tmp_path / "x.jsonl")]
    code, _, stderr = _eef_here(capsys, monkeypatch, *command)
    assert code == 2 and f"eef: error: {flag} applies to chat-model experts only" in stderr  # the flag as typed


def test_spec_names_and_settings():
    assert parse_spec("openai:gpt-4o") == ("gpt-4o", "openai:gpt-4o")
    assert parse_spec("openai:gpt-4o@strong") == ("gpt-4o", "strong")
    assert parse_spec("openai:Qwen/Qwen2.5-7B-Instruct@qwen") == ("Qwen/Qwen2.5-7B-Instruct", "qwen")
    assert parse_spec("openai:ft:gpt-4o:org::abc") == ("ft:gpt-4o:org::abc", "openai:ft:gpt-4o:org::abc")
    with pytest.raises(UserError, match="openai:MODEL"):
        parse_spec("openai:")
    with pytest.raises(UserError, match="concurrency"):
        settings_from_spec("openai:gpt-4o", concurrency=0)
    assert settings_from_spec("openai:m", temperature=None)[1].temperature == 0.0  # unset flags keep defaults


def test_turns_are_clipped_after_their_first_action_line():
    assert clip_turn("  Thought: a\nAction: search[x]\nObservation: made up\nAction: click[y]") == (
        "Thought: a\nAction: search[x]"
    )
    assert clip_turn("Thought: only thinking\n") == "Thought: only thinking"


def test_reasoning_models_get_max_completion_tokens_and_no_sampling_parameters(tmp_path, capsys, monkeypatch):
    sent = {}
    for flags in ([], ["--reasoning-model"]):
        with ChatServer() as server:
            command = ["collect", "--expert", "openai:o3-mini", "--base-url", server.url, "--limit", "2"]
            code, _, stderr = _eef_here(
                capsys, monkeypatch, *command, "--out", str(tmp_path / f"{len(flags)}.jsonl"), *flags
            )
            assert code == 0, stderr
            sent[bool(flags)] = server.bodies
    assert sent[False] and all(b["max_tokens"] == 256 and b["temperature"] == 0.0 for b in sent[False])
    assert sent[True] and all(b["max_completion_tokens"] == 256 for b in sent[True])
    assert not any({"max_tokens", "temperature", "top_p"} & set(body) for body in sent[True])


def test_episodes_written_before_prefilled_tokens_were_counted_are_priced_as_computed(tmp_path, scripted):
    """Older files have ``prefilled_tokens`` 0 for an LLM expert's episodes: none of their prompt tokens
    is priced as cached (a model computes at least one token of every prompt)."""
    _, trajectories = scripted
    settings = LLMExpertSettings(model="replay", price_input=2.0, price_cached_input=0.5, price_output=8.0)
    expert = LLMExpert("replay", settings, tmp_path / "cache.jsonl")
    new = trajectories[0].model_copy(update={"prompt_tokens": 1000, "prefilled_tokens": 100, "generated_tokens": 10})
    old = trajectories[1].model_copy(update={"prompt_tokens": 500, "prefilled_tokens": 0, "generated_tokens": 10})
    totals = _token_totals(expert, [new, old])
    assert totals["cached_prompt"] == 900
    assert totals["cost_usd"] == pytest.approx((2.0 * 600 + 0.5 * 900 + 8.0 * 20) / 1e6)
