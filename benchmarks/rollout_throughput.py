"""Rollout throughput: the batched engine vs naive one-episode-at-a-time exploration, in one process.

Naive is how ETO and AgentGym explore: one episode at a time, the whole history re-encoded every
turn. Ours runs many episodes together, one ``generate`` call per turn for all live episodes. Both
use the same model, tasks and greedy decoding, so they must produce the same trajectories (checked).

    .venv/bin/python benchmarks/rollout_throughput.py --model runs/default-seed0/sft/checkpoint
"""

from __future__ import annotations

import argparse
import time

import torch

from eef.envs.registry import get_suite
from eef.policy.engine import HFGenerator, SamplingSettings
from eef.policy.models import load_policy
from eef.rollout import EpisodeStart, RolloutEngine, RolloutSettings
from eef.types import Trajectory


def measure(engine: RolloutEngine, starts: list[EpisodeStart]) -> tuple[dict[str, float], list[Trajectory]]:
    began = time.perf_counter()
    trajectories = engine.run(starts, seed=0)
    seconds = time.perf_counter() - began
    figures = {
        "seconds": seconds,
        "episodes/s": len(trajectories) / seconds,
        "generated tokens/s": sum(t.generated_tokens for t in trajectories) / seconds,
        "env steps/s": sum(t.num_actions for t in trajectories) / seconds,
        "prompt tokens": sum(t.prompt_tokens for t in trajectories),
    }
    return figures, trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a checkpoint folder (e.g. a run's sft/checkpoint)")
    parser.add_argument("--env", default="shop")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    suite = get_suite(args.env)
    starts = [EpisodeStart(task) for task in suite.tasks(args.split)[: args.episodes]]
    policy = load_policy(args.model)
    generator = HFGenerator(policy.model, policy.tokenizer)
    greedy = SamplingSettings(temperature=0.0, max_new_tokens=args.max_new_tokens)
    results = {}
    for name, batch_size in (("naive", 1), ("ours", args.batch_size)):
        engine = RolloutEngine(suite, generator, RolloutSettings(sampling=greedy, batch_size=batch_size), "bench")
        results[name] = measure(engine, starts)

    (naive, naive_runs), (ours, our_runs) = results["naive"], results["ours"]
    identical = [t.messages for t in naive_runs] == [t.messages for t in our_runs]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.episodes} episodes of {args.env}/{args.split}, greedy, {args.model} on {device}")
    print(f"{'':22}{'naive':>12}{'ours':>12}{'ours/naive':>12}")
    for key in ("episodes/s", "generated tokens/s", "env steps/s", "seconds", "prompt tokens"):
        print(f"{key:22}{naive[key]:>12.1f}{ours[key]:>12.1f}{ours[key] / naive[key]:>12.2f}")
    print(f"identical trajectories: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
