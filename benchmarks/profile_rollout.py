"""Where our rollout engine spends its time: one run under cProfile, the functions that took the most.

On a GPU, kernels run asynchronously: their time shows at the next synchronisation (a ``tolist``),
and the Python around them (modules, launches, our bookkeeping) is what the profile splits up.

    .venv/bin/python benchmarks/profile_rollout.py --model runs/default-seed0/sft/checkpoint --episodes 64
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from eef.envs.registry import get_suite
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import SamplingSettings
from eef.rollout import EpisodeStart, RolloutEngine, RolloutSettings
from shapes import SHAPES, benchmark_policy, machine, run_script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"a folder or shape:{'|'.join(SHAPES)}")
    parser.add_argument("--env", default="shop")
    parser.add_argument("--split", default="train")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-invalid-actions", type=int, default=RolloutSettings().max_invalid_actions)
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    args = parser.parse_args()

    suite = get_suite(args.env)
    policy = benchmark_policy(args.model)
    rules = RolloutSettings(
        sampling=SamplingSettings(temperature=0.0, max_new_tokens=args.max_new_tokens),
        max_invalid_actions=args.max_invalid_actions,
        batch_size=args.episodes,
    )
    engine = RolloutEngine(suite, CachedGenerator(policy.model, policy.tokenizer), rules, "profile")
    starts = [EpisodeStart(task) for task in suite.tasks(args.split)[: args.episodes]]
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
