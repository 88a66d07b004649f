#!/usr/bin/env bash
# The GPU figures of docs/performance.md, with the issue's settings: decode attention against its
# memory floor, the direct decode forward against the model's, SFT throughput and MFU of the 0.5B
# shape, and rollout of the SmolLM2-135M shape with 256 episodes in flight (naive: 2 episodes, one
# at a time; an untrained shape plays full 15-step episodes with --max-invalid-actions 15).
# The limits (25 + 140 + 390 s, and decode attention's ~20 s) keep the whole within one 10-minute device call.
# Each part has a time limit so that a slow one leaves the others their figures. Ours drafts only in
# calls of at most 16 prompts (the default, measured on CPU); a second call with the rollout line
# and --draft-rows 256 measures drafting in every call, which a GPU's decode passes may afford.
#   PYTHON=.venv/bin/python bash benchmarks/gpu.sh
set -u
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
"$python" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
"$python" benchmarks/decode_attention.py
timeout 25 "$python" benchmarks/decode_forward.py --model shape:135m --rows 1,64,256 --steps 20
timeout 140 "$python" benchmarks/training_throughput.py --model shape:0.5b --tasks 1500 --epochs 2 \
    --batch-size 16 --max-length 2048
timeout 390 "$python" benchmarks/rollout_throughput.py --model shape:135m --split train --episodes 256 \
    --batch-size 256 --naive-episodes 2 --repeats 1 --max-invalid-actions 15 \
    --restart-sources 8
