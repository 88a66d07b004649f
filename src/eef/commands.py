"""What `eef train`, `eef eval` and `eef run` do, given their parsed options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from eef.errors import UserError, first_problem
from eef.storage import prepare_output

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def _from_flags(settings: type[SettingsModel], **values: Any) -> SettingsModel:
    """``settings`` from command-line values named as its fields; a value out of bounds is a UserError
    that names its flag (``batch_size`` -> ``--batch-size``)."""
    try:
        return settings(**values)
    except ValidationError as err:
        field, problem = first_problem(err)
        raise UserError(f"--{field.replace('_', '-')}: {problem}") from None


def train(args: argparse.Namespace) -> dict[str, Any]:
    from eef.config import LoraSettings, SFTSettings
    from eef.envs.registry import get_suite
    from eef.policy.models import load_policy, training_dtype
    from eef.policy.tiny import environment_text
    from eef.storage import read_trajectories
    from eef.training.sft import train_sft

    settings = _from_flags(
        SFTSettings,
        epochs=args.epochs,
        learning_rate=args.learning_rate or (2e-3 if args.model == "tiny" else 2e-5),
        batch_size=args.batch_size,
        gradient_accumulation=args.gradient_accumulation,
        max_length=args.max_length,
        seed=args.seed,
        lora=LoraSettings() if args.lora else None,
    )
    data = read_trajectories(Path(args.data))
    if args.successes_only:
        data = [t for t in data if t.success]
    if not data:
        raise UserError(f"{args.data}: no trajectories to train on{' (no successes)' if args.successes_only else ''}")
    prepare_output(Path(args.out), "--out", folder=True)  # before the training, not after it
    suite = get_suite(args.env, **dict(args.env_options))
    texts = environment_text(suite.instruction, data) if args.model == "tiny" else None
    policy = load_policy(
        args.model,
        tokenizer_texts=texts,
        tokenizer_terms=suite.atomic_terms(),
        dtype=training_dtype(args.dtype),
        seed=args.seed,
    )
    result = train_sft(policy, data, settings, Path(args.out))
    return {
        "checkpoint": args.out,
        "data": args.data,
        "examples": result.examples,
        "steps": result.steps,
        "final_loss": result.final_loss,
        "losses": result.losses,
        "loss_tokens": result.loss_tokens,
        "tokens_per_s": round(result.tokens_per_second, 1),
        "wall_time_s": round(result.wall_seconds, 1),
        "seed": args.seed,
    }


def evaluate_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    from eef.config import RolloutConfig, SamplingConfig
    from eef.envs.registry import get_suite
    from eef.evaluate import evaluate, save_evaluation
    from eef.policy.generators import make_generator
    from eef.policy.models import load_policy

    if args.limit is not None and args.limit <= 0:
        raise UserError(f"--limit must be positive, got {args.limit}")
    sampling = _from_flags(SamplingConfig, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    # A run's rollout settings with its defaults; steps never overlap generation here.
    rollout = _from_flags(RolloutConfig, batch_size=args.batch_size, overlap_steps=False)
    default_out = Path(args.model) / f"eval-{args.env}-{args.split}" if Path(args.model).is_dir() else None
    out = Path(args.out) if args.out else default_out or Path("runs") / f"eval-{args.model}-{args.env}-{args.split}"
    suite = get_suite(args.env, **dict(args.env_options))
    suite.tasks(args.split)  # an unknown split fails here, before a model is loaded
    prepare_output(out, "--out", folder=True)
    texts = [suite.instruction] if args.model == "tiny" else None
    policy = load_policy(args.model, tokenizer_texts=texts, tokenizer_terms=suite.atomic_terms(), seed=args.seed)
    generator = make_generator(policy.model, policy.tokenizer)
    evaluation = evaluate(
        generator, suite, args.split, rollout, sampling, origin=f"policy:{args.model}", seed=args.seed, limit=args.limit
    )
    context = {
        "model": args.model,
        "env": args.env,
        "split": args.split,
        "seed": args.seed,
        "temperature": args.temperature,
        "results": str(out / "results.json"),
    }
    return save_evaluation(evaluation, out, context)


def probe(args: argparse.Namespace) -> dict[str, Any]:
    from eef.config import RolloutConfig, SamplingConfig
    from eef.envs.registry import get_suite
    from eef.methods.exploration import ALL_LEVELS, best_restart
    from eef.policy.generators import make_generator
    from eef.policy.models import load_policy
    from eef.probe import check_replays, run_probe
    from eef.storage import read_trajectories, write_trajectories

    for flag, value in (("--limit", args.limit), ("--m", args.m)):
        if value is not None and value <= 0:
            raise UserError(f"{flag} must be positive, got {value}")
    sampling = _from_flags(SamplingConfig, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    rollout = _from_flags(RolloutConfig, batch_size=args.batch_size, overlap_steps=False)
    if args.out:
        prepare_output(Path(args.out), "--out")
    suite = get_suite(args.env, **dict(args.env_options))
    levels = [level.strip() for level in args.levels.split(",")] if args.levels else None
    unknown = sorted(set(levels or []) - set(suite.difficulty_levels()))
    if unknown:
        known = ", ".join(suite.difficulty_levels()) or "none"
        raise UserError(f"--levels: {args.env} has no level {unknown[0]!r}; its levels: {known}")
    failures = [
        t
        for t in read_trajectories(Path(args.restarts))
        if not t.success and (levels is None or t.difficulty in levels)
    ][: args.limit]
    if not failures:
        raise UserError(
            f"{args.restarts}: no failed trajectories{' of levels ' + args.levels if levels else ''} to restart from"
        )
    if not Path(args.checkpoint).is_dir():
        raise UserError(f"{args.checkpoint}: no such checkpoint folder (give one that eef train or eef run wrote)")
    check_replays(suite, failures)  # before the model loads
    policy = load_policy(args.checkpoint)
    result = run_probe(
        make_generator(policy.model, policy.tokenizer),
        suite,
        failures,
        m=args.m,
        rollout=rollout,
        sampling=sampling,
        seed=args.seed,
        origin=f"probe:{args.checkpoint}",
    )
    if args.out:
        write_trajectories(Path(args.out), result.rollouts)
    order = [*suite.difficulty_levels(), *sorted(set(result.by_start) - set(suite.difficulty_levels()) - {ALL_LEVELS})]
    by_start = {level: result.by_start[level] for level in [*order, ALL_LEVELS] if level in result.by_start}
    return {
        "checkpoint": args.checkpoint,
        "restarts": args.restarts,
        "env": args.env,
        "env_options": dict(args.env_options),
        "failures": len(failures),
        "episodes": len(result.rollouts),
        "m": args.m,
        "temperature": sampling.temperature,
        "seed": args.seed,
        "by_start": by_start,
        "best_restart": {level: best_restart(counts) for level, counts in by_start.items()},
        "wall_time_s": round(result.wall_time_s, 1),
        "out": args.out,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from eef import console
    from eef.config import default_config_path, load_config, load_run_config
    from eef.errors import on_write_failure
    from eef.lock import run_lock

    if args.resume:
        if args.config or args.overrides:
            raise UserError("--resume continues a run with its own config: give no CONFIG or --set with it")
        directory = Path(args.resume)
        config = load_run_config(directory)
    else:
        path = Path(args.config) if args.config else default_config_path()
        config = load_config(path, args.overrides)
        directory = prepare_output(
            Path(args.out) if args.out else Path("runs") / f"{config.name}-seed{config.seed}", "--out", folder=True
        )
    from eef.run import Run  # the model code, once the config holds (a bad one fails in a fraction of a second)

    run_ = Run(directory, config)  # checks the environment and the engine before anything is written
    with on_write_failure(f"eef run --resume {run_.dir}"):
        run_.dir.mkdir(parents=True, exist_ok=True)
        # One writer per run directory, for the whole run: a second `eef run` here stops at once.
        with run_lock(run_.dir, "eef run"):
            if not args.resume and (run_.dir / "config.yaml").exists():
                console.messages.print(f"continuing the run in {run_.dir}", markup=False)
            run_.prepare()
            return run_.execute()
