#!/usr/bin/env bash
# The README's second command: install everything (with test extras) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -m pytest -q --durations=15 "$@"
