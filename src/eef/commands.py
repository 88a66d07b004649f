"""What every `eef` command does. Each function takes the command's options as typed keyword arguments
(paths, names, numbers, a dict of environment options) and returns a plain report, a dict or a pydantic
model, that :mod:`eef.cli` prints as a table or as JSON: the parser only parses. From Python, e.g.
``stats(Path("data/expert-shop-scripted-train.jsonl")).overall.win_rate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from eef.errors import UserError, first_problem, on_write_failure
from eef.storage import prepare_output, read_jsonl, read_trajectories
from eef.summary import Summary, summarize

if TYPE_CHECKING:
    from eef.config import RolloutConfig, SamplingConfig

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def _from_flags(settings: type[SettingsModel], **values: Any) -> SettingsModel:
    """``settings`` from command-line values named as its fields; a value out of bounds is a UserError
    that names its flag (``batch_size`` -> ``--batch-size``)."""
    try:
        return settings(**values)
    except ValidationError as err:
        field, problem = first_problem(err)
        raise UserError(f"--{field.replace('_', '-')}: {problem}") from None


def _rollout_flags(temperature: float, max_new_tokens: int, batch_size: int) -> tuple[RolloutConfig, SamplingConfig]:
    """The rollout settings of a command that rolls a checkpoint out by itself (eval, probe): a run's defaults
    with the flags' batch size and sampling; steps never overlap generation there."""
    from eef.config import RolloutConfig, SamplingConfig

    sampling = _from_flags(SamplingConfig, temperature=temperature, max_new_tokens=max_new_tokens)
    return _from_flags(RolloutConfig, batch_size=batch_size, overlap_steps=False), sampling


def environments() -> list[dict[str, Any]]:
    """Every registered environment: its name, whether it is usable here and why not, its description."""
    from eef.envs.registry import entries

    return [
        {
            "name": e.name,
            "usable": (reason := e.unavailable_reason()) is None,
            "why_not": reason or "",
            "description": e.description,
        }
        for e in entries()
    ]


def _llm_flag(setting: str) -> str:
    """The `eef collect` flag of an :class:`eef.config.LLMExpertSettings` field (``max_tokens`` ->
    ``--max-tokens``); two flags drop the field's unit: ``--backoff`` and ``--timeout``."""
    return {"backoff_s": "--backoff", "timeout_s": "--timeout"}.get(setting, f"--{setting.replace('_', '-')}")


def collect(
    *,
    env: str,
    expert: str,
    split: str,
    seed: int,
    limit: int | None,
    out: Path | None,
    env_options: dict[str, Any],
    llm_options: dict[str, Any],
) -> dict[str, Any]:
    """Run ``expert`` (a registered expert of ``env``, or a chat model ``openai:MODEL[@TAG]``) on ``split``
    of ``env`` and write its trajectories to ``out`` (default ``data/expert-ENV-EXPERT-SPLIT.jsonl``);
    returns the collection's summary. ``llm_options``: chat-model settings given as flags
    (:class:`eef.config.LLMExpertSettings` fields, e.g. ``{"base_url": URL}``), which only a chat-model
    expert takes. Episodes that could not be played are listed in the summary's ``failed``, for
    :func:`eef.experts.collect.raise_if_incomplete`."""
    from eef.envs.registry import get_suite
    from eef.experts.collect import collect_to_file, expert_file_stem

    name, llm = expert, None
    if expert.startswith("openai:"):
        from eef.experts.llm import settings_from_spec

        name, llm = settings_from_spec(expert, **llm_options)
    elif llm_options:
        given = _llm_flag(next(iter(llm_options)))
        raise UserError(f"{given} applies to chat-model experts only: use it with --expert openai:MODEL")
    out = out or Path("data") / f"expert-{env}-{expert_file_stem(name)}-{split}.jsonl"
    with on_write_failure("run the same command again (the episodes collected so far are kept)"):
        return collect_to_file(
            env_name=env,
            expert_spec=name,
            split=split,
            out=out,
            seed=seed,
            limit=limit,
            llm=llm,
            suite=get_suite(env, **env_options),
        )


def stats(file: Path) -> Summary:
    """Win rate, reward and actions of the trajectories in ``file``, by difficulty."""
    return summarize(read_trajectories(file))


