"""Real HTTP servers on 127.0.0.1 for the LLM expert's tests.

- :class:`ChatServer`: a real socket server that speaks OpenAI's ``/v1/chat/completions``. It answers
  from a table of conversations (e.g. a scripted expert's recorded trajectories: the next assistant turn
  for each conversation prefix) or forwards to another server (``transformers serve``), records every
  request, and injects faults on demand: 429, 500, 401, malformed bodies, dropped connections.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eef.experts.llm import request_key
from eef.types import Trajectory

Conversation = list[dict[str, str]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def next_turns(trajectories: list[Trajectory]) -> dict[str, str]:
    """For each conversation prefix (JSON) that ends in an observation, the agent turn that followed it."""
    table = {}
    for trajectory in trajectories:
        chat = [{"role": m.role, "content": m.content} for m in trajectory.messages]
        for i, message in enumerate(chat[1:], start=1):
            if message["role"] == "assistant":
                table[json.dumps(chat[:i])] = message["content"]
    return table


@dataclass
class Fault:
    """What to answer instead of the real reply: an HTTP status with a body, or a dropped connection."""

    status: int = 500
    body: str = '{"error": {"message": "injected failure"}}'
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


MALFORMED_JSON = Fault(status=200, body="<html>gateway hiccup</html>")
NO_CHOICES = Fault(status=200, body='{"id": "x", "choices": []}')
RATE_LIMITED = Fault(status=429, body='{"error": {"message": "slow down"}}', headers={"Retry-After": "0.05"})
SERVER_ERROR = Fault(status=500)
DROPPED = Fault(drop=True)


class ChatServer:
    """``/v1/chat/completions`` on a free loopback port; ``url`` is its base URL (``.../v1``).

    Answers with ``turns[json(messages)]`` when given, else forwards the request to ``upstream``.
    ``faults`` are used up one per request, in order; ``fail_when(messages)`` returns a fault for every
    request it matches. ``requests`` records (cache key of the body, Authorization header) per request,
    ``bodies`` the bodies themselves."""

    def __init__(
        self,
        turns: dict[str, str] | None = None,
        upstream: str | None = None,
        faults: list[Fault] | None = None,
        fail_when: Callable[[Conversation], Fault | None] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.turns = turns
        self.delay_s = delay_s  # each answer waits this long (to see requests overlap)
        self.in_flight = self.max_in_flight = 0
        self.upstream = upstream
        self.faults = list(faults or [])
        self.fail_when = fail_when
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.requests]

    def _answer(self, body: dict[str, Any]) -> tuple[int, str, dict[str, str]] | Fault:
        messages = body["messages"]
        with self._lock:
            fault = self.faults.pop(0) if self.faults else None
        fault = fault or (self.fail_when(messages) if self.fail_when else None)
        if fault is not None:
            return fault
        if self.upstream is not None:
            request = urllib.request.Request(
                f"{self.upstream}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, response.read().decode(), {}
        content = (self.turns or {}).get(json.dumps(messages), "Thought: I do not know this page.")
        prompt = sum(len(m["content"].split()) for m in messages)
        # As a prompt-caching server: everything before the newest message was seen before.
        cached = prompt - len(messages[-1]["content"].split())
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(content.split()),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}], "usage": usage}
        return 200, json.dumps(reply), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append((request_key(body), self.headers.get("Authorization", "")))
                    server.bodies.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay_s)
                try:
                    answer = server._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                if isinstance(answer, Fault) and answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, text, headers = (
                    (answer.status, answer.body, answer.headers) if isinstance(answer, Fault) else answer
                )
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        return Handler
