# Sourced by demo.sh and test.sh: run QGIS without a display, with a private runtime folder.
export QT_QPA_PLATFORM=offscreen
mkdir -p .venv/xdg-runtime && chmod 700 .venv/xdg-runtime
export XDG_RUNTIME_DIR="$PWD/.venv/xdg-runtime"
