"""Encoding a training set: the special tokens read again at every trained turn (naive) vs kept (ours).

Before a training, SFT turns each trajectory into ids and loss labels (``encode_messages``), which
finds the end-of-turn token after every trained agent turn among the tokenizer's special tokens.
Reading them out of a Hugging Face fast tokenizer copies every added token, and the shop's ``tiny``
tokenizer adds thousands (its single-token terms): naive reads them at every trained turn, as eef
did before; ours keeps them per tokenizer. The data are an expert's successes, as SFT trains on
them; both ways must give the same ids and labels.

    .venv/bin/python benchmarks/training_encoding.py
    .venv/bin/python benchmarks/training_encoding.py --tokenizer smollm2-135m
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from weakref import WeakKeyDictionary

from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import expert_names, make_expert
from eef.policy import tokenize
from eef.policy.tokenize import Encoded, encode_messages
from eef.types import Trajectory
from shapes import environment_policy, machine, run_script


class _KeepsNothing(WeakKeyDictionary):
    def __setitem__(self, key, value) -> None:
        pass


@contextmanager
def special_tokens_read_every_turn() -> Iterator[None]:
    """The code before the tokens were kept: a store that keeps nothing, so each trained turn reads them again."""
    kept, tokenize._SPECIAL_TOKENS = tokenize._SPECIAL_TOKENS, _KeepsNothing()
    try:
        yield
    finally:
        tokenize._SPECIAL_TOKENS = kept


def timed(tokenizer, trajectories: list[Trajectory]) -> tuple[float, list[Encoded]]:
    began = time.perf_counter()
    encoded = [encode_messages(tokenizer, t.messages, max_length=1024) for t in trajectories]
    return time.perf_counter() - began, encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokenizer", default="tiny", help="tiny (built from the environment's text) | smollm2-135m | a folder"
    )
    parser.add_argument("--env", default="shop")
    parser.add_argument(
        "--tasks", type=int, default=300, help="train tasks the expert plays (its successes are encoded)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way, alternating; medians reported")
    args = parser.parse_args()
    if args.tasks < 1 or args.repeats < 1:
        parser.error("--tasks and --repeats must be at least 1")

    suite = get_suite(args.env)
    expert = expert_names(args.env)[0]
    played = list(collect(suite, make_expert(args.env, expert), suite.tasks("train")[: args.tasks], seed=0))
    successes = [t for t in played if t.success]
    tokenizer = environment_policy(args.tokenizer, suite, played).tokenizer
    turns = sum(m.role == "assistant" and m.loss for t in successes for m in t.messages)
    print(
        f"{args.tokenizer} tokenizer ({len(tokenizer):,} tokens), {len(successes)} successes of the {expert} expert "
        f"on {args.env}: {turns} trained turns, {machine()}"
    )

    seconds: dict[str, list[float]] = {"naive": [], "ours": []}
    for _ in range(args.repeats):
        with special_tokens_read_every_turn():
            naive_seconds, naive_encoded = timed(tokenizer, successes)
        tokenize._SPECIAL_TOKENS.clear()  # ours reads them once in each run too
        ours_seconds, ours_encoded = timed(tokenizer, successes)
        if ours_encoded != naive_encoded:
            raise SystemExit("error: the kept special tokens give other ids or labels than reading them every turn")
        seconds["naive"].append(naive_seconds)
        seconds["ours"].append(ours_seconds)
    naive, ours = statistics.median(seconds["naive"]), statistics.median(seconds["ours"])
    tokens = sum(len(e.input_ids) for e in ours_encoded)
    print(f"naive: {naive:.2f} s for {len(successes)} trajectories ({tokens:,} tokens), {len(successes) / naive:.0f}/s")
    print(f"ours:  {ours:.2f} s, {len(successes) / ours:.0f}/s")
    print(f"ours/naive: {naive / ours:.2f}x; identical ids and labels: yes")


if __name__ == "__main__":
    run_script(main)
