"""A batch of conversations' keys and values, attention mask and positions while it prefills and decodes.

A batch row holds ``[zeros | cached prefix][holes | new tokens][generated ...]``: the attention mask
hides the zeros and holes, and explicit position ids keep every real token at the position it has in
its own conversation, so the model sees exactly what a fresh encoding would show it. The cache is
written in place into buffers sized for the whole call; rows are loaded from and extracted to
:class:`~eef.policy.prefix_cache.CachedSequence` with one copy per layer for all rows.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from eef.policy.decoder_forward import attention_mask, direct_forward, supports_direct_forward
from eef.policy.prefix_cache import CachedSequence


class GrowingLayer(DynamicLayer):
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


class DecodeBatch:
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
        self.cache.layers: list[GrowingLayer] = [GrowingLayer(rows, capacity, end) for _ in self.cache.layers]
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


def prefill_groups(fresh: list[int]) -> tuple[list[int], list[int]]:
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
