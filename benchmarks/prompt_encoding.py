"""Encoding each turn's prompts: the whole history re-tokenised (naive) vs only what is new (ours).

The rollout engine turns every live episode's conversation into token ids before each turn. Naive
renders and tokenises each conversation whole, as the engine did before and as ETO and AgentGym do;
ours (``PromptEncoder``) keeps each conversation's ids up to its last special token and tokenises the
rest. The conversations are an expert's episodes (the environment's first expert by default),
replayed turn by turn as the engine sees them (all live episodes' prompts in one call per turn); both
ways must give the same ids. Naive's tokenising grows with the square of an episode's turns, ours' linearly.

    .venv/bin/python benchmarks/prompt_encoding.py --tokenizer tiny
    .venv/bin/python benchmarks/prompt_encoding.py --tokenizer smollm2-135m
    .venv/bin/python benchmarks/prompt_encoding.py --tokenizer smollm2-135m --env sciworld --episodes 16
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import expert_names, make_expert
from eef.policy.tokenize import PromptEncoder, encode_prompts
from eef.types import Message, Trajectory
from shapes import environment_policy, machine, run_script

Turns = list[tuple[list[list[Message]], list[str]]]  # per turn: the live conversations and their keys


def turns_of(trajectories: list[Trajectory]) -> Turns:
    """Each turn's prompts as the engine builds them: every conversation still going, up to the agent's next reply."""
    replies = {t.id: sum(m.role == "assistant" for m in t.messages) for t in trajectories}
    turns: Turns = []
    for turn in range(max(replies.values())):
        live = [t for t in trajectories if replies[t.id] > turn]
        # The agent's reply number ``turn`` follows the system prompt and ``turn + 1`` observations.
        turns.append(([t.messages[: 2 * turn + 2] for t in live], [t.id for t in live]))
    return turns


def timed(encode: Callable[[list[list[Message]], list[str]], list[list[int]]], turns: Turns) -> tuple[float, list]:
    began = time.perf_counter()
    ids = [encode(conversations, keys) for conversations, keys in turns]
    return time.perf_counter() - began, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokenizer", default="tiny", help="tiny (built from the environment's text) | smollm2-135m | a folder"
    )
    parser.add_argument("--env", default="shop")
    parser.add_argument("--expert", default=None, help="whose episodes (default: the environment's first expert)")
    parser.add_argument("--episodes", type=int, default=64, help="train tasks the expert plays")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each way, alternating; medians reported")
    args = parser.parse_args()
    if args.episodes < 1 or args.repeats < 1:
        parser.error("--episodes and --repeats must be at least 1")

    suite = get_suite(args.env)
    expert = args.expert or expert_names(args.env)[0]
    trajectories = list(collect(suite, make_expert(args.env, expert), suite.tasks("train")[: args.episodes], seed=0))
    tokenizer = environment_policy(args.tokenizer, suite, trajectories).tokenizer
    turns = turns_of(trajectories)
    prompts = sum(len(conversations) for conversations, _ in turns)
    print(
        f"{args.tokenizer} tokenizer, {len(trajectories)} episodes of {args.env} by the {expert} expert: "
        f"{len(turns)} turns, {prompts} prompts, {machine()}"
    )

    seconds: dict[str, list[float]] = {"naive": [], "ours": []}
    for _ in range(args.repeats):
        naive_seconds, naive_ids = timed(lambda conversations, keys: encode_prompts(tokenizer, conversations), turns)
        encoder = PromptEncoder(tokenizer)  # a fresh one each run: the first turn is tokenised whole
        ours_seconds, ours_ids = timed(encoder.encode, turns)
        if ours_ids != naive_ids:
            raise SystemExit("error: the prompt encoder's ids differ from whole tokenisation")
        seconds["naive"].append(naive_seconds)
        seconds["ours"].append(ours_seconds)
    total = sum(len(ids) for turn in naive_ids for ids in turn)
    naive, ours = statistics.median(seconds["naive"]), statistics.median(seconds["ours"])
    print(f"cut before: {', '.join(encoder.markers) or 'nothing (every prompt tokenised whole)'}")
    print(f"naive: {naive * 1e3:.1f} ms for {prompts} prompts ({total:,} tokens), {total / naive:,.0f} prompt tokens/s")
    print(f"ours:  {ours * 1e3:.1f} ms, {total / ours:,.0f} prompt tokens/s")
    print(f"ours/naive: {naive / ours:.2f}x; identical ids: yes")


if __name__ == "__main__":
    run_script(main)
