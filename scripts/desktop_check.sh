#!/usr/bin/env bash
# Check the plugin in real QGIS Desktop on a virtual display (Xvfb): toolbar button, dock,
# classification of the bundled scene, styled layers. Writes the log and a screenshot to
# the folder given (default: build/desktop-check). Not part of CI: it needs Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! dpkg -s xvfb xauth >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "desktop-check: installing xvfb" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends xvfb xauth >&2
fi
.venv/bin/python scripts/build_plugin.py >/dev/null
OUT="$(realpath -m "${1:-build/desktop-check}")"
rm -rf "$OUT" && mkdir -p "$OUT/profiles/default/QGIS"
printf '[PythonPlugins]\nfactoformer=true\n' > "$OUT/profiles/default/QGIS/QGIS3.ini"
export FACTOFORMER_DESKTOP_OUT="$OUT" FACTOFORMER_REPO="$PWD" QGIS_PLUGINPATH="$PWD/build"
export PATH="$PWD/.venv/bin:$PATH"
unset QT_QPA_PLATFORM
status=0
timeout 900 xvfb-run -a -s "-screen 0 1280x800x24" qgis --nologo --noversioncheck \
    --profiles-path "$OUT" --code scripts/desktop_check.py >"$OUT/qgis.log" 2>&1 || status=$?
cat "$OUT/desktop_check.log" 2>/dev/null || echo "desktop-check: QGIS wrote no log (see $OUT/qgis.log)"
echo "desktop-check: exit $status, screenshots in $OUT (qgis_desktop*.png)"
exit "$status"
