"""Batched generation that keeps every conversation's keys and values between turns.

Each call takes the live conversations' prompts (with a key per conversation), computes only the
tokens no cached sequence already covers, and decodes all of them together in one loop of forward
passes. A batch row holds ``[zeros | cached prefix][holes | new tokens][generated ...]``: the
attention mask hides the zeros and holes, and explicit position ids keep every real token at the
position it has in its own conversation, so the model sees exactly what a fresh encoding would show it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicLayer

from eef.policy.decoder_forward import attention_mask, direct_forward, supports_direct_forward
from eef.policy.engine import Generation, SamplingSettings, decode_generation, stop_and_pad_ids
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


class _GrowingLayer(DynamicLayer):
    """A layer cache written in place into a buffer sized for the whole call.

    transformers' dynamic layer concatenates on every step, copying the whole cache each token;
    here a step writes its token's keys and values and the layer exposes a view of the filled part.
    A forward pass may compute some consecutive rows only (``focus``): prompts are prefilled in
    groups of similar length, each group in its own rows of the one buffer.
    """

    def __init__(self, rows: int, capacity: int, prompt_width: int):
        super().__init__()
        self.rows = rows
        self.capacity = capacity
        self.prompt_width = prompt_width  # zeros until written: whatever no prompt token fills stays finite
        self.active = slice(None)  # the rows the next forward pass computes
        self.length = 0  # the columns they attend to before it; it writes after them

    def allocate(self, like_keys: torch.Tensor, like_values: torch.Tensor) -> None:
        """Buffers shaped after one row's ``[heads, len, head_dim]`` tensors. The prompts' columns
        start as zeros: masked out, but finite (a masked position still enters attention with weight
        zero); the rest is written before it is attended to."""
        self.key_buffer = like_keys.new_empty((self.rows, like_keys.shape[0], self.capacity, like_keys.shape[2]))
        self.value_buffer = like_values.new_empty(
            (self.rows, like_values.shape[0], self.capacity, like_values.shape[2])
        )
        self.key_buffer[:, :, : self.prompt_width] = 0
        self.value_buffer[:, :, : self.prompt_width] = 0
        self.is_initialized = True
        self._expose()

    def load_prefixes(
        self, rows: torch.Tensor, columns: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> None:
        """Cached prefixes, token i going to ``(rows[i], columns[i])``. ``keys``, ``values``:
        ``[tokens, heads, head_dim]``; one copy per layer for all rows (copies per row and layer
        took 8.7 s of a 256-episode GPU rollout)."""
        if not self.is_initialized:
            self.allocate(keys[0].unsqueeze(1), values[0].unsqueeze(1))
        index = self._head_rows(rows, columns)
        for buffer, source in ((self.key_buffer, keys), (self.value_buffer, values)):
            buffer.view(-1, buffer.shape[3]).index_copy_(0, index, source.reshape(-1, buffer.shape[3]))

    def gather(self, rows: torch.Tensor, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys and values at buffer positions ``(rows[i], columns[i])``, each ``[tokens, heads, head_dim]``."""
        index = self._head_rows(rows, columns)
        keys, values = (
            buffer.view(-1, buffer.shape[3]).index_select(0, index).view(-1, buffer.shape[1], buffer.shape[3])
            for buffer in (self.key_buffer, self.value_buffer)
        )
        return keys, values

    def _head_rows(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Where each head's vector of positions ``(rows[i], columns[i])`` lies in the buffers seen as
        ``[rows * heads * capacity, head_dim]``, token after token. Copying whole head vectors by
        ``index_select``/``index_copy_`` instead of indexing ``[rows, :, columns]`` (which copies value
        by value): a 64-row gather 3.4x faster on CPU."""
        heads = self.key_buffer.shape[1]
        head = torch.arange(heads, device=rows.device)
        return (((rows * heads).unsqueeze(1) + head) * self.capacity + columns.unsqueeze(1)).view(-1)

    def focus(self, rows: slice, length: int) -> None:
        """The next forward pass computes ``rows``, which attend to their first ``length`` columns."""
        self.active, self.length = rows, length
        self._expose()

    def _expose(self) -> None:
        if self.is_initialized:
            self.keys = self.key_buffer[self.active, :, : self.length]
            self.values = self.value_buffer[self.active, :, : self.length]

    def get_seq_length(self) -> int:
        return self.length

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.allocate(key_states[0], value_states[0])
        end = self.length + key_states.shape[2]
        self.key_buffer[self.active, :, self.length : end] = key_states
        self.value_buffer[self.active, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:  # index_select: twice as fast as indexing with [indices] on CPU
            self.key_buffer = self.key_buffer.index_select(0, indices)
            self.value_buffer = self.value_buffer.index_select(0, indices)
            self.rows, self.active = len(indices), slice(None)
            self._expose()


class _Batch:
    """A batch's cache, attention mask and next positions while it prefills and decodes."""

    def __init__(self, model: PreTrainedModel, cache_argument: str, pad_id: int, decode_columns: int = 0):
        self.model = model
        self.cache_argument = cache_argument
        self.pad_id = pad_id
        self.decode_columns = decode_columns  # room after the prompts: a column per token fed while decoding
        self.direct = supports_direct_forward(model)
        self.cache = DynamicCache(config=model.config)
        # [rows, capacity]: True where a column holds a real token; the first ``width`` columns are in use.
        self.columns = torch.zeros((0, 0), dtype=torch.bool)
        self.width = 0
        # The columns on the CPU, so that extract finds each row's without a device sync: those of
        # the prefill, then those of the decode passes (a pass's rejected drafts are holes).
        self.prefill_mask = torch.zeros((0, 0), dtype=torch.bool)
        self.decode_mask = torch.zeros((0, 0), dtype=torch.bool)
        self.padded = True  # whether any row has a masked column (known on the CPU, from the two masks)
        self.fed = 0  # tokens fed per row by the last decode pass
        self.next_position = torch.zeros(0, dtype=torch.long)

    def prefill(
        self,
        prompts: list[np.ndarray],
        donors: list[tuple[CachedSequence | None, int]],
        group_sizes: list[int] | None = None,
    ) -> torch.Tensor:
        """Load each row's reusable prefix and run its remaining tokens; returns last-position logits.

        ``group_sizes`` cut the rows (in order) into groups, each prefilled by its own forward pass
        and padded to its own longest new part only (default: one group). A row's new tokens end at
        the same column in every group; each group's prefixes end where its padded new part begins:
        ``[zeros | prefix][holes | new tokens]``.
        """
        device = self.model.device
        rows = len(prompts)
        reuse = [length for _, length in donors]
        fresh = [len(prompt) - length for prompt, length in zip(prompts, reuse, strict=True)]
        groups, first = [], 0
        for size in group_sizes or [rows]:
            groups.append((first, first + size, max(fresh[first : first + size])))
            first += size
        group_width = [width for first, last, width in groups for _ in range(first, last)]  # per row
        end = max(cached + width for cached, width in zip(reuse, group_width, strict=True))
        capacity = end + self.decode_columns
        self.cache.layers: list[_GrowingLayer] = [_GrowingLayer(rows, capacity, end) for _ in self.cache.layers]
        columns = torch.zeros((rows, capacity), dtype=torch.bool)
        for row, (cached, count, width) in enumerate(zip(reuse, fresh, group_width, strict=True)):
            columns[row, end - width - cached : end - width] = True
            columns[row, end - count : end] = True
        if any(reuse):
            self._load_prefixes(donors, [end - width for width in group_width])
        self.columns = columns.to(device)
        logits = []
        for first, last, width in groups:
            input_ids = torch.full((last - first, width), self.pad_id, dtype=torch.long)
            positions = torch.zeros((last - first, width), dtype=torch.long)
            for row in range(first, last):
                input_ids[row - first, width - fresh[row] :] = torch.from_numpy(prompts[row][reuse[row] :])
                positions[row - first, width - fresh[row] :] = torch.arange(reuse[row], len(prompts[row]))
            for layer in self.cache.layers:
                layer.focus(slice(first, last), end - width)
            padded = not bool(columns[first:last, :end].all())
            input_ids, positions = input_ids.to(device), positions.to(device)
            logits.append(self._forward(input_ids, positions, end - width, slice(first, last), padded))
        for layer in self.cache.layers:
            layer.focus(slice(None), end)
        self.width = end
        self.prefill_mask = columns[:, :end]
        self.decode_mask = torch.zeros((rows, self.decode_columns), dtype=torch.bool)
        self.padded = not bool(self.prefill_mask.all())
        self.next_position = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=device)
        return torch.cat(logits)

    def _load_prefixes(self, donors: list[tuple[CachedSequence | None, int]], ends: list[int]) -> None:
        """Each row's reusable prefix, ending at column ``ends[row]``: one gather per layer for all rows."""
        used = [(row, donor, length) for row, (donor, length) in enumerate(donors) if donor is not None and length]
        device = used[0][1].keys[0].device
        lengths = np.array([length for _, _, length in used])
        rows = np.array([row for row, _, _ in used])
        # Token j of a prefix of length n ending at column e goes to column e - n + j: with the prefixes
        # laid end to end, token t of them all (its prefix's first at f) goes to t + (e - n - f).
        first_token = np.cumsum(lengths) - lengths
        shift = np.array([ends[row] for row in rows]) - lengths - first_token
        row_index = torch.from_numpy(np.repeat(rows, lengths)).to(device)
        column_index = torch.from_numpy(np.arange(lengths.sum()) + np.repeat(shift, lengths)).to(device)
        for index, layer in enumerate(self.cache.layers):
            # Token-major [length, heads, head_dim] slices, as extract stored them: whole blocks to concatenate.
            keys = [donor.keys[index][:, :length].transpose(0, 1) for _, donor, length in used]
            values = [donor.values[index][:, :length].transpose(0, 1) for _, donor, length in used]
            layer.load_prefixes(row_index, column_index, torch.cat(keys), torch.cat(values))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` ``[rows, fed]``: each row's chosen token, then its draft tokens (padded);
        returns the logits after each, ``[rows, fed, vocabulary]``. Every fed token counts as kept
        until :meth:`keep_fed` says how many of each row's the row keeps."""
        self.fed = tokens.shape[1]
        past, decoded = self.width, self.width - self.prefill_mask.shape[1]
        self.columns[:, past : past + self.fed] = True
        self.decode_mask[:, decoded : decoded + self.fed] = True
        self.width += self.fed
        positions = self.next_position.unsqueeze(1) + torch.arange(self.fed, device=tokens.device)
        self.next_position = self.next_position + self.fed
        padded = self.padded or self.fed > 1
        return self._forward(tokens, positions, past, slice(None), padded, logits_to_keep=self.fed)

    def keep_fed(self, kept: list[int]) -> None:
        """How many tokens of the last pass each row keeps (its chosen token and the drafts before the
        first rejected one): the rest become holes, masked from then on, and the next token of the
        row takes the position after its last kept one."""
        real = torch.arange(self.fed) < torch.tensor(kept)[:, None]
        past = self.width - self.fed
        decoded = past - self.prefill_mask.shape[1]
        self.decode_mask[:, decoded : decoded + self.fed] = real
        self.columns[:, past : self.width] = real.to(self.columns.device)
        self.padded = self.padded or not bool(real.all())
        self.next_position = self.next_position - (self.fed - real.sum(dim=1)).to(self.next_position.device)

    def _forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        past: int,
        rows: slice,
        padded: bool,
        logits_to_keep: int = 1,
    ) -> torch.Tensor:
        """The logits of the last ``logits_to_keep`` positions, ``[rows, logits_to_keep, vocabulary]``."""
        columns = self.columns[rows, : past + input_ids.shape[1]]
        if self.direct:
            mask = attention_mask(columns, past, input_ids.shape[1], padded)
            return direct_forward(
                self.model, input_ids, positions, mask, self.cache, self.cache_argument, logits_to_keep
            )
        output = self.model(
            input_ids=input_ids,
            attention_mask=columns,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=logits_to_keep,
            **{self.cache_argument: self.cache},
        )
        return output.logits[:, -logits_to_keep:, :].float()

    def extract(self, rows: list[int], token_lists: list[np.ndarray]) -> list[CachedSequence]:
        """The keys and values of each row's real tokens (``token_lists[i]`` for ``rows[i]``, in order),
        gathered with one copy per layer for all rows; each sequence is a view of that copy."""
        # Real columns: the prefill's and the decode passes' unmasked ones; nonzero lists them row by row.
        decoded = self.width - self.prefill_mask.shape[1]
        real = torch.cat([self.prefill_mask[rows], self.decode_mask[rows, :decoded]], dim=1)
        lengths = real.sum(dim=1).tolist()
        expected = [len(tokens) for tokens in token_lists]
        if lengths != expected:
            raise RuntimeError(f"cache rows {rows} hold {lengths} tokens, expected {expected}")
        where = real.nonzero()
        row_index = torch.tensor(rows)[where[:, 0]].to(self.columns.device)
        column_index = where[:, 1].to(self.columns.device)
        # [tokens, heads, head_dim] per layer, split into each row's [heads, len, head_dim] view.
        gathered = [layer.gather(row_index, column_index) for layer in self.cache.layers]
        keys = [layer_keys.split(lengths) for layer_keys, _ in gathered]
        values = [layer_values.split(lengths) for _, layer_values in gathered]
        return [
            CachedSequence(
                tokens=tokens,
                keys=[layer[i].transpose(0, 1) for layer in keys],
                values=[layer[i].transpose(0, 1) for layer in values],
            )
            for i, tokens in enumerate(token_lists)
        ]

    def keep(self, rows: list[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=self.columns.device)
        for layer in self.cache.layers:
            layer.batch_select_indices(index)
        self.columns = self.columns[index]
        self.prefill_mask = self.prefill_mask[rows]
        self.decode_mask = self.decode_mask[rows]
        decoded = self.width - self.prefill_mask.shape[1]
        self.padded = not bool(self.prefill_mask.all() and self.decode_mask[:, :decoded].all())
        self.next_position = self.next_position[index]


def _prefill_groups(fresh: list[int]) -> tuple[list[int], list[int]]:
    """An order of the prompts (most new tokens first) and the sizes of the consecutive groups to
    prefill them in, each group's longest new part at most a quarter longer than its shortest.

    One forward pass would pad every row to the longest new part (a search page beside a one-line
    observation); groups bound that waste, at the price of a forward pass each."""
    order = sorted(range(len(fresh)), key=lambda i: -fresh[i])
    sizes: list[int] = []
    first = 0
    while first < len(order):
        last = first + 1
        while last < len(order) and 1.25 * fresh[order[last]] >= fresh[order[first]]:
            last += 1
        sizes.append(last - first)
        first = last
    return order, sizes


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
        self, prompts: list[list[int]], sampling: SamplingSettings, seeds: list[int], keys: list[str] | None = None
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
            batch = _Batch(self.model, self.cache_argument, self.pad_id)
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
        sampling: SamplingSettings,
        seeds: list[int],
    ) -> list[list[int]]:
        drafts = self.draft_tokens if len(arrays) <= self.draft_rows else 0
        # A pass feeds 1 + drafts columns and keeps at least one token per row: room for the worst case.
        batch = _Batch(self.model, self.cache_argument, self.pad_id, sampling.max_new_tokens * (1 + drafts))
        fresh = [len(prompt) - length for prompt, (_, length) in zip(arrays, donors, strict=True)]
        order, group_sizes = _prefill_groups(fresh)
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
        self, logits: torch.Tensor, rows: list[_Row], sampling: SamplingSettings, row_seeds: torch.Tensor
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
