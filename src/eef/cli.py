"""The `eef` command. Exit codes: 0 success, 2 user error (one line saying what to do), 1 anything else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from eef import console
from eef.errors import UserError


def _cmd_envs(args: argparse.Namespace) -> None:
    from eef.envs.registry import entries

    rows = [
        {
            "name": e.name,
            "usable": (reason := e.unavailable_reason()) is None,
            "why_not": reason or "",
            "description": e.description,
        }
        for e in entries()
    ]
    if args.json:
        console.print_json(rows)
        return
    from rich.table import Table

    table = Table(title="environments")
    for column in ("name", "usable", "description / why not"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"], "yes" if row["usable"] else "no", row["description"] if row["usable"] else row["why_not"]
        )
    console.results.print(table)


def _cmd_collect(args: argparse.Namespace) -> None:
    from eef.experts.collect import collect_to_file, print_report

    out = Path(args.out) if args.out else Path("data") / f"expert-{args.env}-{args.expert}-{args.split}.jsonl"
    report = collect_to_file(
        env_name=args.env, expert_spec=args.expert, split=args.split, out=out, seed=args.seed, limit=args.limit
    )
    if args.json:
        console.print_json(report)
    else:
        print_report(report)


def _cmd_stats(args: argparse.Namespace) -> None:
    from eef.storage import read_trajectories
    from eef.summary import summarize

    summary = summarize(read_trajectories(Path(args.file)))
    if args.json:
        console.print_json(summary.model_dump())
    else:
        console.results.print(console.summary_table(summary, args.file))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eef", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser("envs", help="list the environments and whether each is usable here")
    envs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    envs.set_defaults(handler=_cmd_envs)

    collect = commands.add_parser("collect", help="run an expert on a split and write its trajectories (JSONL)")
    collect.add_argument("--env", default="shop", help="environment name (see `eef envs`)")
    collect.add_argument("--expert", default="scripted", help="expert: scripted, scripted-weak, ...")
    collect.add_argument("--split", default="train")
    collect.add_argument("--seed", type=int, default=0, help="base seed of the expert's random choices")
    collect.add_argument("--limit", type=int, default=None, help="only the first N tasks of the split")
    collect.add_argument("--out", default=None, help="output JSONL (default data/expert-ENV-EXPERT-SPLIT.jsonl)")
    collect.add_argument("--json", action="store_true", help="print the summary as JSON")
    collect.set_defaults(handler=_cmd_collect)

    stats = commands.add_parser("stats", help="win rate, reward and actions of a trajectories file, by difficulty")
    stats.add_argument("file", help="trajectories JSONL (ours, or ShareGPT-style with our fields)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(handler=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except UserError as err:
        console.messages.print(f"eef: error: {err}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        console.messages.print("eef: interrupted", markup=False)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
