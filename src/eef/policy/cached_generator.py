"""Batched generation that keeps every conversation's keys and values between turns.

Each call takes the live conversations' prompts (with a key per conversation), computes only the
tokens no cached sequence already covers, and decodes all of them together in one loop of forward
passes over one :class:`~eef.policy.decode_batch.DecodeBatch`; a conversation's keys and values go
back to the store when its turn ends, for its next turn (and for restarts that share its prefix).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eef.config import SamplingConfig
from eef.policy.decode_batch import DecodeBatch, prefill_groups
from eef.policy.engine import Generation, decode_generation, stop_and_pad_ids
from eef.policy.prefix_cache import CachedSequence, PrefixStore, shared_prefixes
from eef.policy.prompt_lookup import ContextLookup
from eef.policy.sampling import choose_tokens

# Rows whose turn has ended keep their place in the batch (and cost a row of compute each step)
# until this share of the batch has ended: dropping rows copies the whole cache, so not every time.
_COMPACT_WHEN_ENDED = 0.25


@dataclass
class _Row:
    request: int  # index into the call's prompts
    tokens: np.ndarray  # the prompt
    generated: list[int]
    done: bool = False
    context: ContextLookup | None = None  # the prompt and the generated tokens, where the call drafts

    def add(self, token: int) -> None:
        self.generated.append(token)
        if self.context is not None:
            self.context.append(token)

    def fed(self) -> np.ndarray:
        """The tokens the model has seen: the prompt and every generated token fed back (not the
        last one chosen), i.e. what the row's cache holds."""
        return np.concatenate([self.tokens, np.asarray(self.generated[:-1], dtype=np.int64)])


