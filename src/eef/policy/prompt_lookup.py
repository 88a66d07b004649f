"""Draft tokens for speculative decoding, copied from the conversation itself (prompt lookup).

An agent's turn repeats a lot of its context: a product id from the page, an option's name, the
phrasing of its own earlier thoughts. After the latest earlier place where the context's last few
tokens occurred, the tokens that followed are a good guess of what comes next. The generator feeds
that guess along with the token it has just chosen and keeps the guessed tokens up to the first one
the model would not have chosen itself, so the turn is the one step-by-step decoding gives; where a
pass is bound by its fixed cost, one that verifies several tokens costs far less than as many passes.
"""

from __future__ import annotations

import numpy as np


class ContextLookup:
    """One conversation's tokens as it grows, and the draft its context suggests after them."""

    def __init__(self, prompt: np.ndarray, room: int, longest_match: int = 3):
        self.tokens = np.empty(len(prompt) + room, dtype=np.int64)
        self.tokens[: len(prompt)] = prompt
        self.length = len(prompt)
        self.longest_match = longest_match

    def append(self, token: int) -> None:
        self.tokens[self.length] = token
        self.length += 1

    def draft(self, count: int) -> np.ndarray:
        """Up to ``count`` tokens that followed the latest earlier occurrence of the context's last
        ``n`` tokens, for the largest ``n <= longest_match`` that occurs earlier; empty if none does."""
        context = self.tokens[: self.length]
        # Where the last token occurred before (each such place has a token after it to copy) ...
        ends = np.flatnonzero(context[:-1] == context[-1])
        best = ends
        # ... narrowed to where the one before it matches too, and so on, while any place is left.
        for back in range(1, min(self.longest_match, self.length - 1)):
            ends = ends[ends >= back]
            ends = ends[context[ends - back] == context[-1 - back]]
            if not len(ends):
                break
            best = ends
        if not len(best):
            return context[:0]
        start = int(best[-1]) + 1
        return context[start : start + count].copy()
