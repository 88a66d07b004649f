"""The `eef` command. Exit codes: 0 success, 2 user error (one line saying what to do), 1 anything else."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from eef import console
from eef.allocator import keep_freed_memory
from eef.errors import WRITE_FAILURES, IncompleteError, UserError, WriteError
from eef.storage import remove_empty_made_folders


def _cmd_envs(args: argparse.Namespace) -> None:
    from eef.commands import environments

    rows = environments()
    if args.json:
        console.print_json(rows)
    else:
        _print_environments(rows)


def _print_environments(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="environments")
    for column in ("name", "usable", "description / why not"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"], "yes" if row["usable"] else "no", row["description"] if row["usable"] else row["why_not"]
        )
    console.results.print(table)


# `eef collect` options of chat-model experts (their dests are LLMExpertSettings fields).
_LLM_OPTIONS = ("base_url", "api_key_env", "concurrency", "temperature", "top_p", "max_tokens", "max_retries")
_LLM_OPTIONS += ("backoff_s", "timeout_s", "price_input", "price_cached_input", "price_output", "reasoning_model")


def _cmd_collect(args: argparse.Namespace) -> None:
    from eef.commands import collect
    from eef.experts.collect import print_report, raise_if_incomplete

    report = collect(
        env=args.env,
        expert=args.expert,
        split=args.split,
        seed=args.seed,
        limit=args.limit,
        out=Path(args.out) if args.out else None,
        env_options=dict(args.env_options),
        llm_options={name: value for name in _LLM_OPTIONS if (value := getattr(args, name)) is not None},
    )
    if args.json:
        console.print_json(report)
    else:
        print_report(report)
    raise_if_incomplete(report)


def _cmd_stats(args: argparse.Namespace) -> None:
    from eef.commands import stats

    summary = stats(Path(args.file))
    if args.json:
        console.print_json(summary.model_dump())
    else:
        console.results.print(console.summary_table(summary, args.file))


def _cmd_train(args: argparse.Namespace) -> None:
    from eef.commands import train

    report = train(
        data=Path(args.data),
        model=args.model,
        out=Path(args.out),
        env=args.env,
        env_options=dict(args.env_options),
        successes_only=args.successes_only,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        gradient_accumulation=args.gradient_accumulation,
        max_length=args.max_length,
        lora=args.lora,
        dtype=args.dtype,
        seed=args.seed,
        processes=args.processes,
    )
    if args.json:
        console.print_json(report)
    else:
        console.results.print(
            f"trained {report['examples']} trajectories, {report['steps']} steps, "
            f"final loss {report['final_loss']:.3f}, {report['wall_time_s']:.0f} s -> {report['checkpoint']}"
        )


def _cmd_eval(args: argparse.Namespace) -> None:
    from eef.commands import evaluate_checkpoint
    from eef.summary import Summary

    report = evaluate_checkpoint(
        model=args.model,
        env=args.env,
        env_options=dict(args.env_options),
        split=args.split,
        limit=args.limit,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        out=Path(args.out) if args.out else None,
    )
    if args.json:
        console.print_json(report)
    else:
        title = f"{report['model']} on {report['env']}/{report['split']}"
        console.results.print(console.summary_table(Summary.model_validate(report["summary"]), title))
        console.results.print(f"results: {report['results']} ({report['wall_time_s']} s)")


def _cmd_probe(args: argparse.Namespace) -> None:
    from eef.commands import probe

    report = probe(
        checkpoint=Path(args.checkpoint),
        restarts=Path(args.restarts),
        env=args.env,
        env_options=dict(args.env_options),
        levels=[level.strip() for level in args.levels.split(",")] if args.levels else None,
        limit=args.limit,
        m=args.m,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        out=Path(args.out) if args.out else None,
    )
    if args.json:
        console.print_json(report)
    else:
        _print_probe(report)


def _print_probe(report: dict) -> None:
    from rich.table import Table

    from eef.methods.exploration import ALL_LEVELS, rates, start_order

    starts = sorted({name for counts in report["by_start"].values() for name in counts}, key=start_order)
    failures, temperature = report["failures"], report["temperature"]
    table = Table(title=f"{report['checkpoint']}: success by start ({failures} expert failures, T={temperature})")
    table.add_column("difficulty")
    for name in starts:
        table.add_column(name, justify="right")
    for level, counts in report["by_start"].items():
        cells = [
            f"{c['successes'] / c['episodes']:.1%} ({c['episodes']})" if (c := counts.get(name)) else "-"
            for name in starts
        ]
        table.add_row(level, *cells)
    console.results.print(table)
    overall = report["by_start"][ALL_LEVELS]
    best = report["best_restart"][ALL_LEVELS]
    if best is not None:
        rate, initial = rates(overall)[best], rates(overall).get("s0", 0.0)
        ratio = f", {rate / initial:.1f}x" if initial else ""
        console.results.print(f"best restart position: {best} {rate:.1%} (from s0: {initial:.1%}{ratio})", markup=False)
    if report["out"]:
        console.results.print(f"rollouts: {report['out']}", markup=False)


def _cmd_ceiling(args: argparse.Namespace) -> None:
    from eef.commands import ceiling

    report = ceiling(
        directory=Path(args.run),
        method=args.method,
        oracle=args.oracle,
        held_out=args.held_out,
        out=Path(args.out),
    )
    if args.json:
        console.print_json(report)
    else:
        _print_ceiling(report)


def _print_ceiling(report: dict) -> None:
    from rich.table import Table

    levels = sorted({level for row in report["rows"] for level in row["held_out"]["by_difficulty"]})
    table = Table(
        title=f"{report['run']}: {report['method']} and its ceiling ({report['oracle']} solved "
        f"{report['oracle_solutions']} of the {report['oracle_tasks']} explored tasks the expert failed)"
    )
    for column in ("model", "training set", "dev win", f"held-out win ({report['held_out_tasks']})", *levels):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in report["rows"]:
        held_out = row["held_out"]
        by_level = [
            f"{held_out['by_difficulty'][level]['win_rate']:.1%}" if level in held_out["by_difficulty"] else "-"
            for level in levels
        ]
        table.add_row(
            row["model"],
            str(row["training_set"]),
            f"{row['dev']['overall']['win_rate']:.1%}",
            f"{held_out['overall']['win_rate']:.1%}",
            *by_level,
        )
    console.results.print(table)


def _cmd_run(args: argparse.Namespace) -> None:
    from eef.commands import run

    results = run(
        config=Path(args.config) if args.config else None,
        overrides=args.overrides,
        out=Path(args.out) if args.out else None,
        resume=Path(args.resume) if args.resume else None,
    )
    if args.json:
        console.print_json(results)
    else:
        from eef.results import markdown

        console.results.print(markdown(results), markup=False, highlight=False)


def _cmd_report(args: argparse.Namespace) -> None:
    from eef.commands import report

    path = report(Path(args.run))
    console.results.print(f"report: {path}", markup=False, highlight=False)


def _cmd_verify(args: argparse.Namespace) -> int:
    from eef.commands import verify

    outcome = verify(Path(args.run))
    if args.json:
        console.print_json(outcome)
    else:
        _print_checks(outcome)
    return 0 if outcome["ok"] else 1


def _print_checks(outcome: dict) -> None:
    lines = []
    for check in outcome["checks"]:
        lines.append(f"{'ok' if check['ok'] else 'FAIL':<4}  {check['name']:<30}  {check['files']} checked")
        lines += [f"      {problem['file']}: {problem['problem']}" for problem in check["problems"]]
    failed = sum(not check["ok"] for check in outcome["checks"])
    total = len(outcome["checks"])
    verdict = f"{failed} of {total} checks fail" if failed else f"all {total} checks hold"
    lines.append(f"{outcome['run']}: {verdict}")
    console.results.print("\n".join(lines), markup=False, highlight=False)


def _cmd_compare(args: argparse.Namespace) -> None:
    from eef.commands import compare_runs
    from eef.compare import markdown

    comparison = compare_runs(
        directories=[Path(d) for d in args.runs], versus=args.versus, plot=Path(args.plot) if args.plot else None
    )
    if args.json:
        console.print_json(comparison)
    else:
        console.results.print(markdown(comparison), markup=False, highlight=False)


def _cmd_import(args: argparse.Namespace) -> None:
    from eef.commands import import_trajectories

    report = import_trajectories(
        file=Path(args.file), format=args.format, env=args.env, out=Path(args.out), origin=args.origin
    )
    _print_interchange(report, args.json)


def _cmd_export(args: argparse.Namespace) -> None:
    from eef.commands import export_trajectories

    _print_interchange(export_trajectories(file=Path(args.file), format=args.format, out=Path(args.out)), args.json)


def _print_interchange(report: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(report)
        return
    console.results.print(
        f"{report['trajectories']} trajectories ({report['successes']} successes, "
        f"{report['agent_turns_trained']} trained agent turns) {report['source']} -> {report['out']}",
        markup=False,
        highlight=False,
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line like every other user error (exit code 2), not the usage text and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Seeds reach numpy and torch, which take 0 <= seed < 2**32 (numpy) only.
MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and {MAX_SEED}")
    return seed


def _env_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--env-option``; the value is read as YAML (numbers, booleans, strings)."""
    import yaml

    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. --env-option data_dir=/data/webshop)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML ({str(err).splitlines()[0]})") from None


