"""Which cached prefix a prompt reuses, and which prefixes new prompts share."""

import numpy as np
import torch

from eef.policy.prefix_cache import CachedSequence, PrefixStore, common_prefix_length, shared_prefixes


def _tokens(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _sequence(*values: int) -> CachedSequence:
    empty = torch.zeros((1, len(values), 2))
    return CachedSequence(tokens=_tokens(*values), keys=[empty], values=[empty])


def test_common_prefix_length():
    assert common_prefix_length(_tokens(1, 2, 3), _tokens(1, 2, 4)) == 2
    assert common_prefix_length(_tokens(1, 2), _tokens(1, 2, 3)) == 2
    assert common_prefix_length(_tokens(5), _tokens(1, 2)) == 0
    assert common_prefix_length(_tokens(), _tokens(1)) == 0


def test_longest_prefix_picks_the_best_entry():
    store = PrefixStore()
    store.put("a", _sequence(1, 2, 3))
    store.put("b", _sequence(1, 2, 9, 9))
    sequence, length = store.longest_prefix(_tokens(1, 2, 9, 7))
    assert sequence is not None and list(sequence.tokens) == [1, 2, 9, 9] and length == 3
    assert store.longest_prefix(_tokens(8, 8)) == (None, 0)


def test_own_prefix_tolerates_a_differently_split_end_but_not_a_different_conversation():
    store = PrefixStore()
    store.put("episode", _sequence(*range(40)))
    sequence, length = store.own_prefix("episode", _tokens(*range(37), 99, 100))
    assert sequence is not None and length == 37
    assert store.own_prefix("episode", _tokens(*range(10), 99)) == (None, 0)
    assert store.own_prefix("other", _tokens(*range(40))) == (None, 0)


def test_shared_prefixes_compute_the_common_part_then_each_chain_of_restarts_once():
    system = list(range(100, 110))
    restart_1 = _tokens(*system, 1, 2)
    restart_2 = _tokens(*system, 1, 2, 3, 4)  # the same trajectory, one turn further
    restart_3 = _tokens(*system, 1, 2, 3, 4, 5, 6)
    other_task = _tokens(*system, 7, 8)
    sample_a, sample_b = _tokens(*system, 9), _tokens(*system, 9)  # two samples of one start
    prompts = [restart_2, other_task, restart_1, sample_a, restart_3, sample_b]
    common, chains = shared_prefixes(prompts, min_tokens=8)
    assert len(common) == 1 and list(common[0].tokens) == system and sorted(common[0].users) == list(range(6))
    served = {tuple(prefix.tokens.tolist()): sorted(prefix.users) for prefix in chains}
    assert served == {tuple(restart_3[:-1].tolist()): [0, 2, 4], tuple(sample_a[:-1].tolist()): [3, 5]}


def test_no_shared_prefixes_for_a_single_prompt_or_unrelated_ones():
    assert shared_prefixes([_tokens(1, 2, 3)]) == []
    assert shared_prefixes([_tokens(1, 2, 3), _tokens(4, 5, 6)], min_tokens=1) == []
