"""The cached generator against the plain one, on an untrained tiny model (greedy: the same tokens)."""

import numpy as np
import torch

from eef.config import SamplingConfig
from eef.policy.cached_generator import CachedGenerator
from eef.policy.decode_batch import DecodeBatch
from eef.policy.engine import HFGenerator
from eef.policy.models import load_policy

TEXTS = ["You are a shopping agent.", "Search [SEP] a red hat under 20 dollars", "Action: click[B001]"]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12)


def test_unrelated_prompts_of_many_lengths_generate_as_alone():
    """No cached prefix, and prompts prefilled in several groups of different widths in one batch."""
    policy = load_policy("tiny", tokenizer_texts=TEXTS, seed=0)
    random = np.random.default_rng(0)
    prompts = [random.integers(3, len(policy.tokenizer), size=n).tolist() for n in (3, 40, 37, 12, 90)]
    cached = CachedGenerator(policy.model, policy.tokenizer, share_prefixes=False)
    plain = HFGenerator(policy.model, policy.tokenizer)
    expected = [plain.generate([prompt], GREEDY, seeds=[0])[0] for prompt in prompts]
    got = cached.generate(prompts, GREEDY, seeds=[0] * len(prompts))
    assert [g.text for g in got] == [e.text for e in expected]
    assert [g.new_tokens for g in got] == [e.new_tokens for e in expected]
    assert [g.prefilled_tokens for g in got] == [len(prompt) for prompt in prompts]


@torch.inference_mode()
def test_a_pass_with_drafts_keeps_only_the_accepted_tokens_in_the_cache():
    """Rows keep 3, 1 and 2 of the 3 tokens fed in one pass: the next pass's logits and the extracted
    keys are those of each row's kept tokens alone (rejected drafts become masked holes)."""
    policy = load_policy("tiny", tokenizer_texts=TEXTS, seed=0)
    model, generator = policy.model.eval(), CachedGenerator(policy.model, policy.tokenizer)
    random = np.random.default_rng(1)
    vocabulary = len(policy.tokenizer)
    prompts = [random.integers(3, vocabulary, size=n) for n in (5, 9, 7)]
    batch = DecodeBatch(model, generator.cache_argument, generator.pad_id, decode_columns=8)
    batch.prefill(prompts, [(None, 0)] * 3)
    drafted = random.integers(3, vocabulary, size=(3, 3))
    batch.decode(torch.from_numpy(drafted))
    kept = [3, 1, 2]
    batch.keep_fed(kept)
    following = random.integers(3, vocabulary, size=(3, 1))
    logits = batch.decode(torch.from_numpy(following))[:, -1]
    sequences = [
        np.concatenate([prompt, row[:count], after])
        for prompt, row, count, after in zip(prompts, drafted, kept, following, strict=True)
    ]
    for row, sequence in enumerate(sequences):
        expected = model(input_ids=torch.from_numpy(sequence)[None]).logits[0, -1]
        torch.testing.assert_close(logits[row], expected, rtol=1e-5, atol=1e-5)
    alone = DecodeBatch(model, generator.cache_argument, generator.pad_id)
    alone.prefill(sequences, [(None, 0)] * 3)
    fresh = alone.extract([0, 1, 2], sequences)
    for got, want in zip(batch.extract([0, 1, 2], sequences), fresh, strict=True):
        for layer_got, layer_want in zip(got.keys + got.values, want.keys + want.values, strict=True):
            torch.testing.assert_close(layer_got, layer_want, rtol=1e-5, atol=1e-5)


def test_drafts_give_the_turns_of_one_token_per_pass_in_fewer_passes():
    """Prompts that repeat themselves, so that copied drafts are often right (and sometimes wrong)."""
    policy = load_policy("tiny", tokenizer_texts=TEXTS, seed=0)
    random = np.random.default_rng(2)
    prompts = [np.tile(random.integers(3, len(policy.tokenizer), size=n), 4).tolist() for n in (2, 5, 11)]
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=24)
    plain = HFGenerator(policy.model, policy.tokenizer)
    expected = [plain.generate([prompt], sampling, seeds=[0])[0] for prompt in prompts]
    single = CachedGenerator(policy.model, policy.tokenizer, draft_tokens=0)
    drafting = CachedGenerator(policy.model, policy.tokenizer, draft_tokens=3)
    for generator in (single, drafting):
        got = generator.generate(prompts, sampling, seeds=[0, 0, 0])
        assert [(g.text, g.new_tokens) for g in got] == [(e.text, e.new_tokens) for e in expected]
    assert 0 < drafting.decode_passes < single.decode_passes
