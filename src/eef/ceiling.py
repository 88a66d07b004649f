"""`eef ceiling`: the most that solutions of the expert's failures could add to a method's training set.

EEF adds to RFT's training set solutions of the explored tasks the expert failed, harvested from
restarts inside those failures. However well it explores, it cannot add more than a perfect solution
of every one of them. This measures that bound on a finished run: it trains the model the method's
first iteration started from, with the run's settings, on the method's own training set plus an
oracle expert's successes on the explored tasks the main expert failed, and evaluates it beside the
run's SFT model and the method's model, on dev and on held-out tasks: the later training tasks the
main expert failed, which no training set of the run has a solution of. When even the oracle's
solutions gain little there, no exploration of the expert's failures can, with this student and
these settings (docs/results.md, "The ceiling").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eef.config import RunConfig
from eef.envs.base import Suite
from eef.evaluate import evaluate, save_evaluation
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.layout import RunLayout
from eef.methods.exploration import iteration_start
from eef.policy.engine import TurnGenerator
from eef.policy.generators import load_generator
from eef.storage import read_json, read_jsonl, write_json, write_jsonl
from eef.summary import Summary
from eef.training.jobs import SFTJob, train
from eef.types import Task, Trajectory


@dataclass(frozen=True)
class CeilingTasks:
    oracle: list[Task]
    """The explored tasks the main expert failed: the oracle's successes on these join the training set."""
    held_out: list[Task]
    """The training tasks after the explored ones that the main expert failed: no training set solves them."""
    expert_successes: int
    """The main expert's successes on the training tasks: the SFT model's training set."""


def ceiling_tasks(train: list[Task], explored: int, expert: list[Trajectory]) -> CeilingTasks:
    """The tasks of ``train`` (its first ``explored`` are the ones the run explored) that ``expert`` failed."""
    failed = {t.task_id for t in expert if not t.success}
    return CeilingTasks(
        oracle=[task for task in train[:explored] if task.task_id in failed],
        held_out=[task for task in train[explored:] if task.task_id in failed],
        expert_successes=sum(t.success for t in expert),
    )


@dataclass(frozen=True)
class Ceiling:
    """What a finished run is measured with: its layout, config, suite, the method and the oracle expert."""

    layout: RunLayout
    config: RunConfig
    suite: Suite
    method: str
    oracle: str

    def run(self, tasks: CeilingTasks, out: Path) -> dict[str, Any]:
        """Train the ceiling's model into ``out/checkpoint`` and evaluate it, the SFT model and the method's
        model on the held-out tasks (the latter two's dev results are the run's); returns what
        ``out/ceiling.json`` holds."""
        oracle = make_expert(self.config.env.name, self.oracle)
        solutions = [t for t in collect(self.suite, oracle, tasks.oracle, seed=self.config.seed) if t.success]
        method_key = self.layout.iteration_key(self.method, 1)
        method_set = read_jsonl(self.layout.training_set(self.method, 1), Trajectory)
        write_jsonl(out / "oracle.jsonl", solutions)
        write_jsonl(out / "train.jsonl", [*method_set, *solutions])
        checkpoint = self._train(out)
        dev_tasks = self.suite.tasks("dev")[: self.config.env.dev_tasks]
        models = (  # name, checkpoint, training set size, where its dev results are (None: evaluate it)
            ("sft", self.layout.checkpoint("sft"), tasks.expert_successes, "sft"),
            (self.method, self.layout.checkpoint(method_key), len(method_set), method_key),
            ("ceiling", checkpoint, len(method_set) + len(solutions), None),
        )
        rows = []
        for name, model, size, dev_key in models:
            generator = load_generator(model, self.config.model.dtype, self.config.rollout)
            if dev_key is None:
                dev = self._evaluate(generator, "dev", dev_tasks, out / f"dev-{name}")
            else:
                dev = Summary.model_validate(read_json(self.layout.evaluation_results(dev_key, "dev"))["summary"])
            held_out = self._evaluate(generator, "train", tasks.held_out, out / f"held-out-{name}")
            rows.append(
                {
                    "model": name,
                    "checkpoint": str(model),
                    "training_set": size,
                    "dev": dev.model_dump(),
                    "held_out": held_out.model_dump(),
                }
            )
        report = {
            "run": str(self.layout.dir),
            "method": self.method,
            "oracle": self.oracle,
            "oracle_tasks": len(tasks.oracle),
            "oracle_solutions": len(solutions),
            "oracle_solutions_by_level": dict(Counter(t.difficulty or "-" for t in solutions)),
            "held_out_tasks": len(tasks.held_out),
            "seed": self.config.seed,
            "rows": rows,
        }
        write_json(out / "ceiling.json", report)
        return report

    def _train(self, out: Path) -> Path:
        """The ceiling's checkpoint, trained as the method's first iteration was."""
        checkpoint = out / "checkpoint"
        method = next(m for m in self.config.methods if m.name == self.method)
        base = self.layout.base_model(self.config.model.name)
        start, settings = iteration_start(self.config, method, base, str(self.layout.checkpoint("sft")))
        job = SFTJob.of_run(
            self.config,
            model=start,
            data=out / "train.jsonl",
            settings=settings,
            out=checkpoint,
            description=f"train {self.method} + {self.oracle}",
        )
        train(job, self.config.cluster.train_processes)
        return checkpoint

    def _evaluate(self, generator: TurnGenerator, split: str, tasks: list[Task], directory: Path) -> Summary:
        """Rollouts from the start of ``tasks`` as the run evaluates (``rollout.evaluate``, the run's seed)."""
        rollout = self.config.rollout
        origin = f"ceiling:{directory.name}"
        evaluation = evaluate(
            generator, self.suite, split, rollout, rollout.evaluate, origin=origin, seed=self.config.seed, tasks=tasks
        )
        save_evaluation(evaluation, directory, {"split": split, "tasks": len(tasks)})
        return evaluation.summary
