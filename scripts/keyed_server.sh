# Starts a real `reel serve` on loopback with a fresh data dir, for the scripts that drive it
# from outside (schemathesis.sh, openai_client.sh, page_test.sh). Sourced after
# scripts/deps.sh. `reel_keyed_server NAME [--admin]` makes one API key first and sets $token;
# `reel_open_server` starts it open (no key). Both set $base and $reel_server, and stop the
# server and remove its data dir on exit; called again, they start one more server beside it
# (page_test.sh serves both kinds of model). The binary is $REEL_BIN (.ci/run passes the one
# its tests just built); unset, it is built here.
# shellcheck shell=bash

# Every server started, and its data dir, for the exit trap.
reel_servers=()
reel_datas=()

reel_bin_path() {
  reel_bin="${REEL_BIN:-}"
  if [ -z "$reel_bin" ]; then
    cargo build --release --bin reel
    reel_bin="$CARGO_TARGET_DIR/release/reel"
  fi
}

# Serves $reel_data (already made) on a free loopback port; any arguments go to `reel serve`.
reel_serve_data() {
  reel_log="$reel_data/server.log"
  local port=$((20000 + RANDOM % 20000))
  "$reel_bin" serve --port "$port" --data-dir "$reel_data" --post cpu "$@" >"$reel_log" 2>&1 &
  reel_server=$!
  reel_servers+=("$reel_server")
  reel_datas+=("$reel_data")
  # On a failure the servers' own errors go to the output: a 5xx says only "the server has
  # logged it". (`|| true`: a log without errors fails grep, which under set -e would end the
  # trap before the cleanup and replace the exit status.)
  trap 'rc=$?; for s in "${reel_servers[@]}"; do kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done
        [ $rc -eq 0 ] || for d in "${reel_datas[@]}"; do echo "--- reel serve: errors ($d)"; grep -a "ERROR" "$d/server.log" | tail -40 || true; done
        rm -rf "${reel_datas[@]}"' EXIT
  for _ in $(seq 1 100); do
    grep -q "reel is serving" "$reel_log" 2>/dev/null && break
    kill -0 "$reel_server" 2>/dev/null || { cat "$reel_log"; exit 1; }
    sleep 0.2
  done
  base="http://127.0.0.1:$port"
}

reel_keyed_server() {
  reel_bin_path
  reel_data=$(mktemp -d)
  token=$("$reel_bin" keys create --name "$1" "${@:2}" --data-dir "$reel_data" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  reel_serve_data
}

reel_open_server() {
  reel_bin_path
  reel_data=$(mktemp -d)
  reel_serve_data "$@"
}
