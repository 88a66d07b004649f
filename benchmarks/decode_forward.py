"""One decode step of the cached generator's batch: the model's own forward vs the direct forward.

The model's forward turns the batch's 2D padding mask into a 4D one and wraps the layers in output
records on every call; the direct forward (``eef.policy.decoder_forward``) runs the same layers with
a mask kept by the caller. Both run on the same batch (rows of different lengths, left-padded, as
the generator lays them out) for ``--steps`` steps; the logits must be equal bit for bit.

    .venv/bin/python benchmarks/decode_forward.py --model runs/default-seed0/sft/checkpoint
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from eef.errors import UserError
from eef.policy.cached_generator import CachedGenerator
from eef.policy.decode_batch import DecodeBatch
from eef.policy.decoder_forward import supports_direct_forward
from shapes import SHAPES, batch_sizes, benchmark_policy, machine, run_script


def decode_steps(generator: CachedGenerator, rows: int, context: int, steps: int, direct: bool):
    """Seconds per step and the logits of every step, for a batch of ``rows`` prompts of up to ``context`` tokens."""
    random = np.random.default_rng(0)
    vocabulary = generator.model.config.vocab_size
    lengths = random.integers(context // 2, context + 1, size=rows)
    prompts = [random.integers(3, vocabulary, size=int(length)) for length in lengths]
    batch = DecodeBatch(generator.model, generator.cache_argument, generator.pad_id, decode_columns=steps + 1)
    batch.direct = direct
    logits = [batch.prefill(prompts, [(None, 0)] * rows)]
    tokens = logits[0].argmax(dim=-1)
    device = generator.model.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(steps):
        logits.append(batch.decode(tokens))
        tokens = logits[-1].argmax(dim=-1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / steps, torch.stack(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"a checkpoint folder or shape:{'|'.join(SHAPES)}")
    parser.add_argument("--rows", type=batch_sizes, default="1,8,64", help="batch sizes, comma-separated")
    parser.add_argument("--context", type=int, default=800, help="longest prompt, in tokens")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    policy = benchmark_policy(args.model)
    if not supports_direct_forward(policy.model):
        raise UserError(f"{args.model} is a {policy.model.config.model_type}: the direct forward does not apply")
    generator = CachedGenerator(policy.model, policy.tokenizer)
    print(f"{args.model} on {machine()}: {args.steps} decode steps after prompts of up to {args.context} tokens")
    print(f"{'rows':>6}{'model forward':>16}{'direct':>12}{'ratio':>8}  logits")
    with torch.inference_mode():
        for rows in args.rows:
            decode_steps(generator, rows, args.context, 2, direct=True)  # warm-up
            theirs, expected = decode_steps(generator, rows, args.context, args.steps, direct=False)
            ours, got = decode_steps(generator, rows, args.context, args.steps, direct=True)
            same = "equal" if torch.equal(got, expected) else "DIFFER"
            print(f"{rows:>6}{theirs * 1e3:>13.2f} ms{ours * 1e3:>9.2f} ms{theirs / ours:>7.2f}x  {same}")


if __name__ == "__main__":
    run_script(main)
