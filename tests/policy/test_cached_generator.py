"""The cached generator against the plain one, on an untrained tiny model (greedy: the same tokens)."""

import numpy as np

from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import HFGenerator, SamplingSettings
from eef.policy.models import load_policy

TEXTS = ["You are a shopping agent.", "Search [SEP] a red hat under 20 dollars", "Action: click[B001]"]
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=12)


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
