"""ScienceWorld step cost: our environment's step (observation and score only) vs the same step plus the
valid-action list (what scienceworld's own ``ScienceWorldEnv.step`` always builds), and reset time.
Then the rollout engine stepping its episodes' JVMs one after another vs at once in threads
(``Suite.concurrent_steps``), with the model replaced by a fixed action so that only the
environments' time is measured. Last, a real model's generation (the untrained ``tiny``, always its
full 48 tokens) with environments stepping after it vs overlapped with it (``overlap_steps``: half
the episodes generate while the other half step); its turns are replaced by the fixed action so
that every episode runs the same steps.

    .venv/bin/python benchmarks/sciworld_steps.py [--threads N]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from eef.config import RolloutConfig, SamplingConfig
from eef.envs.sciworld.env import SciWorldSuite
from eef.policy.cached_generator import CachedGenerator
from eef.policy.engine import Generation
from eef.policy.models import load_policy
from eef.rollout import RolloutEngine
from eef.types import EpisodeStart

LOOK_AROUND = "Thought: where am I?\nAction: look around"


class _LookAround:
    """Every turn of every episode: the same valid action (a stand-in for the model, to time environments)."""

    tokenizer = None

    def generate(self, prompts, sampling, seeds, keys=None) -> list[Generation]:
        return [Generation(text=LOOK_AROUND, new_tokens=1, finished=True)] * len(prompts)

    def release(self, key: str) -> None:
        pass


class _NoPrompts:
    """The engine's prompt encoder without a tokenizer: one token per prompt (only environments are timed)."""

    def __init__(self, tokenizer: None) -> None:
        pass

    def encode(self, conversations, keys) -> list[list[int]]:
        return [[0]] * len(conversations)

    def forget(self, key: str) -> None:
        pass


def rollout_stepping(episodes: int = 4, turns: int = 12) -> None:
    import eef.rollout

    prompt_encoder = eef.rollout.PromptEncoder
    eef.rollout.PromptEncoder = _NoPrompts
    suite = SciWorldSuite(max_envs=episodes)
    starts = [EpisodeStart(task) for task in suite.tasks("dev")[:episodes]]
    rollout, sampling = RolloutConfig(batch_size=episodes, overlap_steps=False), SamplingConfig(max_new_tokens=64)
    seconds: dict[bool, float] = {}
    try:
        for concurrent in (False, True, False, True):  # the first pass starts the JVMs: not counted
            suite.concurrent_steps = concurrent
            started = time.perf_counter()
            RolloutEngine(suite, _LookAround(), rollout, sampling, "bench", max_turns=turns).run(starts, seed=0)
            seconds[concurrent] = time.perf_counter() - started
    finally:
        suite.close()
        eef.rollout.PromptEncoder = prompt_encoder
    steps = episodes * turns
    print(
        f"rollout stepping, {episodes} episodes x {turns} steps: {steps / seconds[False]:.1f} steps/s one after "
        f"another, {steps / seconds[True]:.1f} in threads ({seconds[False] / seconds[True]:.1f}x)"
    )


class _GenerateThenLookAround:
    """A real model generates every turn (its full compute); the turn taken is the fixed action."""

    def __init__(self, generator: CachedGenerator):
        self.generator = generator
        self.tokenizer = generator.tokenizer

    def generate(self, prompts, sampling, seeds, keys=None) -> list[Generation]:
        generations = self.generator.generate(prompts, sampling, seeds, keys)
        return [replace(generation, text=LOOK_AROUND) for generation in generations]

    def release(self, key: str) -> None:
        self.generator.release(key)


def overlap_with_generation(episodes: int = 8, turns: int = 10) -> None:
    suite = SciWorldSuite(max_envs=episodes)
    policy = load_policy("tiny", tokenizer_texts=[suite.instruction], tokenizer_terms=suite.atomic_terms(), seed=0)
    generator = _GenerateThenLookAround(CachedGenerator(policy.model, policy.tokenizer))
    starts = [EpisodeStart(task) for task in suite.tasks("dev")[:episodes]]
    # An untrained model never ends its turn: every turn generates exactly max_new_tokens.
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=48)
    seconds: dict[bool, float] = {}
    try:
        for overlap in (False, True, False, True):  # the first pass starts the JVMs: not counted
            rollout = RolloutConfig(batch_size=episodes, overlap_steps=overlap)
            started = time.perf_counter()
            RolloutEngine(suite, generator, rollout, sampling, "bench", max_turns=turns).run(starts, seed=0)
            seconds[overlap] = time.perf_counter() - started
    finally:
        suite.close()
    print(
        f"rollout with the tiny model, {episodes} episodes x {turns} turns: {seconds[False]:.2f} s with steps "
        f"after generation, {seconds[True]:.2f} s overlapped ({seconds[False] / seconds[True]:.2f}x)"
    )


def main() -> None:
    suite = SciWorldSuite(max_envs=1)
    env = suite.make()
    tasks = [
        t for t in suite.tasks("train")[:24] if t.difficulty in ("boil", "melt", "chemistry-mix", "use-thermometer")
    ]
    try:
        env.reset(tasks[0])  # starts the JVM: not counted
        resets, plain, with_valid, steps = [], 0.0, 0.0, 0
        for task in tasks:
            started = time.perf_counter()
            env.reset(task)
            resets.append(time.perf_counter() - started)
            gold = env.gold_path()
            for valid in (False, True):
                env.reset(task)
                started = time.perf_counter()
                for action in gold:
                    result = env.step(action)
                    if valid:
                        env.valid_actions()
                    if result.done:
                        break
                elapsed = time.perf_counter() - started
                if valid:
                    with_valid += elapsed
                else:
                    plain += elapsed
                    steps += min(len(gold), len(env._current().actions))
        print(f"reset: mean {sum(resets) / len(resets):.3f} s over {len(resets)} tasks")
        print(f"step: {steps / plain:.1f} steps/s; with the valid-action list: {steps / with_valid:.1f} steps/s")
        print(f"ratio: {with_valid / plain:.1f}x faster without the valid-action list ({steps} steps)")
    finally:
        env.close()
        suite.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    if (threads := parser.parse_args().threads) is not None:
        torch.set_num_threads(threads)
    main()
    rollout_stepping()
    overlap_with_generation()
