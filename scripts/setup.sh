#!/usr/bin/env bash
# Install what the project needs on Debian 12, idempotently: QGIS/GDAL from Debian, then a
# venv (Debian's Python, system site packages) with requirements.txt. A second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-scipy"
if ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "setup: installing Debian packages: $APT_PACKAGES" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -q --no-install-recommends $APT_PACKAGES >&2
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv from /usr/bin/python3" >&2
    /usr/bin/python3 -m venv --system-site-packages .venv
fi

STAMP=.venv/requirements.sha256
if ! sha256sum --check --status "$STAMP" 2>/dev/null; then
    echo "setup: installing Python packages from requirements.txt" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
    .venv/bin/python -c "import numpy, onnxruntime, torch, qgis.core; from osgeo import gdal_array" \
        || { echo "setup: the venv is broken (see above)" >&2; exit 1; }
    sha256sum requirements.txt > "$STAMP"
fi

# The engine as an editable package with its console command (.venv/bin/factoformer).
ENGINE_STAMP=.venv/engine-install.sha256
if ! sha256sum --check --status "$ENGINE_STAMP" 2>/dev/null || [ ! -x .venv/bin/factoformer ]; then
    echo "setup: installing the engine (editable) and the factoformer command" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation -e . >&2
    sha256sum pyproject.toml > "$ENGINE_STAMP"
fi
