"""SFT throughput: batches of similar lengths (ours) vs random batches, in one process.

Both train the same model on the same expert successes for the same number of epochs and seed;
random batches pad every sequence to the longest of its batch. Prints trained (non-padding) tokens
per second, the share of padding in the batches (the most that sequence packing could save), the
ratio ours/naive, and on a GPU the model FLOPs utilisation (6 x parameters x tokens/s over the GPU's
peak bf16 FLOP/s, attention FLOPs left out, as is customary).

    .venv/bin/python benchmarks/training_throughput.py --model tiny --tasks 300 --epochs 1
    .venv/bin/python benchmarks/training_throughput.py --model shape:0.5b   # on a GPU: the MFU target's model
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from eef.config import SFTSettings
from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.policy.models import resolve_dtype, training_dtype
from eef.policy.tokenize import encode_messages
from eef.training.sft import train_sft
from shapes import SHAPES, environment_policy, machine, run_script, shaped_policy

# Dense bf16 peak FLOP/s of the GPUs this project is lent (vendor datasheets, without sparsity).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def padding_share(lengths: list[int], batch_size: int, grouped: bool, seed: int = 0) -> float:
    """The share of a batch's positions that are padding, over one epoch of the sampler the Trainer
    uses: what sequence packing could save at most (packing removes padding, not real tokens)."""
    generator = torch.Generator().manual_seed(seed)
    if grouped:
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = [[lengths[i] for i in order[start : start + batch_size]] for start in range(0, len(order), batch_size)]
    return 1 - sum(map(sum, batches)) / sum(max(batch) * len(batch) for batch in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shapes = " | ".join(f"shape:{name}" for name in SHAPES)
    parser.add_argument("--model", default="tiny", help=f"tiny | smollm2-135m | a Hugging Face folder | {shapes}")
    parser.add_argument("--env", default="shop")
    parser.add_argument("--tasks", type=int, default=300, help="train tasks the scripted expert plays")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()

    suite = get_suite(args.env)
    expert = make_expert(args.env, "scripted")
    data = [t for t in collect(suite, expert, suite.tasks("train")[: args.tasks], seed=0) if t.success]
    peak = peak_flops()
    print(
        f"SFT of {args.model} on {len(data)} expert successes, {args.epochs} epoch(s), "
        f"batch {args.batch_size}, {machine()}"
    )
    rates = {}
    for name, grouped in (("naive", False), ("ours", True)):
        if args.model.startswith("shape:"):
            policy = shaped_policy(args.model.removeprefix("shape:"), resolve_dtype(training_dtype("auto")))
        else:
            policy = environment_policy(args.model, suite, data)
        parameters = sum(p.numel() for p in policy.model.parameters())
        settings = SFTSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=1e-3 if args.model == "tiny" else 2e-5,
            group_by_length=grouped,
            report_to="none",
        )
        with tempfile.TemporaryDirectory() as folder:
            result = train_sft(policy, data, settings, Path(folder) / "model")
        rates[name] = result.total_tokens / result.train_seconds
        lengths = [len(encode_messages(policy.tokenizer, t.messages, args.max_length).input_ids) for t in data]
        padding = padding_share(lengths, args.batch_size, grouped)
        mfu = f", MFU {6 * parameters * rates[name] / peak:.1%}" if peak else ""
        print(
            f"{name:6} {'length-grouped' if grouped else 'random':15} batches: {result.steps} steps in "
            f"{result.train_seconds:.1f} s, {rates[name]:,.0f} trained tokens/s{mfu}, {padding:.1%} padding, "
            f"final loss {result.final_loss:.3f}"
        )
    print(f"ours/naive: {rates['ours'] / rates['naive']:.2f}x tokens/s ({parameters:,} parameters)")


if __name__ == "__main__":
    run_script(main)
