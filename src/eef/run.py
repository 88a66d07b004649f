"""A run: expert data -> behaviour cloning -> RFT / EEF / ETO iterations -> evaluation, in one directory.

Every stage writes its output all at once (or, for rollouts, in whole chunks) and is skipped when
its output exists, so a run killed at any moment continues with ``eef run --resume DIR`` without
losing or duplicating anything. Where each stage writes: :class:`eef.layout.RunLayout` (docs/runs.md,
"The run directory"). :meth:`Run.execute` is the paper's pipeline, one method per stage.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eef import console
from eef.cluster import RolloutPool, check_cluster
from eef.config import MethodConfig, RunConfig, SamplingConfig, SFTSettings, load_config
from eef.envs.base import Suite
from eef.envs.registry import get_suite
from eef.errors import UserError
from eef.evaluate import Evaluation, evaluate, evaluation_of, save_evaluation
from eef.experts.collect import collect_to_file, raise_if_incomplete
from eef.layout import RunLayout
from eef.methods.eto import build_pairs, read_pairs, write_pairs
from eef.methods.exploration import (
    ALL_LEVELS,
    build_training_set,
    exploration_starts,
    iteration_start,
    rates,
    rollout_seed,
    success_by_start,
)
from eef.methods.solutions import PositiveRepository
from eef.metrics import MetricsLog
from eef.policy.engine import TurnGenerator
from eef.policy.generators import load_generator
from eef.policy.models import load_policy, save_policy
from eef.policy.tiny import environment_text
from eef.policy.vllm_generator import check_vllm_available
from eef.rollout import RolloutEngine, episodes_in_flight
from eef.storage import append_jsonl, atomic_write_text, read_jsonl, whole_chunks, write_json, write_jsonl
from eef.training.jobs import DPOJob, SFTJob, train
from eef.types import EpisodeStart, PreferencePair, Task, Trajectory
from eef.verify import refuse_if_broken


@dataclass
class Split:
    train: list[Task]
    explore: list[Task]  # the training tasks RFT and EEF explore
    dev: list[Task]
    test: list[Task]


class Run:
    def __init__(self, directory: Path, config: RunConfig):
        self.dir = Path(directory)
        self.layout = RunLayout(self.dir)
        self.config = config
        self.suite: Suite = get_suite(config.env.name, **config.env.options)
        env = config.env
        train = self.suite.tasks("train")[: env.train_tasks]
        self.tasks = Split(
            train=train,
            explore=train[: env.explore_tasks],
            dev=self.suite.tasks("dev")[: env.dev_tasks],
            test=self.suite.tasks("test")[: env.test_tasks],
        )
        self.metrics = MetricsLog(self.layout.metrics)
        if config.rollout.engine == "vllm":  # fail now, not after the expert data and SFT
            check_vllm_available()
        if config.cluster.workers:  # fail now, not after the expert data and SFT
            check_cluster(config.cluster)
        self._pool: RolloutPool | None = None  # the Ray workers, started when the run begins

    # ---- creating and resuming -------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, config: RunConfig) -> Run:
        """A new run in ``directory``, its config.yaml written (to run it, see :meth:`prepare`)."""
        directory = Path(directory)
        if RunLayout(directory).config.exists():
            raise UserError(f"{directory} already holds a run: continue it with `eef run --resume {directory}`")
        run = cls(directory, config)
        run._write_config()
        return run

    def prepare(self) -> None:
        """Make the directory ready for :meth:`execute`; call it holding the directory's lock
        (:func:`eef.lock.run_lock`), which :meth:`execute` needs too. A new directory gets config.yaml; a
        run already there must have this config, and what it keeps must pass `eef verify`'s checks
        (a chunk a kill tore is not a failure: :meth:`execute` reruns it)."""
        path = self.layout.config
        if not path.is_file():
            self._write_config()
            return
        if load_config(path, []) != self.config:
            raise UserError(f"{self.dir} holds a run with another config: use --out for a new run directory")
        refuse_if_broken(self.dir, self.config)

    def _write_config(self) -> None:
        atomic_write_text(self.layout.config, yaml.safe_dump(self.config.model_dump(), sort_keys=False))

    # ---- the whole run ---------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        try:
            return self._execute()
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _execute(self) -> dict[str, Any]:
        if self.config.cluster.workers:  # a cluster the run cannot use stops it before the expert data and SFT
            self._workers()
        experts = {name: self._expert_data(name) for name in self.config.experts}
        primary = experts[self.config.experts[0]]
        expert_successes = [t for t in primary if t.success]
        base = self._base_model(experts)
        primary_file = self.layout.expert_data(self.config.experts[0], "train")
        sft_checkpoint = self._sft("sft", base, primary_file, self.config.sft, successes_only=True)
        self._evaluate_checkpoint("sft", sft_checkpoint)
        for method in self.config.methods:
            if method.kind == "eto":
                self._iterate_eto(method, sft_checkpoint, expert_successes)
            elif method.kind != "sft":
                failures = [
                    t for name in (method.experts or self.config.experts[:1]) for t in experts[name] if not t.success
                ]
                self._iterate(method, base, sft_checkpoint, expert_successes, failures)
        from eef.report import write_report
        from eef.results import write_results

        results = write_results(self.dir, self.config)
        console.messages.print(f"report: {write_report(self.dir)}", markup=False)
        return results

    # ---- stages ----------------------------------------------------------------------------

    def _expert_data(self, name: str) -> list[Trajectory]:
        """The expert's trajectories on the training tasks; its run on the test tasks is the table's expert row."""
        env = self.config.env
        for split, limit in (("train", env.train_tasks), ("test", env.test_tasks)):
            out = self.layout.expert_data(name, split)
            if not self.layout.expert_summary(name, split).is_file():  # written last: the stage's done marker
                report = collect_to_file(
                    env_name=env.name,
                    expert_spec=name,
                    split=split,
                    out=out,
                    seed=self.config.seed,
                    limit=limit,
                    llm=self.config.llm_experts.get(name),
                    suite=self.suite,  # with the config's env.options
                )
                raise_if_incomplete(report)
                self.metrics.log(
                    f"expert/{name}/{split}",
                    stage="expert",
                    expert=name,
                    split=split,
                    episodes=report["summary"]["overall"]["episodes"],
                    wall_time_s=report["wall_time_s"],
                    prompt_tokens=report["tokens"]["prompt"],
                    generated_tokens=report["tokens"]["generated"],
                    cost_usd=report["tokens"].get("cost_usd"),  # None: a scripted expert, or no prices given
                )
        return read_jsonl(self.layout.expert_data(name, "train"), Trajectory)

    def _base_model(self, experts: dict[str, list[Trajectory]]) -> str:
        """pi_0: a model spec or folder every SFT starts from. The tiny model is built once, here,
        with a tokenizer trained on the environment's text, so every method shares it."""
        folder = self.layout.base
        if self.config.model.name == "tiny" and not (folder / "config.json").is_file():
            texts = environment_text(self.suite.instruction, [t for ts in experts.values() for t in ts])
            policy = load_policy(
                "tiny",
                tokenizer_texts=texts,
                tokenizer_terms=self.suite.atomic_terms(),
                seed=self.config.seed,
                device="cpu",
            )
            save_policy(policy, folder)
        return self.layout.base_model(self.config.model.name)

    def _sft(self, key: str, start_from: str, data: Path, settings: SFTSettings, successes_only: bool = False) -> Path:
        """The checkpoint of SFT from ``start_from`` on the trajectories in ``data`` (its successes only with
        ``successes_only``), trained in ``cluster.train_processes`` processes."""
        checkpoint = self.layout.checkpoint(key)
        if not (checkpoint / "config.json").is_file():
            job = SFTJob.of_run(
                self.config,
                model=start_from,
                data=data,
                settings=settings,
                out=checkpoint,
                description=f"train {key}",
                successes_only=successes_only,
            )
            result = train(job, self.config.cluster.train_processes)
            self.metrics.log(
                f"{key}/train",
                stage="train",
                examples=result.examples,
                steps=result.steps,
                final_loss=result.final_loss,
                loss_tokens=result.loss_tokens,
                total_tokens=result.total_tokens,
                wall_time_s=result.wall_seconds,
            )
        return checkpoint

    def _generator(self, checkpoint: Path) -> TurnGenerator:
        return load_generator(checkpoint, self.config.model.dtype, self.config.rollout)

    def _workers(self) -> RolloutPool:
        if self._pool is None:
            self._pool = RolloutPool(
                self.config.cluster, self.config.env, self.config.rollout, self.config.model.dtype, self.dir
            )
        return self._pool

    def _evaluate_checkpoint(self, key: str, checkpoint: Path) -> None:
        generator = None
        for split, tasks in (("dev", self.tasks.dev), ("test", self.tasks.test)):
            directory = self.layout.evaluation(key, split)
            if self.layout.evaluation_results(key, split).is_file():
                continue
            if self.config.cluster.workers:
                evaluation = self._evaluate_on_workers(key, checkpoint, split, tasks)
            else:
                generator = generator or self._generator(checkpoint)
                evaluation = evaluate(
                    generator,
                    self.suite,
                    split,
                    self.config.rollout,
                    self.config.rollout.evaluate,
                    origin=f"policy:{key}",
                    seed=self.config.seed,
                    limit=len(tasks),
                )
            save_evaluation(evaluation, directory, {"checkpoint": str(checkpoint), "split": split})
            self.metrics.log(
                f"{key}/eval-{split}",
                stage="eval",
                split=split,
                win_rate=evaluation.summary.overall.win_rate,
                mean_reward=evaluation.summary.overall.mean_reward,
                generated_tokens=evaluation.generated_tokens,
                wall_time_s=evaluation.wall_time_s,
            )

    def _evaluate_on_workers(self, key: str, checkpoint: Path, split: str, tasks: list[Task]) -> Evaluation:
        """:func:`eef.evaluate.evaluate` on the Ray workers: the tasks in the batches the run's own process
        would roll out together, each with the run's seed (an episode's sampling depends only on the seed and
        its start), so the trajectories are the same."""
        size = episodes_in_flight(self.suite, self.config.rollout)
        starts = [EpisodeStart(task) for task in tasks]
        chunks = {index: starts[begin : begin + size] for index, begin in enumerate(range(0, len(starts), size))}
        origin = f"policy:{key}"
        started = time.perf_counter()
        done: dict[int, list[Trajectory]] = {}
        with console.progress_bar(f"eval {origin} on {self.suite.name}/{split}", len(starts)) as advance:
            status = console.EpisodeStatus()
            seeds = dict.fromkeys(chunks, self.config.seed)
            for index, produced in self._workers().roll_out(
                checkpoint, self.config.rollout.evaluate, origin, chunks, seeds
            ):
                done[index] = produced
                for trajectory in produced:
                    advance(status.add(trajectory))
        trajectories = [trajectory for index in sorted(done) for trajectory in done[index]]
        return evaluation_of(trajectories, self.suite, time.perf_counter() - started)

    def _iterate(
        self,
        method: MethodConfig,
        base: str,
        sft_checkpoint: Path,
        expert_successes: list[Trajectory],
        failures: list[Trajectory],
    ) -> None:
        """The paper's loop for one method: explore, add the successes to the positive repository, build
        the training set, train, evaluate (docs/runs.md, "The algorithm as built", steps 2-8)."""
        repository = PositiveRepository()
        checkpoint = sft_checkpoint
        for iteration in range(1, self.config.iterations + 1):
            rollouts = self._explore(method, iteration, checkpoint, failures)
            repository.add(rollouts)
            training_set = self._training_set(method, iteration, rollouts, expert_successes, failures, repository)
            key = self.layout.iteration_key(method.name, iteration)
            start, settings = iteration_start(self.config, method, base, str(checkpoint))
            checkpoint = self._sft(key, start, training_set, settings)
            self._evaluate_checkpoint(key, checkpoint)

    def _iterate_eto(self, method: MethodConfig, sft_checkpoint: Path, expert_successes: list[Trajectory]) -> None:
        """ETO's loop (docs/runs.md, "ETO"): explore the tasks from their starts with the current model, pair
        each rollout with the expert's success on its task, train the current model with DPO (itself the
        reference), evaluate. An iteration without a pair keeps the model it started from."""
        checkpoint = sft_checkpoint
        for iteration in range(1, self.config.iterations + 1):
            rollouts = self._explore(method, iteration, checkpoint, failures=[])
            pairs = self._pairs(method, iteration, rollouts, expert_successes)
            key = self.layout.iteration_key(method.name, iteration)
            if pairs:
                beta = method.beta if iteration == 1 else method.later_beta
                checkpoint = self._dpo(key, checkpoint, self.layout.pairs(method.name, iteration), beta)
            self._evaluate_checkpoint(key, checkpoint)

    def _pairs(
        self, method: MethodConfig, iteration: int, rollouts: list[Trajectory], expert_successes: list[Trajectory]
    ) -> list[PreferencePair]:
        """The iteration's preference pairs (pairs.jsonl) and what became of every rollout (pairs.json,
        written last: the stage's done marker)."""
        path = self.layout.pairs(method.name, iteration)
        if not self.layout.pairs_done(method.name, iteration).is_file():
            pairing = build_pairs(rollouts, expert_successes)
            write_pairs(path, pairing.pairs)
            by_start = success_by_start(rollouts, [], method.m)
            write_json(
                self.layout.pairs_done(method.name, iteration),
                {
                    **pairing.counts(),
                    "success_by_start": rates(by_start[ALL_LEVELS]) if by_start else {},
                    "success_by_start_and_level": by_start,
                },
            )
        return read_pairs(path)

    def _dpo(self, key: str, start_from: Path, pairs: Path, beta: float) -> Path:
        """The checkpoint of DPO from ``start_from`` on the preference pairs in ``pairs``, trained in
        ``cluster.train_processes`` processes."""
        checkpoint = self.layout.checkpoint(key)
        if not (checkpoint / "config.json").is_file():
            job = DPOJob.of_run(
                self.config, model=str(start_from), pairs=pairs, beta=beta, out=checkpoint, description=f"train {key}"
            )
            result = train(job, self.config.cluster.train_processes)
            self.metrics.log(
                f"{key}/train",
                stage="train",
                pairs=result.pairs,
                steps=result.steps,
                final_loss=result.final_loss,
                margin_before=result.margin_before,
                margin_after=result.margin_after,
                reward_accuracy=result.reward_accuracy,
                scored_tokens=result.scored_tokens,
                wall_time_s=result.wall_seconds,
            )
        return checkpoint

    def _training_set(
        self,
        method: MethodConfig,
        iteration: int,
        rollouts: list[Trajectory],
        expert_successes: list[Trajectory],
        failures: list[Trajectory],
        repository: PositiveRepository,
    ) -> Path:
        """D_i's file (train.jsonl) and what it is made of (build.json, written last: the stage's done marker)."""
        path = self.layout.training_set(method.name, iteration)
        if not self.layout.build(method.name, iteration).is_file():
            training = build_training_set(
                method,
                self.tasks.explore,
                expert_successes,
                failures,
                repository,
                seed=rollout_seed(self.config.seed, method.name, iteration, -1),
            )
            write_jsonl(path, training.trajectories)
            by_start = success_by_start(rollouts, failures, method.m)
            level_of = {t.task_id: t.difficulty or "-" for t in self.tasks.train}
            write_json(
                self.layout.build(method.name, iteration),
                {
                    "composition": training.composition,
                    "important_states": training.important_states,
                    "solved_tasks": len(training.solved_tasks),
                    "solved_by_difficulty": _count_levels(training.solved_tasks, level_of),
                    "newly_solved_by_difficulty": _count_levels(training.newly_solved_tasks, level_of),
                    "repository_size": len(repository),
                    "solutions_by_level": training.solutions_by_level,
                    "success_by_start": rates(by_start[ALL_LEVELS]) if by_start else {},
                    "success_by_start_and_level": by_start,
                },
            )
        return path

    def _explore(
        self, method: MethodConfig, iteration: int, checkpoint: Path, failures: list[Trajectory]
    ) -> list[Trajectory]:
        """This iteration's rollouts, run in fixed chunks appended whole to ``rollouts.jsonl``
        (:func:`eef.storage.whole_chunks`: on resume, complete chunks are kept, a torn one is rerun with
        the same seed); ``rollouts.done.json`` marks the exploration done."""
        path, done_marker = (
            self.layout.rollouts(method.name, iteration),
            self.layout.rollouts_done(method.name, iteration),
        )
        starts = exploration_starts(method, self.tasks.explore, failures)
        size = self.config.rollout.batch_size
        chunks = [starts[i : i + size] for i in range(0, len(starts), size)]
        if done_marker.is_file():
            return read_jsonl(path, Trajectory)
        rollouts, complete = whole_chunks(path, Trajectory, [len(chunk) for chunk in chunks], _chunk_of)
        remaining = [c for c in range(len(chunks)) if c not in complete]
        started = time.perf_counter()
        if remaining:
            rollouts += self._roll_out_chunks(method, iteration, checkpoint, chunks, remaining, path)
        rollouts.sort(key=_chunk_of)  # stable: starts' order within a chunk
        write_json(done_marker, {"rollouts": len(rollouts)})
        self.metrics.log(
            f"{method.name}/iter-{iteration}/explore",
            stage="explore",
            method=method.name,
            iteration=iteration,
            rollouts=len(rollouts),
            successes=sum(t.success for t in rollouts),
            generated_tokens=sum(t.generated_tokens for t in rollouts),
            prompt_tokens=sum(t.prompt_tokens for t in rollouts),
            # Replaying an expert prefix costs environment steps too.
            env_steps=sum(t.num_actions for t in rollouts),
            wall_time_s=time.perf_counter() - started,
        )
        return rollouts

    def _roll_out_chunks(
        self,
        method: MethodConfig,
        iteration: int,
        checkpoint: Path,
        chunks: list[list[EpisodeStart]],
        remaining: list[int],
        path: Path,
    ) -> list[Trajectory]:
        """The ``remaining`` chunks' rollouts, each appended to ``path`` whole, in chunk order: in this process
        one chunk after another, or on the Ray workers (``cluster.workers``) several at once."""
        sampling, origin = self._exploration_sampling(method), f"policy:{method.name}/iter-{iteration - 1}"
        seeds = {index: rollout_seed(self.config.seed, method.name, iteration, index) for index in remaining}
        produced_all: list[Trajectory] = []
        total = sum(len(chunks[c]) for c in remaining)
        with console.progress_bar(f"explore {method.name} iter {iteration}", total) as advance:
            status = console.EpisodeStatus()
            if self.config.cluster.workers:
                rolled_out = self._workers().roll_out(
                    checkpoint, sampling, origin, {index: chunks[index] for index in remaining}, seeds
                )
            else:
                engine = RolloutEngine(self.suite, self._generator(checkpoint), self.config.rollout, sampling, origin)
                rolled_out = (
                    (index, engine.run(chunks[index], seed=seeds[index], on_done=lambda t: advance(status.add(t))))
                    for index in remaining
                )
            # Appended in chunk order, so that the file holds its first chunks whole (`eef verify` checks it):
            # a chunk a worker finishes early waits here for those before it.
            ready: dict[int, list[Trajectory]] = {}
            appended = 0  # of the remaining chunks
            for index, produced in rolled_out:
                if self.config.cluster.workers:  # a worker's chunk arrives whole
                    for trajectory in produced:
                        advance(status.add(trajectory))
                ready[index] = [t.model_copy(update={"meta": {**t.meta, "chunk": index}}) for t in produced]
                while appended < len(remaining) and remaining[appended] in ready:
                    chunk = ready.pop(remaining[appended])
                    append_jsonl(path, chunk)
                    produced_all.extend(chunk)
                    appended += 1
        return produced_all

    def _exploration_sampling(self, method: MethodConfig) -> SamplingConfig:
        explore = self.config.rollout.explore
        if method.temperature is None:
            return explore
        return explore.model_copy(update={"temperature": method.temperature})


def _count_levels(task_ids: list[str], level_of: dict[str, str]) -> dict[str, int]:
    return dict(Counter(level_of.get(task_id, "-") for task_id in task_ids))


def _chunk_of(trajectory: Trajectory) -> int:
    return trajectory.meta["chunk"]
