#!/usr/bin/env bash
# The project's test command: set up (idempotent), build the plugin, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
mkdir -p .venv/xdg-runtime && chmod 700 .venv/xdg-runtime
export XDG_RUNTIME_DIR="$PWD/.venv/xdg-runtime"
.venv/bin/python scripts/build_plugin.py >/dev/null
exec .venv/bin/python -m pytest "$@"
