"""A chat model behind an OpenAI-compatible API as the expert (OpenAI, or a local vLLM / SGLang /
``transformers serve`` server).

The model sees exactly what the student sees: the environment's instruction as the system message,
observations as user messages, its own turns as assistant messages; its turns are recorded as it wrote
them, clipped after the first ``Action:`` line (a chat model sometimes goes on to imagine the next
observation). A turn naming no action is answered as the student's rollouts answer it, and the episode
goes on (see :class:`eef.experts.base.Expert`).

Requests go through the ``openai`` SDK's ``AsyncOpenAI``, one per episode in flight. Rate limits (429),
server errors (5xx, 408, 409), broken connections, timeouts and malformed bodies are retried with
exponential backoff and jitter (honouring ``Retry-After``; a 429 pauses every request); other errors
(a bad key, an unknown model) are not. Every response is appended to a cache next to the output
(``OUT.cache.jsonl``), keyed by a hash of what decides the answer (model, messages, sampling settings,
seed; not the server's address), so an interrupted collection resumes without paying twice.

The API key is read from the environment variable the settings name and lives only in memory: it is
never written to a file, a log or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eef.config import SPEC_PREFIX, LLMExpertSettings
from eef.envs.base import Environment
from eef.errors import UserError, first_problem
from eef.experts.base import Expert, ExpertEpisode, ExpertUnavailable
from eef.seeding import derive_seed
from eef.storage import append_jsonl, ends_with_newline, read_jsonl, write_jsonl
from eef.types import Message, Task

if TYPE_CHECKING:
    from openai import AsyncOpenAI

# A local server needs no key but the SDK wants one: this placeholder stands in for it (in memory only).
_LOCAL_DUMMY_KEY = "EMPTY"
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ACTION_LINE = re.compile(r"^[ \t]*Action:.*$", re.IGNORECASE | re.MULTILINE)


def parse_spec(spec: str) -> tuple[str, str]:
    """``openai:MODEL[@TAG]`` -> (model, expert name): the tag when given, else the spec itself."""
    if not spec.startswith(SPEC_PREFIX) or len(spec) == len(SPEC_PREFIX):
        raise UserError(f"expert {spec!r}: write openai:MODEL or openai:MODEL@TAG, e.g. openai:gpt-4o@strong")
    model, at, tag = spec[len(SPEC_PREFIX) :].rpartition("@")
    if at and model and _TAG.fullmatch(tag):
        return model, tag
    return spec[len(SPEC_PREFIX) :], spec


def settings_from_spec(spec: str, **options: Any) -> tuple[str, LLMExpertSettings]:
    """The expert name and settings for ``openai:MODEL[@TAG]`` with ``options`` (e.g. the CLI's flags)."""
    model, name = parse_spec(spec)
    try:
        return name, LLMExpertSettings(model=model, **{k: v for k, v in options.items() if v is not None})
    except ValidationError as err:
        where, problem = first_problem(err)
        raise UserError(f"expert {spec!r}: {where}: {problem}") from None


def cache_path(out: Path) -> Path:
    """The response cache of a collection into ``out``."""
    return Path(out).with_suffix(".cache.jsonl")


def clip_turn(text: str) -> str:
    """The turn up to the end of its first ``Action:`` line (all of it when it has none), stripped."""
    text = text.strip()
    match = _ACTION_LINE.search(text)
    return text[: match.end()].rstrip() if match else text


def request_key(params: dict[str, Any]) -> str:
    """The cache key of a chat-completion request body: a hash of everything that decides the answer."""
    canonical = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CachedResponse(BaseModel):
    """One answered request, as the cache file keeps it (no prompt, no key: only the answer and its cost)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    model: str
    content: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, those the server took from its prompt cache
    completion_tokens: int = 0


class _Body(BaseModel):
    """The part of a chat-completion response we use; anything else in it is ignored."""

    class _Choice(BaseModel):
        class _Message(BaseModel):
            content: str

        message: _Message
        finish_reason: str | None = None

    class _Usage(BaseModel):
        class _PromptDetails(BaseModel):
            cached_tokens: int | None = 0  # OpenAI's prompt caching; servers without one leave it out

        prompt_tokens: int = 0
        completion_tokens: int = 0
        prompt_tokens_details: _PromptDetails | None = None

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class _Retryable(Exception):
    """A failure worth another try; ``rate_limited``: the server asked every client to slow down."""

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass
class Usage:
    """What this collection asked the server for (cached answers cost nothing)."""

    requests: int = 0  # HTTP requests sent, retries included
    cached_responses: int = 0
    retries: int = 0
    failed_requests: int = 0  # requests given up on after their retries
    prompt_tokens: int = 0  # billed: answers that came from the server
    cached_prompt_tokens: int = 0  # of those, served from the server's prompt cache
    completion_tokens: int = 0


class LLMExpert(Expert):
    """A chat model as the expert; ``cache`` is the response cache file (see :func:`cache_path`)."""

    max_invalid_turns = 3  # as the student's rollouts (RolloutConfig.max_invalid_actions)
    max_turns = 50  # a safety net, as theirs; environments enforce their own step limits

    def __init__(self, name: str, settings: LLMExpertSettings, cache: Path) -> None:
        self.name = name
        self.settings = settings
        self.concurrency = settings.concurrency
        self.cache_file = Path(cache)
        self.counts = Usage()
        self._cache: dict[str, CachedResponse] = {}
        self._client: AsyncOpenAI | None = None
        self._secret = ""  # the API key while a session runs ("" when the server needs none)
        self._not_before = 0.0  # a 429 pauses every request until then (event-loop time)

    def start(self, task: Task, seed: int, env: Environment) -> ExpertEpisode:
        return _ChatEpisode(self, seed)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        from openai import AsyncOpenAI

        self._secret = self._api_key()
        self._cache = _load_cache(self.cache_file)
        # Our own retry loop (below) also covers malformed bodies and counts every retry: none in the SDK.
        client = AsyncOpenAI(
            api_key=self._secret or _LOCAL_DUMMY_KEY,
            base_url=self.settings.base_url,
            max_retries=0,
            timeout=self.settings.timeout_s,
        )
        self._client = client
        try:
            async with client:
                yield
        finally:
            self._client, self._secret = None, ""

    def usage(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "requests": self.counts.requests,
            "cached_responses": self.counts.cached_responses,
            "retries": self.counts.retries,
            "failed_requests": self.counts.failed_requests,
            "prompt_tokens": self.counts.prompt_tokens,
            "cached_prompt_tokens": self.counts.cached_prompt_tokens,
            "completion_tokens": self.counts.completion_tokens,
        }
        cost = self.cost_usd(self.counts.prompt_tokens, self.counts.completion_tokens, self.counts.cached_prompt_tokens)
        if cost is not None:
            figures["cost_usd"] = round(cost, 6)
        return figures

    def cost_usd(self, prompt_tokens: int, generated_tokens: int, cached_prompt_tokens: int = 0) -> float | None:
        return self.settings.cost_usd(prompt_tokens, generated_tokens, cached_prompt_tokens)

    def _api_key(self) -> str:
        """The key from the environment; "" for a server of the user's own (which needs none)."""
        key = os.environ.get(self.settings.api_key_env, "")
        if not key and self.settings.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
            raise UserError(
                f"set {self.settings.api_key_env} to your API key (or give --base-url for a server that needs none)"
            )
        return key

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def complete(self, messages: Sequence[Message], seed: int) -> CachedResponse:
        """The model's answer to ``messages``: from the cache, or from the server (then cached)."""
        params: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "seed": seed,
        }
        if self.settings.reasoning_model:
            params["max_completion_tokens"] = self.settings.max_tokens
        else:
            params |= {
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
                "max_tokens": self.settings.max_tokens,
            }
        key = request_key(params)
        if (cached := self._cache.get(key)) is not None:
            self.counts.cached_responses += 1
            return cached
        response = await self._request(params, key)
        self._cache[key] = response
        append_jsonl(self.cache_file, [response])
        self.counts.prompt_tokens += response.prompt_tokens
        self.counts.cached_prompt_tokens += response.cached_prompt_tokens
        self.counts.completion_tokens += response.completion_tokens
        return response

    async def _request(self, params: dict[str, Any], key: str) -> CachedResponse:
        from openai import APIConnectionError, APIStatusError

        assert self._client is not None, "requests are made inside session()"
        loop = asyncio.get_running_loop()
        jitter = random.Random(key)  # timing only; seeded so that nothing here is left to chance
        for attempt in range(self.settings.max_retries + 1):
            if (wait := self._not_before - loop.time()) > 0:
                await asyncio.sleep(wait)
            self.counts.requests += 1
            try:
                raw = await self._client.chat.completions.with_raw_response.create(**params)
                return self._parse(raw.text, key)
            except APIStatusError as err:
                if not _retryable_status(err.status_code):
                    self.counts.failed_requests += 1
                    raise ExpertUnavailable(f"{self._describe(err)} (not retried)") from None
                failure = _Retryable(
                    self._describe(err), _retry_after(err.response.headers), rate_limited=err.status_code == 429
                )
            except APIConnectionError as err:
                failure = _Retryable(f"cannot reach {self._client.base_url}: {self._redact(str(err))}")
            except _Retryable as err:
                failure = err
            if attempt == self.settings.max_retries:
                self.counts.failed_requests += 1
                raise ExpertUnavailable(f"{failure} (gave up after {attempt + 1} attempts)")
            self.counts.retries += 1
            backoff = self.settings.backoff_s * 2**attempt * (0.5 + 0.5 * jitter.random())
            delay = min(self.settings.max_backoff_s, failure.retry_after or backoff)
            if failure.rate_limited:  # every request waits, not only this one
                self._not_before = max(self._not_before, loop.time() + delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _parse(self, text: str, key: str) -> CachedResponse:
        try:
            body = _Body.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as err:
            reason = "not JSON" if isinstance(err, json.JSONDecodeError) else "no choices[0].message.content"
            raise _Retryable(f"malformed response ({reason}): {self._redact(text[:120])!r}") from None
        choice, usage = body.choices[0], body.usage or _Body._Usage()
        details = usage.prompt_tokens_details
        return CachedResponse(
            key=key,
            model=self.settings.model,
            content=choice.message.content,
            finish_reason=choice.finish_reason,
            prompt_tokens=usage.prompt_tokens,
            cached_prompt_tokens=min(usage.prompt_tokens, (details.cached_tokens or 0) if details else 0),
            completion_tokens=usage.completion_tokens,
        )

    def _describe(self, err: Any) -> str:
        detail = self._redact(str(getattr(err, "message", err)))
        return f"HTTP {err.status_code} from {self._client.base_url if self._client else 'server'}: {detail[:200]}"


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _retry_after(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` header asks for (its number form), or None."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _load_cache(path: Path) -> dict[str, CachedResponse]:
    if not path.is_file():
        return {}
    records = read_jsonl(path, CachedResponse, drop_torn_tail=True)
    cache = {record.key: record for record in records}
    if not ends_with_newline(path) or len(cache) != len(records):
        write_jsonl(path, cache.values())  # drop a torn last line before appending after it
    return cache


class _ChatEpisode(ExpertEpisode):
    def __init__(self, expert: LLMExpert, seed: int) -> None:
        self.expert = expert
        self.seed = seed
        self.turns = 0

    async def reply(self, messages: Sequence[Message]) -> str:
        # Each turn's sampling seed derives from the episode's: the same conversation asks the same request.
        response = await self.expert.complete(messages, derive_seed(self.seed, "turn", self.turns))
        self.turns += 1
        self.prompt_tokens += response.prompt_tokens
        self.prefilled_tokens += response.prompt_tokens - response.cached_prompt_tokens
        self.generated_tokens += response.completion_tokens
        return clip_turn(response.content)
