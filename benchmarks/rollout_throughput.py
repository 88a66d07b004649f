"""Rollout throughput: our engine vs naive one-episode-at-a-time exploration, in one process.

Naive is how ETO and AgentGym explore: one episode at a time, the whole history re-encoded every
turn (``HFGenerator``, batch 1). Batched: the same generator, all episodes' turns in one
``generate`` call. Ours: the batched engine with each episode's keys and values kept between turns
and the recorded prefix of restarts computed once (``CachedGenerator``). Same model, tasks and
greedy decoding, so all three must produce the same trajectories (checked).

Part 1 rolls out from the tasks' initial states; part 2 restarts from expert failures as EEF does
(M restart points per failed trajectory) and compares the tokens prefilled per rollout.
``--continuous-batching`` adds transformers' own continuous batching (``generate_batch``: paged
attention, blocks shared between prompts with a common prefix, one manager kept across turns) as
the candidate the issue asked to measure against ours. Each engine runs ``--repeats`` times (3),
the engines taking turns; the median run is reported.

    .venv/bin/python benchmarks/rollout_throughput.py --model runs/default-seed0/sft/checkpoint
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import torch

from eef.config import RolloutConfig, SamplingConfig
from eef.envs.base import Suite
from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import Generation, HFGenerator, TurnGenerator, decode_generation, stop_and_pad_ids
from eef.rollout import RolloutEngine
from eef.types import EpisodeStart, Trajectory
from shapes import SHAPES, benchmark_policy, machine, run_script

FIGURES = ("episodes/s", "generated tokens/s", "env steps/s", "seconds", "CPU seconds", "prefilled tokens/rollout")


class ContinuousBatchingGenerator:
    """transformers' continuous batching behind our generator contract (greedy only; benchmark use).
    The manager persists across calls, so blocks of earlier turns can be shared by later prompts."""

    def __init__(self, model, tokenizer):
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        logging.getLogger("ContinuousBatchingLogger").setLevel(logging.ERROR)  # a warning per call otherwise
        self.model, self.tokenizer = model, tokenizer
        self.stop_ids, self.pad_id = stop_and_pad_ids(tokenizer)
        # Sized for CPU memory (the defaults are inferred from GPU memory).
        self.batching = ContinuousBatchingConfig(num_blocks=2048, page_size=32, max_batch_tokens=4096)

    def generate(self, prompts, sampling, seeds, keys=None) -> list[Generation]:
        if sampling.temperature > 0:
            raise ValueError("this benchmark engine decodes greedily only")
        from transformers import GenerationConfig

        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        outputs = self.model.generate_batch(
            prompts,
            generation_config=config,
            continuous_batching_config=self.batching,
            persistent_manager=True,
            warmup=False,
        )
        # Request ids are req_<counter>, numbered in the order the prompts were given.
        ordered = sorted(outputs.items(), key=lambda item: int(item[0].rsplit("_", 1)[1]))
        return [
            # How many prompt tokens its shared blocks spared is not reported: 0 prints as n/a.
            decode_generation(self.tokenizer, list(output.generated_tokens), self.stop_ids, prefilled=0)
            for _, output in ordered
        ]

    def release(self, key: str) -> None:
        """The manager's cache evicts blocks itself."""


def measure(
    suite: Suite,
    generator: TurnGenerator,
    batch_size: int,
    starts: list[EpisodeStart],
    rules: tuple[RolloutConfig, SamplingConfig],
) -> tuple[dict[str, float], list[Trajectory]]:
    rollout, sampling = rules
    engine = RolloutEngine(suite, generator, rollout.model_copy(update={"batch_size": batch_size}), sampling, "bench")
    began, cpu_began = time.perf_counter(), time.process_time()
    trajectories = engine.run(starts, seed=0)
    seconds = time.perf_counter() - began
    figures = {
        "seconds": seconds,
        "CPU seconds": time.process_time() - cpu_began,
        "episodes/s": len(trajectories) / seconds,
        "generated tokens/s": sum(t.generated_tokens for t in trajectories) / seconds,
        "env steps/s": sum(t.num_actions for t in trajectories) / seconds,
        "prefilled tokens/rollout": sum(t.prefilled_tokens for t in trajectories) / len(trajectories),
    }
    return figures, trajectories


