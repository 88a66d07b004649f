"""Each row's token from its own seed: batch-independent, and distributed as softmax says."""

import torch

from eef.config import SamplingConfig
from eef.policy.sampling import choose_tokens, first_maximum, nucleus, uniform_noise

LOGITS = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03]))
DRAWS = 20_000


def _draw(logits: torch.Tensor, sampling: SamplingConfig, first_seed: int = 0) -> torch.Tensor:
    """One draw from ``logits`` per seed, all seeds at once (one row each)."""
    seeds = torch.arange(first_seed, first_seed + DRAWS)
    return choose_tokens(logits.expand(DRAWS, -1), sampling, seeds, torch.zeros(DRAWS, dtype=torch.long))


def test_greedy_is_the_argmax():
    logits = torch.randn(6, 50)
    chosen = choose_tokens(logits, SamplingConfig(temperature=0.0), torch.arange(6), torch.zeros(6, dtype=torch.long))
    assert torch.equal(chosen, logits.argmax(dim=-1))


def test_first_maximum_is_argmax_on_ties_and_nan():
    generator = torch.Generator().manual_seed(0)
    for rows in (1, 7, 64):
        scores = torch.randint(0, 4, (rows, 300), generator=generator).float()  # many equal maxima
        scores[0, 11] = float("nan")  # argmax takes a NaN as the maximum
        for dtype in (torch.float32, torch.bfloat16):
            assert torch.equal(first_maximum(scores.to(dtype)), scores.to(dtype).argmax(dim=-1))
    assert first_maximum(torch.zeros(2, 5)).tolist() == [0, 0]


def test_draws_follow_the_tempered_distribution():
    for temperature in (1.0, 0.5):
        expected = torch.softmax(LOGITS / temperature, dim=-1)
        counts = torch.bincount(_draw(LOGITS, SamplingConfig(temperature=temperature)), minlength=5)
        frequencies = counts / DRAWS
        # Four standard deviations of a binomial frequency: a wrong sign or scale is far outside.
        tolerance = 4 * (expected * (1 - expected) / DRAWS).sqrt()
        assert ((frequencies - expected).abs() <= tolerance).all(), (temperature, frequencies, expected)


def test_top_p_keeps_the_smallest_set_reaching_it():
    kept = set(_draw(LOGITS, SamplingConfig(temperature=1.0, top_p=0.7)).tolist())
    assert kept == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.25
    assert set(_draw(LOGITS, SamplingConfig(temperature=1.0, top_p=0.1)).tolist()) == {0}
    filtered = nucleus(LOGITS[None], 0.9)
    assert torch.isinf(filtered).tolist() == [[False, False, False, True, True]]


def test_a_rows_token_depends_on_its_seed_and_step_only():
    sampling = SamplingConfig(temperature=1.0)
    logits = torch.randn(8, 300)
    seeds, steps = torch.arange(100, 108), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    together = choose_tokens(logits, sampling, seeds, steps)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    shuffled = choose_tokens(logits[order], sampling, seeds[order], steps[order])
    alone = [choose_tokens(logits[i : i + 1], sampling, seeds[i : i + 1], steps[i : i + 1]).item() for i in range(8)]
    assert torch.equal(shuffled, together[order]) and together.tolist() == alone
    # Another seed or step is another draw: on a flat distribution, nearly every token changes.
    flat, rows = logits[:1].expand(400, -1), torch.arange(400)
    zero, one = torch.zeros(400, dtype=torch.long), torch.ones(400, dtype=torch.long)
    first = choose_tokens(flat, sampling, rows, zero)
    assert (choose_tokens(flat, sampling, rows + 1000, zero) != first).float().mean() > 0.9
    assert (choose_tokens(flat, sampling, rows, one) != first).float().mean() > 0.9


def test_noise_is_uniform_and_differs_by_seed_step_and_token():
    noise = uniform_noise(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 0]), 100_000)
    assert ((noise > 0) & (noise < 1)).all()
    assert abs(noise.mean().item() - 0.5) < 0.01 and abs(noise.var().item() - 1 / 12) < 0.003
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])
    assert len(set(noise[0].tolist())) > 99_000  # tokens of one row get distinct numbers
    assert torch.equal(noise, uniform_noise(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 0]), 100_000))
