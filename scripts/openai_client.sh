#!/usr/bin/env bash
# The OpenAI-style video API against the official `openai` Python client (PyPI): a real
# `reel serve` on loopback with an API key, driven by scripts/openai_client.py. Called by
# .ci/run with the release binary its tests built (REEL_BIN); alone, it builds one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

PY_DIR=/var/tmp/reel-openai
if [ ! -e "$PY_DIR/openai/__init__.py" ]; then
  python3 -m pip install --quiet --target "$PY_DIR" "openai==2.*"
fi

source scripts/keyed_server.sh
reel_keyed_server openai-client
PYTHONPATH="$PY_DIR" python3 scripts/openai_client.py "$base" "$token"
