#!/usr/bin/env bash
# Runs the whole test suite (sets up .venv with the extras first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --extras
export ALIGNLAB_DATA_DIR=${ALIGNLAB_DATA_DIR:-../shared/datasets}
.venv/bin/ruff check src tests bench
# the architecture contracts (pyproject.toml [tool.importlinter]): layers, papers apart, popcode alone
.venv/bin/lint-imports --no-cache
# the docs site: a broken link, image or anchor, or a page missing from nav, fails (a temp dir keeps the tree clean)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
.venv/bin/python -m pytest -q "$@"