def _add_env_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-option",
        dest="env_options",
        type=_env_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment option, as env.options in a run config (repeatable), e.g. data_dir=/data/webshop",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eef", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser("envs", help="list the environments and whether each is usable here")
    envs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    envs.set_defaults(handler=_cmd_envs)

    collect = commands.add_parser("collect", help="run an expert on a split and write its trajectories (JSONL)")
    collect.add_argument("--env", default="shop", help="environment name (see `eef envs`)")
    collect.add_argument(
        "--expert", default="scripted", help="expert: scripted, scripted-weak, ..., openai:MODEL[@TAG]"
    )
    collect.add_argument("--split", default="train")
    collect.add_argument("--seed", type=_seed, default=0, help="base seed of the expert's random choices")
    collect.add_argument("--limit", type=int, default=None, help="only the first N tasks of the split")
    collect.add_argument("--out", default=None, help="output JSONL (default data/expert-ENV-EXPERT-SPLIT.jsonl)")
    collect.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_env_options(collect)
    llm = collect.add_argument_group("chat-model experts (--expert openai:MODEL[@TAG]; see docs/experts.md)")
    llm.add_argument(
        "--base-url", metavar="URL", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (default: OpenAI)"
    )
    llm.add_argument("--api-key-env", metavar="VAR", help="environment variable with the key (default OPENAI_API_KEY)")
    llm.add_argument("--concurrency", type=int, metavar="N", help="episodes in flight at once (default 8)")
    llm.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default 0)")
    llm.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling (default 1)")
    llm.add_argument("--max-tokens", type=int, metavar="N", help="longest turn in tokens (default 256)")
    llm.add_argument("--max-retries", type=int, metavar="N", help="retries of a failing request (default 6)")
    llm.add_argument(
        "--backoff", dest="backoff_s", type=float, metavar="S", help="first retry's delay in s, doubling (default 1)"
    )
    llm.add_argument(
        "--timeout", dest="timeout_s", type=float, metavar="S", help="one request's time limit in s (default 120)"
    )
    llm.add_argument("--price-input", type=float, metavar="USD", help="price per million prompt tokens")
    llm.add_argument(
        "--price-cached-input",
        type=float,
        metavar="USD",
        help="price per million prompt tokens served from the server's prompt cache (default: --price-input)",
    )
    llm.add_argument("--price-output", type=float, metavar="USD", help="price per million generated tokens")
    llm.add_argument(
        "--reasoning-model",
        action="store_const",
        const=True,
        help="an OpenAI reasoning model (o1, o3, gpt-5, ...): send max_completion_tokens, no temperature or top_p",
    )
    collect.set_defaults(handler=_cmd_collect)

    train = commands.add_parser("train", help="supervised fine-tuning on a trajectories file (loss on agent turns)")
    train.add_argument("--data", required=True, help="trajectories JSONL; only agent turns with loss=true are trained")
    train.add_argument("--model", default="tiny", help="tiny | smollm2-135m | a Hugging Face folder or model id")
    train.add_argument("--out", required=True, help="checkpoint folder to write (Hugging Face format)")
    train.add_argument("--env", default="shop", help="the environment whose text builds the tiny model's tokenizer")
    train.add_argument("--successes-only", action="store_true", help="train only on successful trajectories")
    train.add_argument("--epochs", type=float, default=3.0)
    train.add_argument("--learning-rate", type=float, default=None, help="default: 2e-3 for tiny, 2e-5 otherwise")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--gradient-accumulation", type=int, default=1)
    train.add_argument("--max-length", type=int, default=2048)
    train.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved checkpoint)")
    train.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument(
        "--processes",
        type=int,
        default=1,
        help="train in N processes on this machine (torchrun, DDP), each with its share of every batch "
        "(docs/scale-out.md)",
    )
    train.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_env_options(train)
    train.set_defaults(handler=_cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint on a split: win rate, reward, actions")
    evaluate.add_argument("model", help="checkpoint folder, tiny (untrained, for a baseline) or smollm2-135m")
    evaluate.add_argument("--env", default="shop")
    evaluate.add_argument("--split", default="dev")
    evaluate.add_argument("--limit", type=int, default=None, help="only the first N tasks of the split")
    evaluate.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    evaluate.add_argument("--max-new-tokens", type=int, default=64)
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--seed", type=_seed, default=0)
    evaluate.add_argument("--out", default=None, help="folder for trajectories.jsonl and results.json")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_env_options(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    probe = commands.add_parser(
        "probe", help="a checkpoint's success from the start and from each restart point of expert failures"
    )
    probe.add_argument("checkpoint", help="checkpoint folder (e.g. RUN_DIR/sft/checkpoint)")
    probe.add_argument(
        "--restarts", required=True, metavar="FILE", help="expert trajectories JSONL; its failures are restarted from"
    )
    probe.add_argument("--env", default="shop")
    probe.add_argument("--levels", default=None, metavar="A,B", help="only failures of these difficulty levels")
    probe.add_argument("--limit", type=int, default=None, help="only the first N failures (of those levels)")
    probe.add_argument("--m", type=int, default=5, help="restart points per failure, as EEF's m (default 5)")
    probe.add_argument("--temperature", type=float, default=1.0, help="as the run's rollout.explore (0: greedy)")
    probe.add_argument("--max-new-tokens", type=int, default=48)
    probe.add_argument("--batch-size", type=int, default=64)
    probe.add_argument("--seed", type=_seed, default=0, help="seeds each episode's sampling")
    probe.add_argument("--out", default=None, help="write the probe's rollouts here (JSONL)")
    probe.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_env_options(probe)
    probe.set_defaults(handler=_cmd_probe)

    ceiling = commands.add_parser(
        "ceiling", help="the most that solutions of the expert's failures could add to a method's training set"
    )
    ceiling.add_argument("run", metavar="RUN_DIR", help="a run directory whose METHOD finished its first iteration")
    ceiling.add_argument("--method", default="rft-x6", help="an RFT or EEF method of the run (default rft-x6)")
    ceiling.add_argument(
        "--oracle", default="scripted-perfect", help="the expert that solves the explored tasks the main expert failed"
    )
    ceiling.add_argument(
        "--held-out", type=int, default=None, metavar="N", help="evaluate on the first N held-out tasks only"
    )
    ceiling.add_argument("--out", required=True, help="folder for the ceiling's data, checkpoint and evaluations")
    ceiling.add_argument("--json", action="store_true", help="print ceiling.json instead of the table")
    ceiling.set_defaults(handler=_cmd_ceiling)

    run = commands.add_parser("run", help="the whole pipeline: experts, SFT, RFT and EEF iterations, comparison")
    run.add_argument("config", nargs="?", default=None, help="YAML config (default: the embedded default)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set iterations=3 --set methods.eef.m=3",
    )
    run.add_argument("--out", default=None, help="run directory (default: runs/NAME-seedSEED)")
    run.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR where it stopped")
    run.add_argument("--json", action="store_true", help="print results.json instead of the table")
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser("report", help="report.html with plots (and the plots as PNG) for a finished run")
    report.add_argument("run", metavar="RUN_DIR", help="a finished run directory")
    report.set_defaults(handler=_cmd_report)

    verify = commands.add_parser(
        "verify", help="check a run directory's invariants (exit code 1 when one fails); see docs/runs.md"
    )
    verify.add_argument("run", metavar="RUN_DIR", help="a run directory, finished or not")
    verify.add_argument("--json", action="store_true", help="print JSON instead of lines")
    verify.set_defaults(handler=_cmd_verify)

    compare = commands.add_parser("compare", help="one table over several finished runs: mean and spread per method")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run directories (e.g. several seeds)")
    compare.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="METHOD",
        help="also print every method's win-rate margin over METHOD, paired by run (repeatable)",
    )
    compare.add_argument("--json", action="store_true", help="print JSON instead of the table")
    compare.add_argument(
        "--plot", metavar="FILE.png", help="also draw the win rates and margins, with their 95%% intervals, as a PNG"
    )
    compare.set_defaults(handler=_cmd_compare)

    import_ = commands.add_parser("import", help="ETO's or AgentGym's trajectory JSON -> our trajectories (JSONL)")
    import_.add_argument("file", metavar="IN", help="a JSON list, JSON lines, one ETO output file, or a folder of them")
    import_.add_argument("--format", required=True, choices=["eto", "agentgym"])
    import_.add_argument("--env", required=True, help="the environment the trajectories were played in")
    import_.add_argument("--out", required=True, help="trajectories JSONL to write")
    import_.add_argument("--origin", default=None, help="who acted, e.g. gpt-4 (default: expert:imported-FORMAT)")
    import_.add_argument("--json", action="store_true", help="print the summary as JSON")
    import_.set_defaults(handler=_cmd_import)

    export = commands.add_parser("export", help="our trajectories (JSONL) -> ETO's or AgentGym's trajectory JSON")
    export.add_argument("file", metavar="IN", help="trajectories JSONL")
    export.add_argument("--format", required=True, choices=["eto", "agentgym"])
    export.add_argument("--out", required=True, help="JSON file to write (a list of entries)")
    export.add_argument("--json", action="store_true", help="print the summary as JSON")
    export.set_defaults(handler=_cmd_export)

    stats = commands.add_parser("stats", help="win rate, reward and actions of a trajectories file, by difficulty")
    stats.add_argument("file", help="trajectories JSONL (ours, or ShareGPT-style with our fields)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(handler=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    if console.quiet():
        # Hugging Face's own bars (e.g. "Loading weights") follow ours; read when transformers is imported.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        code = _handle(handler, args)
    except BaseException:
        remove_empty_made_folders()
        raise
    if code:  # a failed command leaves no folder it made for its output
        remove_empty_made_folders()
    return code


def _handle(handler: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``handler``'s exit code, a user's mistake or an interrupted work told in one line."""
    try:
        return handler(args) or 0
    except UserError as err:
        console.errors.print(f"eef: error: {err}", markup=False, highlight=False)
        return 2
    except IncompleteError as err:  # WriteError included: a file that could not be written
        console.errors.print(f"eef: error: {err}", markup=False, highlight=False)
        return 1
    except OSError as err:
        if err.errno not in WRITE_FAILURES:
            raise
        # A library's own write, in a command that does not say how to retry (see on_write_failure).
        console.errors.print(f"eef: error: {WriteError.of(err)}", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        console.messages.print("eef: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
