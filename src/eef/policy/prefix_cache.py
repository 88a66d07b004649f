"""Key/value states kept per conversation, so that no token is run through the model twice.

A conversation's next prompt extends its previous prompt and reply, and the restarts of one expert
trajectory (or the k samples of one task) begin with the same recorded turns. Keys and values at a
position depend only on the tokens up to it, so any stored sequence that shares a token prefix with
a new prompt gives that prefix's keys and values: only the rest needs computing. Matching is on token
ids, not on text, so reuse is exact whatever the chat template or tokenizer does at turn boundaries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

_BOUNDARY_SLACK = 8  # tokens at the end of a cached sequence that a re-encoding may split differently


@dataclass
class CachedSequence:
    """The keys and values of ``tokens``: one ``[heads, len(tokens), head_dim]`` tensor per layer."""

    tokens: np.ndarray
    keys: list[torch.Tensor]
    values: list[torch.Tensor]


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    mismatches = np.flatnonzero(a[:n] != b[:n])
    return int(mismatches[0]) if len(mismatches) else n


class PrefixStore:
    """Cached sequences by key (an episode, or a shared prefix); finds the longest reusable prefix."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedSequence] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def put(self, key: str, sequence: CachedSequence) -> None:
        self._entries[key] = sequence

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def own_prefix(self, key: str, tokens: np.ndarray) -> tuple[CachedSequence | None, int]:
        """``key``'s sequence when ``tokens`` continue it (all but its last few tokens shared: a
        reply re-encoded inside the next prompt may split differently at its end); else None."""
        sequence = self._entries.get(key)
        if sequence is None:
            return None, 0
        length = common_prefix_length(sequence.tokens, tokens)
        return (sequence, length) if length >= len(sequence.tokens) - _BOUNDARY_SLACK else (None, 0)

    def longest_prefix(self, tokens: np.ndarray) -> tuple[CachedSequence | None, int]:
        """The stored sequence sharing the longest prefix with ``tokens``, and that length."""
        best, best_length = None, 0
        for sequence in self._entries.values():
            length = common_prefix_length(sequence.tokens, tokens)
            if length > best_length:
                best, best_length = sequence, length
        return best, best_length


@dataclass(frozen=True)
class SharedPrefix:
    """A prefix worth computing once, before the prompts in ``users`` (indices) that start with it."""

    tokens: np.ndarray
    users: list[int]


def shared_prefixes(prompts: list[np.ndarray], min_tokens: int = 8) -> list[list[SharedPrefix]]:
    """Prefixes of ``prompts`` to compute before them, in waves (a later wave reuses an earlier one).

    Wave 1: what all prompts share (the system prompt, at least), when there are several.
    Wave 2: sorted by tokens, a prompt that is a prefix of the next one is a restart from an earlier
    point of the same recorded trajectory (or a repeated sample of the same start); each chain of such
    prompts is served by computing its longest member once, less its last token (which the member
    itself must feed to get its next-token logits).
    """
    if len(prompts) < 2:
        return []
    waves: list[list[SharedPrefix]] = []
    common = prompts[0]
    for prompt in prompts[1:]:
        common = common[: common_prefix_length(common, prompt)]
    if len(common) >= min_tokens:
        waves.append([SharedPrefix(common, list(range(len(prompts))))])
    order = sorted(range(len(prompts)), key=lambda i: prompts[i].tolist())
    chains: list[SharedPrefix] = []
    chain = [order[0]]
    for previous, current in itertools.pairwise(order):
        if common_prefix_length(prompts[previous], prompts[current]) == len(prompts[previous]):
            chain.append(current)
            continue
        if len(chain) > 1:
            chains.append(SharedPrefix(prompts[chain[-1]][:-1], chain))
        chain = [current]
    if len(chain) > 1:
        chains.append(SharedPrefix(prompts[chain[-1]][:-1], chain))
    if chains:
        waves.append(chains)
    return waves
