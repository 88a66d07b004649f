"""Choosing each row's token: ``argmax`` over the vocabulary against ``max(...).indices``, same tensors.

Both give each row's first largest score (checked here on every draw); the engine's greedy and
sampled choices go through the faster one (``eef.policy.sampling.first_maximum``).

    .venv/bin/python benchmarks/token_choice.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from shapes import batch_sizes, machine, run_script


def microseconds(choose, scores: torch.Tensor, repeats: int) -> float:
    for _ in range(10):
        choose(scores)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        choose(scores)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=batch_sizes, default="1,8,64,256", help="batch sizes, comma-separated")
    parser.add_argument("--vocabulary", type=int, default=5058, help="default: the shop's tiny model's")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rows = args.rows
    if args.vocabulary < 1 or args.repeats < 1 or min(rows) < 1:
        parser.error("--rows, --vocabulary and --repeats must be positive")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{machine()}; vocabulary {args.vocabulary:,}, median of {args.repeats} calls")
    print(f"{'rows':>6} {'argmax':>12} {'max.indices':>12} {'ratio':>7}  indices")
    generator = torch.Generator().manual_seed(0)
    for count in rows:
        scores = torch.randn(count, args.vocabulary, generator=generator).to(device)
        scores[:, :: max(1, args.vocabulary // 7)] = scores.max()  # ties: the first must win in both
        naive = microseconds(lambda s: s.argmax(dim=-1).cpu(), scores, args.repeats)
        ours = microseconds(lambda s: s.max(dim=-1).indices.cpu(), scores, args.repeats)
        same = torch.equal(scores.argmax(dim=-1), scores.max(dim=-1).indices)
        print(f"{count:>6} {naive:>10.1f}us {ours:>10.1f}us {naive / ours:>6.2f}x  {'same' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    run_script(main)
