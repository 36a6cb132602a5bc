#!/usr/bin/env bash
# Serves the peer: Redis (broker, result backend and prompt cache) on a free loopback port,
# one Celery worker, then uvicorn with the FastAPI app on --port, until SIGTERM/SIGINT or any
# of them exits; everything it started is stopped by PID on the way out.
#
#   bench/peer/serve.sh --port 8100 --data-dir /tmp/peer [--api-workers N]
#
# REEL_BIN names the reel binary whose `plan` the worker calls (default target/release/reel).
set -euo pipefail
port=8100 data=/tmp/reel-peer api_workers="${PEER_API_WORKERS:-1}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --data-dir) data="$2"; shift 2 ;;
    --api-workers) api_workers="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/deps.sh"
mkdir -p "$data"
export PEER_DATA_DIR="$data"
export REEL_BIN="${REEL_BIN:-${CARGO_TARGET_DIR:-$PEER_HERE/../../target}/release/reel}"

pids=()
stop() {
  trap - TERM INT EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop; exit 0' TERM INT
trap stop EXIT

redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$data" --logfile "$data/redis.log" --maxmemory 256mb --maxmemory-policy allkeys-lru &
pids+=($!)
export PEER_REDIS_URL="redis://127.0.0.1:$redis_port"
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# One worker process using every core for torch (see README: concurrency 1 x all threads); once
# its model is loaded it drops to the lowest CPU priority (nice 19) so the API keeps answering
# while it computes.
rm -f "$data/worker.ready"
PEER_READY_FILE="$data/worker.ready" python3 -m celery -q -A peer.worker worker \
  --pool prefork --concurrency "${PEER_CONCURRENCY:-1}" --loglevel WARNING \
  --without-gossip --without-mingle --without-heartbeat >"$data/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq "$((${PEER_START_SECS:-300} * 10))"); do [ -e "$data/worker.ready" ] && break; sleep 0.1; done
[ -e "$data/worker.ready" ] || { echo "the worker did not start:" >&2; tail -n 30 "$data/worker.log" >&2; exit 1; }

python3 -m uvicorn peer.app:app --host 127.0.0.1 --port "$port" --workers "$api_workers" \
  --loop uvloop --http httptools --no-access-log --log-level warning --backlog 4096 &
pids+=($!)
wait -n
echo "a peer process exited" >&2
exit 1
