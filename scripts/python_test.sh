#!/usr/bin/env bash
# The Python package (python/): builds its wheel with maturin, installs it with numpy into a
# private directory and runs its pytest suite (python/tests) against it. Called by .ci/run.
#
#   scripts/python_test.sh               # wheel + tests
#   scripts/python_test.sh --wheel-only  # the wheel alone; prints its path
#
# maturin, pytest and numpy come from PyPI, installed with pip into their own --target
# directory under /var/tmp (no root, no virtualenv), once. The wheel is built with the
# workspace's CARGO_TARGET_DIR and release profile, so it reuses what `cargo test --release`
# compiled; it lands in $CARGO_TARGET_DIR/wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

TOOLS_DIR="${REEL_PY_TOOLS:-/var/tmp/reel-python-tools}"
if [ ! -e "$TOOLS_DIR/.installed-1" ]; then
  python3 -m pip install --quiet --target "$TOOLS_DIR" "maturin>=1.9,<2" "pytest==8.*" "numpy>=1.21"
  touch "$TOOLS_DIR/.installed-1"
fi

WHEELS="$CARGO_TARGET_DIR/wheels"
rm -f "$WHEELS"/reel-*.whl
# abi3: one wheel for CPython 3.9+. Tagged linux_x86_64 (built against this machine's glibc,
# not a manylinux image).
PYTHONPATH="$TOOLS_DIR" "$TOOLS_DIR/bin/maturin" build --release --quiet \
  -m python/Cargo.toml -i python3 --compatibility linux --strip --out "$WHEELS" >&2
wheel=$(ls "$WHEELS"/reel-*.whl)
if [ "${1:-}" = "--wheel-only" ]; then
  echo "$wheel"
  exit 0
fi

# Installed into a fresh directory of its own, beside the tools (numpy, pytest).
PKG_DIR="$CARGO_TARGET_DIR/python-site"
rm -rf "$PKG_DIR"
python3 -m pip install --quiet --no-deps --target "$PKG_DIR" "$wheel"
PYTHONPATH="$PKG_DIR:$TOOLS_DIR" python3 -m pytest -q -p no:cacheprovider python/tests "$@"
# The notebook-style example, small: it must stream a completed task's frames.
example_out=$(mktemp -d)
PYTHONPATH="$PKG_DIR:$TOOLS_DIR" python3 examples/stream_frames.py --scenes 1 --steps 2 \
  --size 64 --fps 8 --seconds 0.5 --out "$example_out"
test -s "$example_out/sheet.png"
rm -rf "$example_out"
