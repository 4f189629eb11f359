#!/usr/bin/env bash
# Set up a virtual environment with everything the project needs and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all,test]'
.venv/bin/python -m pytest -q "$@"
