"""ScienceWorld step cost: our environment's step (observation and score only) vs the same step plus the
valid-action list (what scienceworld's own ``ScienceWorldEnv.step`` always builds), and reset time.
Then the rollout engine stepping its episodes' JVMs one after another vs at once in threads
(``Suite.concurrent_steps``), with the model replaced by a fixed action so that only the
environments' time is measured.

    .venv/bin/python benchmarks/sciworld_steps.py
"""

from __future__ import annotations

import time

from eef.envs.sciworld.env import SciWorldSuite
from eef.policy.engine import Generation, SamplingSettings
from eef.rollout import EpisodeStart, RolloutEngine, RolloutSettings


class _LookAround:
    """Every turn of every episode: the same valid action (a stand-in for the model, to time environments)."""

    tokenizer = None

    def generate(self, prompts, sampling, seed, keys=None) -> list[Generation]:
        return [Generation(text="Thought: where am I?\nAction: look around", new_tokens=1, finished=True)] * len(
            prompts
        )

    def release(self, key: str) -> None:
        pass


def rollout_stepping(episodes: int = 4, turns: int = 12) -> None:
    import eef.rollout

    eef.rollout.encode_prompt = lambda tokenizer, messages: [0]  # no tokenizer: only environments are timed
    suite = SciWorldSuite(max_envs=episodes)
    starts = [EpisodeStart(task) for task in suite.tasks("dev")[:episodes]]
    settings = RolloutSettings(sampling=SamplingSettings(), batch_size=episodes, max_turns=turns)
    seconds: dict[bool, float] = {}
    try:
        for concurrent in (False, True, False, True):  # the first pass starts the JVMs: not counted
            suite.concurrent_steps = concurrent
            started = time.perf_counter()
            RolloutEngine(suite, _LookAround(), settings, "bench").run(starts, seed=0)
            seconds[concurrent] = time.perf_counter() - started
    finally:
        suite.close()
    steps = episodes * turns
    print(
        f"rollout stepping, {episodes} episodes x {turns} steps: {steps / seconds[False]:.1f} steps/s one after "
        f"another, {steps / seconds[True]:.1f} in threads ({seconds[False] / seconds[True]:.1f}x)"
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
    main()
    rollout_stepping()
