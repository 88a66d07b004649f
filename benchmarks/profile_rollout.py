"""Where our rollout engine spends its time: one run under cProfile, the functions that took the most.

On a GPU, kernels run asynchronously: their time shows at the next synchronisation (a ``tolist``),
and the Python around them (modules, launches, our bookkeeping) is what the profile splits up.
``--turns`` instead times each generation call of a run (one per turn of the live episodes) without
a profiler: how many episodes it served, the tokens it prefilled and the decode passes it took,
which shows how much of a rollout the last episodes' turns take.

    .venv/bin/python benchmarks/profile_rollout.py --model runs/default-seed0/sft/checkpoint --episodes 64
    .venv/bin/python benchmarks/profile_rollout.py --model runs/default-seed0/sft/checkpoint --split dev --turns
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from eef.config import RolloutConfig, SamplingConfig
from eef.envs.registry import get_suite
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import Generation
from eef.rollout import RolloutEngine
from eef.types import EpisodeStart
from shapes import SHAPES, benchmark_policy, machine, run_script


class TimedTurns:
    """A generator that times each call of the one it wraps (a turn of every live episode)."""

    def __init__(self, generator: CachedGenerator):
        self.generator, self.tokenizer = generator, generator.tokenizer
        self.calls: list[tuple[int, float, int, float]] = []  # episodes, prefilled, decode passes, seconds

    def generate(self, prompts, sampling, seeds, keys=None) -> list[Generation]:
        began, passes = time.perf_counter(), self.generator.decode_passes
        generations = self.generator.generate(prompts, sampling, seeds, keys)
        seconds = time.perf_counter() - began
        passes = self.generator.decode_passes - passes
        self.calls.append((len(prompts), sum(g.prefilled_tokens for g in generations), passes, seconds))
        return generations

    def release(self, key: str) -> None:
        self.generator.release(key)


def print_turns(calls: list[tuple[int, float, int, float]], total: float) -> None:
    print(f"{'call':>4} {'episodes':>8} {'prefilled':>10} {'passes':>7} {'seconds':>8}")
    for index, (episodes, prefilled, passes, seconds) in enumerate(calls, start=1):
        print(f"{index:>4} {episodes:>8} {prefilled:>10,.0f} {passes:>7} {seconds:>8.3f}")
    generating = sum(call[3] for call in calls)
    print(f"generation calls {generating:.3f} s of {total:.3f} s; the rest: prompts, environment steps, bookkeeping")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"a folder or shape:{'|'.join(SHAPES)}")
    parser.add_argument("--env", default="shop")
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-invalid-actions", type=int, default=RolloutConfig().max_invalid_actions)
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    parser.add_argument("--turns", action="store_true", help="time each generation call instead of profiling")
    args = parser.parse_args()

    suite = get_suite(args.env)
    policy = benchmark_policy(args.model)
    rules = RolloutConfig(max_invalid_actions=args.max_invalid_actions, batch_size=args.episodes, overlap_steps=False)
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens)
    starts = [EpisodeStart(task) for task in suite.tasks(args.split)[: args.episodes]]
    if args.turns:
        for _ in range(2):  # the first run warms up the allocator and the kernels' caches
            timed = TimedTurns(CachedGenerator(policy.model, policy.tokenizer))
            began = time.perf_counter()
            RolloutEngine(suite, timed, rules, sampling, "profile").run(starts, 0)
        print(f"{args.model} on {machine()}: {len(starts)} episodes, the second of two runs")
        print_turns(timed.calls, time.perf_counter() - began)
        return
    engine = RolloutEngine(suite, CachedGenerator(policy.model, policy.tokenizer), rules, sampling, "profile")
    profile = cProfile.Profile()
    began = time.perf_counter()
    trajectories = profile.runcall(engine.run, starts, 0)
    seconds = time.perf_counter() - began
    tokens = sum(t.generated_tokens for t in trajectories)
    print(f"{args.model} on {machine()}: {len(starts)} episodes, {tokens:,} generated tokens, {seconds:.1f} s profiled")
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(r"eef|transformers/models|masking_utils", args.top)


if __name__ == "__main__":
    run_script(main)
