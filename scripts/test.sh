#!/usr/bin/env bash
# The project's test command: set up (idempotent), build the plugin, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/headless-env.sh
.venv/bin/python scripts/build_plugin.py >/dev/null
exec .venv/bin/python -m pytest "$@"
