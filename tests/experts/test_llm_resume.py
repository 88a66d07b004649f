"""Acceptance: `eef collect --expert openai:...` against a real OpenAI-compatible server (`transformers serve`
with a tiny model), killed halfway and resumed: every task ends up once, and no cached answer is asked again."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.experts.servers import ChatServer, free_port

from eef.envs.registry import get_suite
from eef.experts.collect import partial_path
from eef.experts.llm import CachedResponse, cache_path
from eef.policy.models import Policy, save_policy
from eef.policy.tiny import TinySize, build_tiny_model, build_tiny_tokenizer
from eef.storage import read_jsonl, read_trajectories

TASKS = 6


@pytest.fixture(scope="module")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve` on a free loopback port with a freshly built tiny model; yields (base URL, model)."""
    folder = tmp_path_factory.mktemp("serve") / "tiny"
    suite = get_suite("shop")
    tokenizer = build_tiny_tokenizer([suite.instruction], vocab_size=400)
    model = build_tiny_model(tokenizer, TinySize(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))
    save_policy(Policy(model, tokenizer, "tiny"), folder)
    port = free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(folder)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    log_path = folder.parent / "serve.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError as err:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not start:\n{log_path.read_text()}") from err
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


def _requests_once_quiet(proxy: ChatServer, quiet_s: float = 1.0) -> int:
    """How many requests ``proxy`` has recorded once nothing arrives or is answered for ``quiet_s``: a request
    the killed process sent just before the kill reaches the proxy's handler a little later, and must not be
    counted as the resumed process's."""
    deadline = time.monotonic() + 60
    seen = -1
    while seen != len(proxy.requests) or proxy.in_flight:
        assert time.monotonic() < deadline, "the proxy never went quiet"
        seen = len(proxy.requests)
        time.sleep(quiet_s)
    return seen


def test_killed_collection_resumes_without_asking_cached_answers_again(tmp_path, transformers_serve):
    upstream, model = transformers_serve
    out = tmp_path / "expert.jsonl"
    env = {**os.environ, "EEF_QUIET": "1"}
    with ChatServer(upstream=upstream) as proxy:  # records every request on its way to transformers serve
        command = [sys.executable, "-m", "eef", "collect", "--expert", f"openai:{model}@tiny", "--base-url", proxy.url]
        command += ["--limit", str(TASKS), "--concurrency", "2", "--max-tokens", "8", "--out", str(out), "--json"]

        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        # Kill once two episodes are durable and some answer of an unfinished episode is cached too.
        while not (
            _lines(partial_path(out)) >= 2
            and _lines(cache_path(out)) > sum(t.num_actions for t in read_trajectories(partial_path(out)))
        ):
            assert first.poll() is None, f"finished before the kill: {first.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        cached_before = {r.key for r in read_jsonl(cache_path(out), CachedResponse, drop_torn_tail=True)}
        finished_before = {t.task_id for t in read_trajectories(partial_path(out))}
        asked_before = _requests_once_quiet(proxy)
        assert 2 <= len(finished_before) < TASKS and not out.exists()

        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert second.returncode == 0, second.stderr
        asked_after = proxy.keys[asked_before:]

    trajectories = read_trajectories(out)
    assert [t.task_id for t in trajectories] == [t.task_id for t in get_suite("shop").tasks("train")[:TASKS]]
    assert all(t.origin == "expert:tiny" and t.generated_tokens > 0 for t in trajectories)
    assert not partial_path(out).exists()
    # The resumed run asked for nothing it had an answer to, and played no finished episode again.
    assert not cached_before & set(asked_after)
    report = json.loads(second.stdout)
    assert report["resumed_episodes"] == len(finished_before)
    assert report["usage"]["cached_responses"] >= 1 and report["usage"]["requests"] == len(asked_after)
    # Every answer in the cache was paid for once, except requests in flight when the process was killed.
    cache = read_jsonl(cache_path(out), CachedResponse)
    assert len({r.key for r in cache}) == len(cache)
    assert len(proxy.keys) - len(set(proxy.keys)) <= 2  # at most one in flight per concurrent episode
    assert {r.key for r in cache} == set(proxy.keys)
    # An untrained model fails every task; what it did is recorded all the same.
    assert all(not t.success and t.termination in ("invalid_limit", "step_limit", "done") for t in trajectories)
