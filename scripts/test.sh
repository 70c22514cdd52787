#!/usr/bin/env bash
# Runs the test suite, in tiers (pyproject.toml's markers):
#   scripts/test.sh          every test (what CI runs; sets up .venv with the extras first if needed)
#   scripts/test.sh --fast   the fast tier: no real model, no training, no kills, no servers (run it on every
#                            change; a few minutes on 2 cores)
# Either way: ruff, the architecture contracts and the strict docs build first. More arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=()
if [ "${1:-}" = "--fast" ]; then
  shift
  tier=(-m "not slow and not heavy")
  [ -x .venv/bin/alignlab ] || bash scripts/setup.sh --extras
else
  bash scripts/setup.sh --extras
fi
export ALIGNLAB_DATA_DIR=${ALIGNLAB_DATA_DIR:-../shared/datasets}
.venv/bin/ruff check src tests bench
# the architecture contracts (pyproject.toml [tool.importlinter]): layers, papers apart, popcode alone
contracts=$(.venv/bin/lint-imports --no-cache 2>&1) || { echo "$contracts"; exit 1; }
echo "$contracts" | tail -n 1
# the docs site: a broken link, image or anchor, or a page missing from nav, fails (a temp dir keeps the tree clean)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
.venv/bin/python -m pytest -q "${tier[@]}" "$@"
