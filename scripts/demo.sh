#!/usr/bin/env bash
# Set up a virtual environment and run the main job on the bundled sample dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all]'
.venv/bin/imagine-publish demo --out "${1:-imagine-demo}"
