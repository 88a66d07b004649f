"""Exploration on Ray workers against the run's own process: episodes/s and the cost of each chunk.

The same episode starts (the first ``--episodes`` training goals of the default config's environment) are
cut into chunks of ``--chunk-size`` and rolled out with the default's exploration sampling and each chunk's
seed, as a run explores: in this process (naive: no Ray, the way `eef run` explores without
``cluster.workers``; with torch's threads and with one thread, which is what each worker gets), then on a
local Ray instance with 1 and 2 workers (``RolloutPool``, one CPU each). Every way must give the same
trajectories (checked). Worker start-up and each worker's first model load are timed apart; the figures of
the rollouts are after them, as in a run, where a worker keeps its model between chunks.

The overhead per chunk is (1 worker − this process with one thread) / chunks: the same work on one CPU, plus
what Ray adds (sending the starts, receiving the trajectories, scheduling).

    .venv/bin/python benchmarks/ray_rollouts.py --model runs/default-seed0/sft/checkpoint
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from eef.cluster import RolloutPool
from eef.config import ClusterConfig, RunConfig, default_config_path, load_config
from eef.envs.registry import get_suite
from eef.methods.exploration import rollout_seed
from eef.policy.generators import load_generator
from eef.rollout import RolloutEngine
from eef.types import EpisodeStart, Trajectory
from shapes import machine, run_script

ORIGIN = "policy:benchmark"


def in_process(config: RunConfig, checkpoint: Path, chunks: dict[int, list[EpisodeStart]], seeds: dict[int, int]):
    """The run's own exploration: one chunk after another with the run's engine."""
    suite = get_suite(config.env.name, **config.env.options)
    generator = load_generator(checkpoint, config.model.dtype, config.rollout)
    engine = RolloutEngine(suite, generator, config.rollout, config.rollout.explore, ORIGIN)
    return lambda: [t for index, starts in chunks.items() for t in engine.run(starts, seed=seeds[index])]


def on_workers(
    config: RunConfig, checkpoint: Path, chunks: dict[int, list[EpisodeStart]], seeds: dict[int, int], workers: int
) -> tuple[RolloutPool, float, Callable[[], list[Trajectory]]]:
    """A pool of ``workers`` on a new local Ray instance, each with the model loaded (the seconds that took),
    and its exploration of the chunks, gathered in chunk order."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_directory:  # only named in the message of a run stopped by faults
        pool = RolloutPool(
            ClusterConfig(workers=workers), config.env, config.rollout, config.model.dtype, Path(run_directory)
        )
    sampling = config.rollout.explore.model_dump()
    pool.ray.get([worker.roll_out.remote(str(checkpoint), sampling, ORIGIN, [], 0) for worker in pool.workers])
    ready = time.perf_counter() - began

    def explore() -> list[Trajectory]:
        done = dict(pool.roll_out(checkpoint, config.rollout.explore, ORIGIN, chunks, seeds))
        return [t for index in chunks for t in done[index]]

    return pool, ready, explore


def timed(explore: Callable[[], list[Trajectory]], repeats: int) -> tuple[float, list[Trajectory]]:
    """The median seconds of ``repeats`` explorations, and the trajectories of the last."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        trajectories = explore()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), trajectories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a checkpoint folder (e.g. a run's sft/checkpoint)")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=8, help="episodes per chunk (a run's rollout.batch_size)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3, help="explorations per way; the median is reported")
    args = parser.parse_args()
    if min(args.episodes, args.chunk_size, args.repeats) < 1:
        parser.error("--episodes, --chunk-size and --repeats must be at least 1")
    config = load_config(
        default_config_path(),
        [f"rollout.batch_size={args.chunk_size}", f"rollout.explore.max_new_tokens={args.max_new_tokens}"],
    )
    suite = get_suite(config.env.name, **config.env.options)
    starts = [EpisodeStart(task=task) for task in suite.tasks("train")[: args.episodes]]
    size = args.chunk_size
    chunks = {index: starts[at : at + size] for index, at in enumerate(range(0, len(starts), size))}
    seeds = {index: rollout_seed(config.seed, "benchmark", 1, index) for index in chunks}
    print(f"{machine()}; {len(starts)} episodes in {len(chunks)} chunks of {args.chunk_size}, {args.model}", flush=True)

    threads = torch.get_num_threads()
    results: dict[str, tuple[float, list[Trajectory]]] = {}
    results[f"this process, {threads} threads"] = timed(in_process(config, args.model, chunks, seeds), args.repeats)
    torch.set_num_threads(1)
    results["this process, 1 thread"] = timed(in_process(config, args.model, chunks, seeds), args.repeats)
    torch.set_num_threads(threads)
    for workers in (1, 2):
        pool, ready, explore = on_workers(config, args.model, chunks, seeds, workers)
        try:
            print(f"  {workers} worker(s): Ray started and the model loaded in {ready:.1f} s", flush=True)
            results[f"Ray, {workers} worker{'s' if workers > 1 else ''}"] = timed(explore, args.repeats)
        finally:
            pool.close()

    naive_seconds = results[f"this process, {threads} threads"][0]
    print(f"\nmedian of {args.repeats} explorations each")
    print(f"{'':26}{'seconds':>10}{'episodes/s':>12}{'vs naive':>10}")
    for name, (seconds, _) in results.items():
        print(f"{name:26}{seconds:>10.1f}{len(starts) / seconds:>12.2f}{naive_seconds / seconds:>10.2f}")
    overhead = (results["Ray, 1 worker"][0] - results["this process, 1 thread"][0]) / len(chunks)
    print(f"overhead per chunk (1 worker − this process with 1 thread): {overhead * 1000:.0f} ms")
    played = [[t.messages for t in trajectories] for _, trajectories in results.values()]
    same = all(messages == played[0] for messages in played)
    print(f"identical trajectories: {'yes' if same else 'NO'}", flush=True)


if __name__ == "__main__":
    run_script(main)