def train(
    *,
    data: Path,
    model: str,
    out: Path,
    env: str,
    env_options: dict[str, Any],
    successes_only: bool,
    epochs: float,
    learning_rate: float | None,
    batch_size: int,
    gradient_accumulation: int,
    max_length: int,
    lora: bool,
    dtype: str,
    seed: int,
    processes: int,
) -> dict[str, Any]:
    """SFT of ``model`` (tiny, smollm2-135m, a Hugging Face folder or id) on the trajectories in ``data``,
    loss on the agent turns, into the checkpoint folder ``out``; ``env``'s text builds the tiny model's
    tokenizer. ``learning_rate`` None: 2e-3 for tiny, 2e-5 otherwise. ``processes`` > 1: in that many
    processes that torchrun starts here, each with its share of every batch of ``batch_size`` (this
    process may also be one of those a launcher started). Returns the training's figures."""
    from eef.config import LoraSettings, SFTSettings
    from eef.training.processes import check_batch_split, process_count

    if processes < 1:
        raise UserError(f"--processes must be positive, got {processes}")
    if processes > 1 and process_count() > 1:
        raise UserError(f"--processes {processes}: this eef train is already one of {process_count()} processes")
    check_batch_split(batch_size, max(processes, process_count()), "--batch-size")

    from eef.envs.registry import get_suite
    from eef.training import jobs  # the job records: torch loads only once jobs.train runs

    settings = _from_flags(
        SFTSettings,
        epochs=epochs,
        learning_rate=learning_rate or (2e-3 if model == "tiny" else 2e-5),
        batch_size=batch_size,
        gradient_accumulation=gradient_accumulation,
        max_length=max_length,
        seed=seed,
        lora=LoraSettings() if lora else None,
    )
    job = jobs.SFTJob(
        model=model,
        data=data,
        successes_only=successes_only,
        settings=settings,
        out=out,
        dtype=dtype,
        seed=seed,
        env=env,
        env_options=env_options,
    )
    job.trajectories()  # a bad data file fails here, before the model or any process starts
    prepare_output(out, "--out", folder=True)  # before the training, not after it
    get_suite(env, **env_options)  # as does an unknown environment or option
    result = jobs.train(job, processes)
    return {
        "checkpoint": str(out),
        "data": str(data),
        "examples": result.examples,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "losses": result.losses,
        "loss_tokens": result.loss_tokens,
        "tokens_per_s": round(result.tokens_per_second, 1),
        "wall_time_s": round(result.wall_seconds, 1),
        "seed": seed,
        "processes": max(processes, process_count()),
    }


def evaluate_checkpoint(
    *,
    model: str,
    env: str,
    env_options: dict[str, Any],
    split: str,
    limit: int | None,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    out: Path | None,
) -> dict[str, Any]:
    """Rollouts of ``model`` (a checkpoint folder, or tiny / smollm2-135m untrained for a baseline) from the
    start of every task of ``split`` (its first ``limit``); trajectories.jsonl and results.json go to ``out``
    (default: ``eval-ENV-SPLIT`` in the checkpoint folder). Returns results.json's content."""
    from eef.envs.registry import get_suite

    if limit is not None and limit <= 0:
        raise UserError(f"--limit must be positive, got {limit}")
    rollout, sampling = _rollout_flags(temperature, max_new_tokens, batch_size)
    default_out = Path(model) / f"eval-{env}-{split}" if Path(model).is_dir() else None
    out = out or default_out or Path("runs") / f"eval-{model}-{env}-{split}"
    suite = get_suite(env, **env_options)
    suite.tasks(split)  # an unknown split fails here, before a model is loaded
    prepare_output(out, "--out", folder=True)
    # Torch loads with these (seconds): the checks above answer bad input before it.
    from eef.evaluate import evaluate, save_evaluation
    from eef.policy.generators import make_generator
    from eef.policy.models import load_policy

    texts = [suite.instruction] if model == "tiny" else None
    policy = load_policy(model, tokenizer_texts=texts, tokenizer_terms=suite.atomic_terms(), seed=seed)
    generator = make_generator(policy.model, policy.tokenizer)
    evaluation = evaluate(generator, suite, split, rollout, sampling, origin=f"policy:{model}", seed=seed, limit=limit)
    context = {
        "model": model,
        "env": env,
        "split": split,
        "seed": seed,
        "temperature": temperature,
        "results": str(out / "results.json"),
    }
    return save_evaluation(evaluation, out, context)


