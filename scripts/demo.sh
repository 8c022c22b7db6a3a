#!/usr/bin/env bash
# The main job on the bundled default: set up (idempotent), build and install the plugin,
# classify the Indian Pines demo scene through qgis_process, write a preview, print accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/headless-env.sh
.venv/bin/python scripts/build_plugin.py >/dev/null
exec .venv/bin/python scripts/demo.py "$@"