class CachedGenerator:
    """Generates the next turn of many conversations, reusing cached keys and values.

    ``generate(prompts, sampling, seeds, keys)``: ``keys[i]`` names prompt i's conversation; its keys
    and values are kept until ``release(key)``. A conversation seen for the first time reuses the
    longest prefix any kept sequence shares with it, and new conversations that share prefixes among
    themselves (restarts from one recorded trajectory, repeated samples of one start) have those
    prefixes computed once first (``share_prefixes``).

    A call of at most ``draft_rows`` prompts decodes speculatively: each pass also feeds up to
    ``draft_tokens`` tokens copied from the row's own context (:mod:`eef.policy.prompt_lookup`) and
    keeps those the model would have chosen itself. The chosen tokens are those of one token per pass
    (up to the last bits of the logits, as between batch sizes). A pass of few rows is bound by its
    fixed cost (on CPU one that verifies 4 tokens a row costs ~1.5x one that decodes 1), so the turns
    of a rollout's last episodes, which no other episode shares a pass with, take about half the
    passes and less time; in many rows drafts cost more than they save (docs/performance.md).
    ``draft_tokens=0`` turns it off.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        share_prefixes: bool = True,
        draft_tokens: int = 3,
        draft_rows: int = 16,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids, self.pad_id = stop_and_pad_ids(tokenizer)
        self.share_prefixes = share_prefixes
        self.draft_tokens, self.draft_rows = draft_tokens, draft_rows
        self.decode_passes = 0  # forward passes that decoded, over all calls (for benchmarks)
        self.store = PrefixStore()
        parameters = inspect.signature(model.forward).parameters
        # transformers renamed past_key_values to cache (5.2x); accept both.
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"

    def release(self, key: str) -> None:
        self.store.drop(key)

    @torch.inference_mode()
    def generate(
        self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int], keys: list[str] | None = None
    ) -> list[Generation]:
        if not prompts:
            return []
        self.model.eval()
        arrays = [np.asarray(prompt, dtype=np.int64) for prompt in prompts]
        anonymous = keys is None
        keys = [f"\0call/{i}" for i in range(len(prompts))] if keys is None else keys
        prefilled = [0.0] * len(prompts)
        shared_keys = self._prefill_shared(arrays, keys, prefilled)
        donors = [self._donor(prompt, key) for prompt, key in zip(arrays, keys, strict=True)]
        for index, (prompt, (_, length)) in enumerate(zip(arrays, donors, strict=True)):
            prefilled[index] += len(prompt) - length
        generated = self._decode(arrays, keys, donors, sampling, seeds)
        for key in shared_keys + (keys if anonymous else []):
            self.store.drop(key)
        return [
            decode_generation(self.tokenizer, tokens, self.stop_ids, prefilled=count)
            for tokens, count in zip(generated, prefilled, strict=True)
        ]

    def _donor(self, prompt: np.ndarray, key: str) -> tuple[CachedSequence | None, int]:
        """The cached sequence to start ``prompt`` from, and how many of its tokens to reuse
        (never the whole prompt: its last token must be fed to get the next-token logits).
        The conversation's own sequence first: it is the one that continues into this prompt."""
        donor, length = self._stored_prefix(prompt, key)
        return donor, min(length, len(prompt) - 1)

    def _stored_prefix(self, tokens: np.ndarray, key: str) -> tuple[CachedSequence | None, int]:
        """The conversation's own sequence when ``tokens`` continue it, else the stored sequence that
        shares the longest prefix (a scan of the whole store: ~14 s of a 256-episode GPU rollout when
        every lookup scanned)."""
        donor, length = self.store.own_prefix(key, tokens)
        return (donor, length) if donor is not None else self.store.longest_prefix(tokens)

    def _prefill(self, token_lists: list[np.ndarray], keys: list[str]) -> list[int]:
        """Compute and store the keys and values of each token list (no generation); returns how
        many tokens of each were computed (the rest came from the store)."""
        # No logits are needed here, so a stored sequence may cover all of ``tokens``: such a list
        # needs no computing and no entry of its own (later lookups find what covers it).
        donors = [self._stored_prefix(tokens, key) for tokens, key in zip(token_lists, keys, strict=True)]
        computed = [len(tokens) - length for tokens, (_, length) in zip(token_lists, donors, strict=True)]
        rows = [row for row, count in enumerate(computed) if count > 0]
        if rows:
            batch = DecodeBatch(self.model, self.cache_argument, self.pad_id)
            batch.prefill([token_lists[row] for row in rows], [donors[row] for row in rows])
            sequences = batch.extract(list(range(len(rows))), [token_lists[row] for row in rows])
            for row, sequence in zip(rows, sequences, strict=True):
                self.store.put(keys[row], sequence)
        return computed

    def _prefill_shared(self, arrays: list[np.ndarray], keys: list[str], prefilled: list[float]) -> list[str]:
        """Compute the prefixes that new conversations share, once each; returns their store keys."""
        new = [i for i, key in enumerate(keys) if key not in self.store]
        if not self.share_prefixes or len(new) < 2:
            return []
        stored: list[str] = []
        for wave_index, wave in enumerate(shared_prefixes([arrays[i] for i in new])):
            wave_keys = [f"\0shared/{wave_index}/{j}" for j in range(len(wave))]
            computed = self._prefill([prefix.tokens for prefix in wave], wave_keys)
            for prefix, count in zip(wave, computed, strict=True):
                for user in prefix.users:  # the prefix's cost, split between the conversations it serves
                    prefilled[new[user]] += count / len(prefix.users)
            stored += wave_keys
        return stored

    def _decode(
        self,
        arrays: list[np.ndarray],
        keys: list[str],
        donors: list[tuple[CachedSequence | None, int]],
        sampling: SamplingConfig,
        seeds: list[int],
    ) -> list[list[int]]:
        drafts = self.draft_tokens if len(arrays) <= self.draft_rows else 0
        # A pass feeds 1 + drafts columns and keeps at least one token per row: room for the worst case.
        batch = DecodeBatch(self.model, self.cache_argument, self.pad_id, sampling.max_new_tokens * (1 + drafts))
        fresh = [len(prompt) - length for prompt, (_, length) in zip(arrays, donors, strict=True)]
        order, group_sizes = prefill_groups(fresh)
        logits = batch.prefill([arrays[i] for i in order], [donors[i] for i in order], group_sizes)
        rows = [
            _Row(i, arrays[i], [], context=ContextLookup(arrays[i], sampling.max_new_tokens) if drafts else None)
            for i in order
        ]
        generated = [row.generated for row in sorted(rows, key=lambda row: row.request)]  # filled in place
        row_seeds = torch.tensor([seeds[row.request] for row in rows], device=logits.device)
        row_drafts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(rows)  # fed after each row's token
        ended_since_compaction = 0
        while True:
            chosen = self._choose(logits, rows, sampling, row_seeds)
            kept: list[int] = []  # tokens of the pass each row keeps
            ended: list[int] = []
            for position, (row, choices, draft) in enumerate(zip(rows, chosen, row_drafts, strict=True)):
                kept.append(1)
                if row.done:
                    continue
                for index, token in enumerate(choices):
                    row.add(token)
                    kept[-1] = index + 1
                    if token in self.stop_ids or len(row.generated) >= sampling.max_new_tokens:
                        row.done = True
                        ended.append(position)
                        break
                    # The logits after the next fed token hold only if that draft token is this choice.
                    if index >= len(draft) or draft[index] != token:
                        break
            if batch.fed > 1:  # a pass with drafts (the first choices come from the prefill)
                batch.keep_fed(kept)
            if ended:
                fed = [rows[position].fed() for position in ended]
                for position, sequence in zip(ended, batch.extract(ended, fed), strict=True):
                    self.store.put(keys[rows[position].request], sequence)
                ended_since_compaction += len(ended)
            if all(row.done for row in rows):
                break
            if ended_since_compaction >= _COMPACT_WHEN_ENDED * len(rows):
                live = [position for position, row in enumerate(rows) if not row.done]
                batch.keep(live)
                rows = [rows[position] for position in live]
                row_seeds = row_seeds[live]
                ended_since_compaction = 0
            tokens, row_drafts = self._next_tokens(rows, drafts)
            logits = batch.decode(tokens)
            self.decode_passes += 1
        return generated

    def _choose(
        self, logits: torch.Tensor, rows: list[_Row], sampling: SamplingConfig, row_seeds: torch.Tensor
    ) -> list[list[int]]:
        """Each row's choice after each fed token (``logits``: ``[rows, fed, vocabulary]``); the choice
        after fed token j is the row's token number ``len(generated) + j`` and samples with that step."""
        count, fed, vocabulary = logits.shape
        steps = torch.tensor([len(row.generated) for row in rows], device=logits.device)[:, None]
        steps = steps + torch.arange(fed, device=logits.device)
        flat = choose_tokens(logits.view(-1, vocabulary), sampling, row_seeds.repeat_interleave(fed), steps.view(-1))
        return flat.view(count, fed).tolist()

    def _next_tokens(self, rows: list[_Row], drafts: int) -> tuple[torch.Tensor, list[np.ndarray]]:
        """The next pass's input, ``[rows, fed]``: each live row's last chosen token and up to ``drafts``
        draft tokens, padded (an ended row feeds padding, ignored); and each row's draft."""
        none = np.zeros(0, dtype=np.int64)
        row_drafts = [row.context.draft(drafts) if row.context and not row.done else none for row in rows]
        tokens = np.full((len(rows), 1 + max(len(draft) for draft in row_drafts)), self.pad_id, dtype=np.int64)
        for position, (row, draft) in enumerate(zip(rows, row_drafts, strict=True)):
            if not row.done:
                tokens[position, 0] = row.generated[-1]
                tokens[position, 1 : 1 + len(draft)] = draft
        return torch.from_numpy(tokens).to(self.model.device), row_drafts
