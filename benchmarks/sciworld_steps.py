"""ScienceWorld step cost: our environment's step (observation and score only) vs the same step plus the
valid-action list (what scienceworld's own ``ScienceWorldEnv.step`` always builds), and reset time.

    .venv/bin/python benchmarks/sciworld_steps.py
"""

from __future__ import annotations

import time

from eef.envs.sciworld.env import SciWorldSuite


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
