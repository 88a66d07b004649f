"""Where everything of a run lives in its directory: the one place that spells those paths (docs/runs.md,
"The run directory"). The run writes there; results, report, verify and compare read there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
ROLLOUTS = "rollouts.jsonl"  # an iteration's exploration, appended in whole chunks
ROLLOUTS_DONE = "rollouts.done.json"  # written once the exploration is complete
TRAINING_SET = "train.jsonl"
BUILD = "build.json"  # written after train.jsonl: the training set's composition
PAIRS = "pairs.jsonl"  # an ETO iteration's preference pairs
PAIRS_DONE = "pairs.json"  # written after pairs.jsonl: what became of every rollout
EVALUATION = "results.json"  # in eval-<split>/, next to its trajectories
EVALUATION_TRAJECTORIES = "trajectories.jsonl"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
RESULTS_TABLE = "results.md"
REPORT = "report.html"
PLOTS = "report"  # the report's PNG files


@dataclass(frozen=True)
class RunLayout:
    """The paths of the run in ``dir``. A stage's ``key`` is ``sft`` or ``METHOD/iter-I``."""

    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / CONFIG

    @property
    def experts(self) -> Path:
        return self.dir / "experts"

    def expert_data(self, expert: str, split: str) -> Path:
        return self.experts / f"{expert}-{split}.jsonl"

    def expert_summary(self, expert: str, split: str) -> Path:
        """Written after the expert's data: the collection's done marker."""
        return self.expert_data(expert, split).with_suffix(".summary.json")

    @property
    def base(self) -> Path:
        return self.dir / "base"

    def base_model(self, model: str) -> str:
        """pi_0, the model every SFT of the run starts from: the run's own folder for ``tiny`` (built once
        from the environment's text), else the model spec itself."""
        return str(self.base) if model == "tiny" else model

    @staticmethod
    def iteration_key(method: str, iteration: int) -> str:
        return f"{method}/iter-{iteration}"

    def stage(self, key: str) -> Path:
        return self.dir / key

    def iteration(self, method: str, iteration: int) -> Path:
        return self.stage(self.iteration_key(method, iteration))

    def checkpoint(self, key: str) -> Path:
        return self.stage(key) / "checkpoint"

    def evaluation(self, key: str, split: str) -> Path:
        return self.stage(key) / f"eval-{split}"

    def evaluation_results(self, key: str, split: str) -> Path:
        return self.evaluation(key, split) / EVALUATION

    def rollouts(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / ROLLOUTS

    def rollouts_done(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / ROLLOUTS_DONE

    def training_set(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / TRAINING_SET

    def build(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / BUILD

    def pairs(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / PAIRS

    def pairs_done(self, method: str, iteration: int) -> Path:
        return self.iteration(method, iteration) / PAIRS_DONE

    @property
    def metrics(self) -> Path:
        return self.dir / METRICS

    @property
    def results(self) -> Path:
        return self.dir / RESULTS

    @property
    def results_table(self) -> Path:
        return self.dir / RESULTS_TABLE

    @property
    def report(self) -> Path:
        return self.dir / REPORT

    @property
    def plots(self) -> Path:
        return self.dir / PLOTS
