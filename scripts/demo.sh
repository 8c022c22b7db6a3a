#!/usr/bin/env bash
# The main job on the bundled default: set up (idempotent), build and install the plugin,
# classify the Indian Pines demo scene through qgis_process, write a preview, print accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
mkdir -p .venv/xdg-runtime && chmod 700 .venv/xdg-runtime
export XDG_RUNTIME_DIR="$PWD/.venv/xdg-runtime"
.venv/bin/python scripts/build_plugin.py >/dev/null
exec .venv/bin/python scripts/demo.py "$@"
