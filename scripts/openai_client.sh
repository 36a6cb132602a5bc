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

reel="${REEL_BIN:-}"
if [ -z "$reel" ]; then
  cargo build --release --bin reel
  reel="$CARGO_TARGET_DIR/release/reel"
fi
data=$(mktemp -d)
log="$data/server.log"
port=$((20000 + RANDOM % 20000))
token=$("$reel" keys create --name openai-client --data-dir "$data" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$reel" serve --port "$port" --data-dir "$data" --post cpu >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  grep -q "reel is serving" "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
PYTHONPATH="$PY_DIR" python3 scripts/openai_client.py "http://127.0.0.1:$port" "$token"