def compare(
    title: str,
    suite: Suite,
    engines: dict[str, tuple[Callable[[], TurnGenerator], int]],
    starts: list[EpisodeStart],
    rules: tuple[RolloutConfig, SamplingConfig],
    repeats: int,
    naive_episodes: int,
) -> None:
    """Each engine ``repeats`` times (a fresh generator each time, the engines taking turns so that a
    slow spell of the machine hits all of them); the figures are those of each engine's median run,
    and each engine's ratio to naive is also given run by run.
    Naive plays the first ``naive_episodes`` starts only (one at a time it is slow on a GPU); its
    rates are compared with the others' and its trajectories with their first ``naive_episodes``."""
    runs: dict[str, list[tuple[dict[str, float], list[Trajectory]]]] = {name: [] for name in engines}
    for repeat in range(repeats):
        for name, (make, batch) in engines.items():
            played = starts[:naive_episodes] if name == "naive" else starts
            runs[name].append(measure(suite, make(), batch, played, rules))
            figures = runs[name][-1][0]
            print(
                f"  run {repeat + 1} {name}: {len(played)} episodes in {figures['seconds']:.1f} s, "
                f"{figures['generated tokens/s']:,.0f} generated tokens/s",
                flush=True,
            )
    results = {name: sorted(done, key=lambda run: run[0]["seconds"])[len(done) // 2] for name, done in runs.items()}
    names = list(results)
    spread = {name: statistics.pstdev(run[0]["seconds"] for run in done) for name, done in runs.items()}
    print(f"\n{title} (median of {repeats} runs)")
    print(f"{'':26}" + "".join(f"{name:>12}" for name in names) + "".join(f"{n + '/naive':>16}" for n in names[1:]))
    for key in FIGURES:
        values = [results[name][0][key] for name in names]
        cells = [f"{v:>12.1f}" if v else f"{'n/a':>12}" for v in values]
        ratios = [f"{v / values[0]:>16.2f}" if v else f"{'n/a':>16}" for v in values[1:]]
        print(f"{key:26}" + "".join(cells) + "".join(ratios))
    print(f"{'seconds, std over runs':26}" + "".join(f"{spread[name]:>12.2f}" for name in names))
    # The machine's speed drifts within minutes, and not alike for every engine: the ratio of runs made
    # one after the other (naive's run i, then the others' run i) shows how much of it is the machine.
    for name in names[1:]:
        paired = [
            mine[0]["episodes/s"] / naive[0]["episodes/s"]
            for naive, mine in zip(runs["naive"], runs[name], strict=True)
        ]
        print(
            f"{name}/naive episodes/s, run by run: "
            + ", ".join(f"{ratio:.2f}" for ratio in paired)
            + f" (median {statistics.median(paired):.2f})"
        )
    reference = [t.messages for t in runs["naive"][0][1]]
    # The fewest episodes any run played exactly as naive's first run did.
    identical = min(
        sum(t.messages == messages for t, messages in zip(run[1], reference, strict=False))
        for done in runs.values()
        for run in done
    )
    compared = f"the first {len(reference)} episodes" if len(reference) < len(starts) else "all episodes"
    verdict = "yes" if identical == len(reference) else f"NO, {identical} of {len(reference)}"
    print(f"identical trajectories ({compared}): {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        required=True,
        help="a checkpoint folder (e.g. a run's sft/checkpoint), smollm2-135m, or "
        + " | ".join(f"shape:{name}" for name in SHAPES),
    )
    parser.add_argument("--env", default="shop")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--max-invalid-actions",
        type=int,
        default=RolloutConfig().max_invalid_actions,
        help="consecutive invalid actions that end an episode (an untrained shape plays full episodes with 15)",
    )
    parser.add_argument("--restart-sources", type=int, default=16, help="expert failures to restart from (0: skip)")
    parser.add_argument("--restarts", type=int, default=4, help="restart points per failure (EEF's M)")
    parser.add_argument("--expert", default="scripted", help="the expert whose failures part 2 restarts from")
    parser.add_argument("--draft-tokens", type=int, help="ours: draft tokens per pass in small calls (0: none)")
    parser.add_argument("--draft-rows", type=int, help="ours: the most prompts a call may have to draft (GPU: try 256)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine; the median run is reported")
    parser.add_argument("--naive-episodes", type=int, default=None, help="episodes naive plays (default: all)")
    parser.add_argument(
        "--continuous-batching", action="store_true", help="also measure transformers' continuous batching"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.naive_episodes is not None and args.naive_episodes < 1:
        parser.error("--naive-episodes must be at least 1")
    # Unset: the cached generator's defaults.
    drafting = {name: value for name in ("draft_tokens", "draft_rows") if (value := getattr(args, name)) is not None}
    if any(value < 0 for value in drafting.values()):
        parser.error("--draft-tokens and --draft-rows cannot be negative")
    if args.threads:
        torch.set_num_threads(args.threads)

    suite = get_suite(args.env)
    policy = benchmark_policy(args.model)

    def plain() -> TurnGenerator:
        return HFGenerator(policy.model, policy.tokenizer)

    def cached() -> TurnGenerator:
        return CachedGenerator(policy.model, policy.tokenizer, **drafting)

    engines = {"naive": (plain, 1), "batched": (plain, args.batch_size), "ours": (cached, args.batch_size)}
    if args.continuous_batching:

        def continuous() -> TurnGenerator:
            return ContinuousBatchingGenerator(policy.model, policy.tokenizer)

        engines["hf-cb"] = (continuous, args.batch_size)
    drafts = cached()
    print(
        f"{args.model} on {machine()}; {args.env}, greedy, at most {args.max_new_tokens} new tokens per turn; "
        f"ours drafts {drafts.draft_tokens} tokens in calls of at most {drafts.draft_rows} prompts"
    )

    rules = (
        RolloutConfig(max_invalid_actions=args.max_invalid_actions, overlap_steps=False),
        SamplingConfig(temperature=0.0, max_new_tokens=args.max_new_tokens),
    )
    starts = [EpisodeStart(task) for task in suite.tasks(args.split)[: args.episodes]]
    compare(
        f"1. {len(starts)} episodes from the initial states of {args.split}",
        suite,
        engines,
        starts,
        rules,
        args.repeats,
        args.naive_episodes or len(starts),
    )

    if not args.restart_sources:
        return
    tasks = {task.task_id: task for task in suite.tasks("train")}
    failures = []
    for trajectory in collect(suite, make_expert(args.env, args.expert), suite.tasks("train"), seed=0):
        if not trajectory.success and trajectory.num_actions > args.restarts:
            failures.append(trajectory)
        if len(failures) == args.restart_sources:
            break
    restarts = [EpisodeStart(tasks[f.task_id], f, m) for f in failures for m in range(1, args.restarts + 1)]
    compare(
        f"2. {len(restarts)} EEF restarts ({len(failures)} expert failures x {args.restarts} points)",
        suite,
        engines,
        restarts,
        rules,
        args.repeats,
        args.naive_episodes or len(starts),
    )


if __name__ == "__main__":
    run_script(main)
