"""A training (SFT or DPO) given by files: the model to start from, the data, the settings and the checkpoint
to write. It runs in this process, or in processes that torchrun starts on this machine (data parallel:
``eef train --processes N``, a run's ``cluster.train_processes``; docs/scale-out.md), each of which reads the
job from a file (``python -m eef.training JOB RESULT``); the first writes the result."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from eef.config import DPOSettings, RunConfig, SFTSettings
from eef.errors import IncompleteError, UserError
from eef.storage import read_json, read_jsonl, read_trajectories, write_json
from eef.training.processes import PARENT_VARIABLE, is_first_process
from eef.types import PreferencePair, Trajectory

if TYPE_CHECKING:  # torch loads with these: only when a job runs, so that a bad job fails in a fraction of a second
    from eef.training.dpo import DPOResult
    from eef.training.sft import SFTResult


class SFTJob(BaseModel):
    """SFT of ``model`` (a spec or folder that :func:`~eef.policy.models.load_policy` takes) on the
    trajectories in ``data`` (its successes only with ``successes_only``) into the checkpoint ``out``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sft"] = "sft"
    model: str
    data: Path
    successes_only: bool = False
    settings: SFTSettings
    out: Path
    description: str = "train"
    dtype: str = "auto"  # as ModelConfig.dtype: auto trains float32 weights (bf16 autocast where supported)
    seed: int = 0  # the tiny model's initialisation
    env: str | None = None  # whose text builds the tiny model's tokenizer (model "tiny" only)
    env_options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of_run(
        cls,
        config: RunConfig,
        *,
        model: str,
        data: Path,
        settings: SFTSettings,
        out: Path,
        description: str,
        successes_only: bool = False,
    ) -> SFTJob:
        """An SFT stage of the run ``config`` describes: the run's seed seeds the training and the tiny model's
        initialisation, the run's dtype loads the weights."""
        return cls(
            model=model,
            data=data,
            successes_only=successes_only,
            settings=settings.model_copy(update={"seed": config.seed}),
            out=out,
            description=description,
            dtype=config.model.dtype,
            seed=config.seed,
        )

    def trajectories(self) -> list[Trajectory]:
        """The trajectories to train on; none is a UserError."""
        trajectories = read_trajectories(self.data)
        if self.successes_only:
            trajectories = [t for t in trajectories if t.success]
        if not trajectories:
            which = " (no successes)" if self.successes_only else ""
            raise UserError(f"{self.data}: no trajectories to train on{which}")
        return trajectories


class DPOJob(BaseModel):
    """DPO of ``model`` (a folder; itself the reference) on the preference pairs in ``pairs`` into ``out``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["dpo"] = "dpo"
    model: str
    pairs: Path
    settings: DPOSettings
    beta: float
    out: Path
    description: str = "train dpo"
    dtype: str = "auto"

    @classmethod
    def of_run(cls, config: RunConfig, *, model: str, pairs: Path, beta: float, out: Path, description: str) -> DPOJob:
        """A DPO stage of the run ``config`` describes, with the run's DPO settings: the run's seed seeds the
        training, the run's dtype loads the weights (as :meth:`SFTJob.of_run`)."""
        return cls(
            model=model,
            pairs=pairs,
            settings=config.dpo.model_copy(update={"seed": config.seed}),
            beta=beta,
            out=out,
            description=description,
            dtype=config.model.dtype,
        )


Job = Annotated[SFTJob | DPOJob, Field(discriminator="kind")]


def train(job: SFTJob | DPOJob, processes: int = 1) -> SFTResult | DPOResult:
    """Run ``job`` in this process (with ``processes`` 1), or in ``processes`` processes that torchrun starts
    here, each training on its share of every batch (the effective batch is the job's own)."""
    if processes == 1:
        return run_here(job)
    with tempfile.TemporaryDirectory(prefix="eef-training-") as folder:
        job_file, result_file = Path(folder) / "job.json", Path(folder) / "result.json"
        write_json(job_file, job.model_dump(mode="json"))
        # torchrun, which ends with this process (killed, it must not leave a training writing behind it).
        command = [sys.executable, "-m", "eef.training.launcher", "--standalone", f"--nproc_per_node={processes}"]
        # Their stdout joins stderr: this process's stdout is for its own results (eef train --json).
        launched = subprocess.run(
            [*command, "-m", "eef.training", str(job_file), str(result_file)],
            stdout=2,
            env={**os.environ, PARENT_VARIABLE: str(os.getpid()), **_threads_each(processes)},
        )
        exit_code = launched.returncode
        outcome = read_json(result_file) if result_file.is_file() else {}
    if "user_error" in outcome:
        raise UserError(outcome["user_error"])
    if exit_code != 0 or not outcome:
        raise IncompleteError(
            f"{job.description} in {processes} processes (torchrun) failed with exit code {exit_code}: "
            "the processes' error is above"
        )
    from eef.training.dpo import DPOResult
    from eef.training.sft import SFTResult

    result_type = SFTResult if job.kind == "sft" else DPOResult
    return result_type.model_validate(outcome)


def _threads_each(processes: int) -> dict[str, str]:
    """OMP_NUM_THREADS for each of ``processes`` processes where it is not set: this machine's CPUs shared
    between them (torchrun would give each one thread, with a warning on stderr)."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, len(os.sched_getaffinity(0)) // processes))}


def run_here(job: SFTJob | DPOJob) -> SFTResult | DPOResult:
    """Run ``job`` in this process: alone, or as one of the processes a launcher started (DDP)."""
    from eef.policy.models import load_policy, training_dtype
    from eef.training.dpo import train_dpo
    from eef.training.sft import train_sft

    if isinstance(job, DPOJob):
        pairs = read_jsonl(job.pairs, PreferencePair)
        policy = load_policy(job.model, dtype=training_dtype(job.dtype))
        return train_dpo(policy, pairs, job.settings, job.beta, job.out, description=job.description)
    trajectories = job.trajectories()
    texts, terms = None, []
    if job.env is not None:
        from eef.envs.registry import get_suite
        from eef.policy.tiny import environment_text

        suite = get_suite(job.env, **job.env_options)
        texts = environment_text(suite.instruction, trajectories) if job.model == "tiny" else None
        terms = suite.atomic_terms()
    policy = load_policy(
        job.model, tokenizer_texts=texts, tokenizer_terms=terms, dtype=training_dtype(job.dtype), seed=job.seed
    )
    return train_sft(policy, trajectories, job.settings, job.out, description=job.description)


def main(job_file: Path, result_file: Path) -> int:
    """One of the processes of :func:`train`: run the job; the first process writes its result, or the
    user error that stopped it, to ``result_file``. Returns the exit code (2: a user error)."""
    first = is_first_process()
    job: SFTJob | DPOJob = TypeAdapter(Job).validate_python(read_json(job_file))
    try:
        result = run_here(job)
    except UserError as err:  # every process meets it: it comes from the job's files and settings
        if first:
            write_json(result_file, {"user_error": str(err)})
        return 2
    if first:
        write_json(result_file, result.model_dump(mode="json"))
    return 0