def probe(
    *,
    checkpoint: Path,
    restarts: Path,
    env: str,
    env_options: dict[str, Any],
    levels: list[str] | None,
    limit: int | None,
    m: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    out: Path | None,
) -> dict[str, Any]:
    """The success of ``checkpoint`` from each task's start and from the ``m`` restart points of each
    failed expert trajectory in ``restarts`` (of difficulty ``levels``, None: all; the first ``limit``),
    by start and difficulty; the rollouts go to ``out`` when given."""
    from eef.envs.registry import get_suite
    from eef.methods.exploration import ALL_LEVELS, best_restart
    from eef.storage import write_trajectories

    for flag, value in (("--limit", limit), ("--m", m)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value}")
    rollout, sampling = _rollout_flags(temperature, max_new_tokens, batch_size)
    if out is not None:
        prepare_output(out, "--out")
    suite = get_suite(env, **env_options)
    unknown = sorted(set(levels or []) - set(suite.difficulty_levels()))
    if unknown:
        known = ", ".join(suite.difficulty_levels()) or "none"
        raise UserError(f"--levels: {env} has no level {unknown[0]!r}; its levels: {known}")
    failures = [t for t in read_trajectories(restarts) if not t.success]
    failures = [t for t in failures if levels is None or t.difficulty in levels][:limit]
    if not failures:
        of_levels = f" of levels {','.join(levels)}" if levels else ""
        raise UserError(f"{restarts}: no failed trajectories{of_levels} to restart from")
    if not checkpoint.is_dir():
        raise UserError(f"{checkpoint}: no such checkpoint folder (give one that eef train or eef run wrote)")
    # Torch loads with these (seconds): the checks above answer bad input before it.
    from eef.policy.generators import make_generator
    from eef.policy.models import load_policy
    from eef.probe import check_replays, run_probe

    check_replays(suite, failures)  # before the model loads
    policy = load_policy(str(checkpoint))
    result = run_probe(
        make_generator(policy.model, policy.tokenizer),
        suite,
        failures,
        m=m,
        rollout=rollout,
        sampling=sampling,
        seed=seed,
        origin=f"probe:{checkpoint}",
    )
    if out is not None:
        write_trajectories(out, result.rollouts)
    order = [*suite.difficulty_levels(), *sorted(set(result.by_start) - set(suite.difficulty_levels()) - {ALL_LEVELS})]
    by_start = {level: result.by_start[level] for level in [*order, ALL_LEVELS] if level in result.by_start}
    return {
        "checkpoint": str(checkpoint),
        "restarts": str(restarts),
        "env": env,
        "env_options": env_options,
        "failures": len(failures),
        "episodes": len(result.rollouts),
        "m": m,
        "temperature": sampling.temperature,
        "seed": seed,
        "by_start": by_start,
        "best_restart": {level: best_restart(counts) for level, counts in by_start.items()},
        "wall_time_s": round(result.wall_time_s, 1),
        "out": None if out is None else str(out),
    }


def ceiling(*, directory: Path, method: str, oracle: str, held_out: int | None, out: Path) -> dict[str, Any]:
    """The most that solutions of the expert's failures could add to ``method``'s first training set in the
    finished run in ``directory``: the method's model trained again with ``oracle``'s successes on the
    explored tasks the main expert failed, beside the SFT and method models, on dev and on (the first
    ``held_out``, None: all) later training tasks the main expert failed (:mod:`eef.ceiling`)."""
    from dataclasses import replace

    from eef.config import load_run_config
    from eef.envs.registry import get_suite
    from eef.experts.registry import make_expert
    from eef.layout import RunLayout
    from eef.types import Trajectory

    if held_out is not None and held_out <= 0:
        raise UserError(f"--held-out must be positive, got {held_out}")
    config = load_run_config(directory)
    if out.resolve().is_relative_to(directory.resolve()):
        raise UserError(f"--out {out}: that is inside the run directory; give a folder outside it")
    layout = RunLayout(directory)
    explorers = [m.name for m in config.methods if m.kind in ("rft", "eef")]
    if method not in explorers:
        raise UserError(
            f"--method {method!r}: {directory} has no RFT or EEF method of that name "
            f"(it has: {', '.join(explorers) or 'none'})"
        )
    key = layout.iteration_key(method, 1)
    needed = [layout.build(method, 1), layout.checkpoint(key) / "config.json"]
    needed += [layout.evaluation_results(k, "dev") for k in ("sft", key)]
    if not all(path.is_file() for path in needed):
        raise UserError(
            f"{directory} has not finished {method}'s first iteration: continue it with `eef run --resume {directory}`"
        )
    make_expert(config.env.name, oracle)  # an unknown expert fails here, before any work
    from eef.ceiling import Ceiling, ceiling_tasks  # torch and transformers: only once the input is good

    suite = get_suite(config.env.name, **config.env.options)
    train = suite.tasks("train")[: config.env.train_tasks]
    expert = read_jsonl(layout.expert_data(config.experts[0], "train"), Trajectory)
    tasks = ceiling_tasks(train, config.env.explore_tasks, expert)
    if not tasks.oracle or not tasks.held_out:
        missing = "explored" if not tasks.oracle else "later (unexplored) training"
        raise UserError(
            f"{directory}: the main expert failed none of the {missing} tasks, so there is nothing to measure"
        )
    tasks = replace(tasks, held_out=tasks.held_out[:held_out])
    prepare_output(out, "--out", folder=True)
    return Ceiling(layout, config, suite, method, oracle).run(tasks, out)


