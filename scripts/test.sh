#!/usr/bin/env bash
# Set up a virtual environment with everything the project needs and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# The FiftyOne app test drives Debian's headless Chromium; install it when we can (root, apt).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "note: chromium/chromedriver missing and not root: the FiftyOne browser test will fail" >&2
    fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all,test]'
export FIFTYONE_DO_NOT_TRACK=true
.venv/bin/python -m pytest -q "$@"
