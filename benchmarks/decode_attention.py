"""One decode step's attention at rollout scale, computed the ways transformers versions and SDPA allow.

The H200 profile put a rollout's time in masked decode attention (docs/performance.md). Each row
attends with one query to its own keys and values behind left padding, so a mask is needed, and
with a mask transformers up to 5.17 copies the keys and values from the key/value heads to every
query head first (``repeat_kv``); later versions fold each group's queries into the query length
instead (no copy). Each way runs on the same tensors, laid out as the cached generator keeps them
(a view of a buffer with room for the turn's new tokens); outputs are checked against the first.
The floor is reading the keys and values once, at the rate a plain copy of as many bytes reaches.

    .venv/bin/python benchmarks/decode_attention.py --rows 32 --context 256   # CPU: a check
    python3 benchmarks/decode_attention.py                                      # GPU: SmolLM2-135M's heads, 256 rows
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from shapes import machine


def repeated_heads(q, k, v, mask):
    """transformers <= 5.17 with a mask: keys and values copied to every query head."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:  # as transformers: no copy without grouped heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def packed_queries(q, k, v, mask):
    """Later transformers for one query: a group's queries as the query length of its key/value head."""
    rows, heads, _, dim = q.shape
    kv_heads = k.shape[1]
    packed = q.reshape(rows, kv_heads, heads // kv_heads, dim)
    out = F.scaled_dot_product_attention(packed, k, v, attn_mask=mask)
    return out.reshape(rows, heads, 1, dim)


def sdpa_gqa(q, k, v, mask):
    """SDPA's own grouped-query mode, with the mask."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


def sdpa_gqa_unmasked(q, k, v, mask):
    """No mask (wrong for padded rows): what the kernels do when nothing is masked, a bound."""
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


WAYS: dict[str, Callable] = {
    "repeat_kv + mask": repeated_heads,
    "packed queries + mask": packed_queries,
    "sdpa enable_gqa + mask": sdpa_gqa,
    "sdpa enable_gqa, no mask": sdpa_gqa_unmasked,
}


def timed(function: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds per call, after warm-up."""
    for _ in range(3):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--context", type=int, default=1000, help="longest row's cached tokens")
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--kv-heads", type=int, default=3)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if args.heads % args.kv_heads:
        parser.error("--heads must be a multiple of --kv-heads")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    generator = torch.Generator().manual_seed(0)
    capacity = args.context + 48  # the cached generator's buffer holds the turn's new tokens too

    def buffer() -> torch.Tensor:
        full = torch.randn(args.rows, args.kv_heads, capacity, args.head_dim, generator=generator)
        return full.to(device, dtype)[:, :, : args.context]

    keys, values = buffer(), buffer()
    query = torch.randn(args.rows, args.heads, 1, args.head_dim, generator=generator).to(device, dtype)
    # Rows hold between a third of the context and all of it, left-padded: mask True where attended.
    lengths = torch.randint(args.context // 3, args.context + 1, (args.rows,), generator=generator)
    mask = (torch.arange(args.context) >= args.context - lengths[:, None]).to(device)[:, None, None, :]

    cache_bytes = 2 * keys.numel() * keys.element_size()
    # A contiguous copy of as many bytes reads and writes them: reading them once takes half as long.
    block, target = (torch.ones(2 * keys.numel(), device=device, dtype=dtype) for _ in range(2))
    floor = timed(lambda: target.copy_(block), args.repeats, device) / 2
    print(
        f"{machine()}, {dtype}: {args.rows} rows x {args.context} positions, {args.heads} query / "
        f"{args.kv_heads} key-value heads of {args.head_dim}; keys and values {cache_bytes / 1e6:.0f} MB"
    )
    print(f"{'floor (read keys and values once)':34}{floor * 1e6:>10.0f} us")
    reference = repeated_heads(query, keys, values, mask).float()
    for name, way in WAYS.items():
        seconds = timed(lambda way=way: way(query, keys, values, mask), args.repeats, device)
        output = way(query, keys, values, mask).float()
        error = (output - reference).abs().max().item()
        agrees = "same output" if "no mask" in name or error < 2e-2 else f"DIFFERS by {error:.3g}"
        print(f"{name:34}{seconds * 1e6:>10.0f} us {floor / seconds:>7.0%} of the floor rate  {agrees}")


if __name__ == "__main__":
    main()
