"""Drafts copied from the context: the tokens after the latest earlier match of its longest suffix."""

import numpy as np

from eef.policy.prompt_lookup import ContextLookup


def _lookup(tokens: list[int]) -> ContextLookup:
    context = ContextLookup(np.asarray(tokens[:1]), room=len(tokens))
    for token in tokens[1:]:
        context.append(token)
    return context


def _by_brute_force(tokens: list[int], count: int, longest_match: int = 3) -> list[int]:
    for n in range(longest_match, 0, -1):
        suffix = tokens[len(tokens) - n :]
        for start in range(len(tokens) - n - 1, -1, -1):  # windows with a token after them
            if n < len(tokens) and tokens[start : start + n] == suffix:
                return tokens[start + n : start + n + count]
    return []


def test_the_longest_matching_suffix_wins_over_a_later_shorter_one():
    #          0  1  2  3  4  5  6  7  8  9
    tokens = [1, 2, 3, 9, 8, 3, 7, 1, 2, 3]
    assert _lookup(tokens).draft(2).tolist() == [9, 8]  # after "1 2 3" at 0-2, not after the "3" at 5
    assert _lookup([4, 5, 6]).draft(3).tolist() == []  # the last token never occurred before
    assert _lookup([7]).draft(3).tolist() == []


def test_drafts_equal_a_brute_force_search():
    random = np.random.default_rng(0)
    for _ in range(3000):
        tokens = random.integers(0, random.integers(1, 6), size=random.integers(1, 30)).tolist()
        for count in (1, 3):
            assert _lookup(tokens).draft(count).tolist() == _by_brute_force(tokens, count), tokens