def run(*, config: Path | None, overrides: list[str], out: Path | None, resume: Path | None) -> dict[str, Any]:
    """The whole pipeline in a run directory: a new run of ``config`` (None: the embedded default) with
    ``overrides`` (``key.path=value``) in ``out`` (default ``runs/NAME-seedSEED``), or the run in ``resume``
    continued where it stopped. Returns results.json's content."""
    from eef import console
    from eef.config import default_config_path, load_config, load_run_config
    from eef.lock import run_lock

    if resume is not None:
        if config is not None or overrides:
            raise UserError("--resume continues a run with its own config: give no CONFIG or --set with it")
        directory = resume
        run_config = load_run_config(directory)
    else:
        run_config = load_config(config or default_config_path(), overrides)
        directory = prepare_output(
            out or Path("runs") / f"{run_config.name}-seed{run_config.seed}", "--out", folder=True
        )
    from eef.run import Run  # the model code, once the config holds (a bad one fails in a fraction of a second)

    run_ = Run(directory, run_config)  # checks the environment and the engine before anything is written
    with on_write_failure(f"eef run --resume {run_.dir}"):
        run_.dir.mkdir(parents=True, exist_ok=True)
        # One writer per run directory, for the whole run: a second `eef run` here stops at once.
        with run_lock(run_.dir, "eef run"):
            if resume is None and (run_.dir / "config.yaml").exists():
                console.messages.print(f"continuing the run in {run_.dir}", markup=False)
            run_.prepare()
            return run_.execute()


def report(directory: Path) -> Path:
    """Write report.html and the plots of the finished run in ``directory``; returns the report's path."""
    from eef.compare import load_run_results
    from eef.lock import run_lock
    from eef.report import write_report

    load_run_results(directory)  # a directory that is not a finished run is a user error, before the lock
    # The report is written into the run directory: not while a run writes there (the run writes it at its end).
    with on_write_failure(f"eef report {directory}"), run_lock(directory, "eef report"):
        return write_report(directory)


def compare_runs(*, directories: list[Path], versus: list[str], plot: Path | None) -> dict[str, Any]:
    """The table over the finished runs in ``directories`` (:func:`eef.compare.compare`), its margins over each
    method of ``versus``; with ``plot``, also drawn there as a PNG."""
    from eef.compare import compare

    if plot is not None:
        prepare_output(plot, "--plot")  # before reading the runs
    comparison = compare(directories, versus=versus)
    if plot is not None:
        from eef.report import write_comparison_plot

        write_comparison_plot(comparison, plot)
    return comparison


def verify(directory: Path) -> dict[str, Any]:
    """The invariants of the run directory ``directory`` (finished or not), each with the files it looked at
    and the problems it found; ``ok`` when every one holds."""
    from eef.verify import verify as check_run

    checks = check_run(directory)
    return {
        "run": str(directory),
        "ok": all(check.ok for check in checks),
        "checks": [
            {
                "name": check.name,
                "ok": check.ok,
                "files": check.files,
                "problems": [{"file": str(p.path), "problem": p.what} for p in check.problems],
            }
            for check in checks
        ],
    }


def import_trajectories(*, file: Path, format: str, env: str, out: Path, origin: str | None) -> dict[str, Any]:
    """ETO's or AgentGym's (``format``) trajectory JSON in ``file``, played in ``env``, as our JSONL in
    ``out``; ``origin`` says who acted (None: ``expert:imported-FORMAT``). Returns what was converted."""
    from eef.interchange import import_file

    return import_file(file, format, env, prepare_output(out, "--out"), origin)


def export_trajectories(*, file: Path, format: str, out: Path) -> dict[str, Any]:
    """Our trajectories in ``file`` as ETO's or AgentGym's (``format``) JSON list in ``out``."""
    from eef.interchange import export_file

    return export_file(file, format, prepare_output(out, "--out"))
