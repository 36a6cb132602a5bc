#!/usr/bin/env bash
# The peer's smoke test (bench/peer/: FastAPI + Celery + Redis + PyTorch, the stack reel is
# compared with in docs/PEER_REPORT.md): installs what it needs when missing (redis-server from
# apt, the Python packages into /var/tmp/reel-peer-py: bench/peer/deps.sh), starts Redis, the
# API and one worker (bench/peer/serve.sh), checks one task through to a playable H.264 MP4,
# a repeated request served from the Redis cache, the list, the counts and a rejected request,
# then stops everything by PID. Called by .ci/run with the release binary the tests built
# (REEL_BIN: the worker plans with its `plan`). Bounded: gives up after PEER_SMOKE_SECS (300).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source bench/peer/deps.sh
export REEL_BIN="${REEL_BIN:-$CARGO_TARGET_DIR/release/reel}"
[ -x "$REEL_BIN" ] || { echo "no reel binary at $REEL_BIN: cargo build --release first" >&2; exit 1; }

dir="$(mktemp -d /tmp/reel-peer-smoke.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
bench/peer/serve.sh --port "$port" --data-dir "$dir/data" >"$dir/serve.log" 2>&1 &
peer=$!
finish() {
  kill -TERM "$peer" 2>/dev/null || true
  wait "$peer" 2>/dev/null || true
  rm -rf "$dir"
}
trap finish EXIT
fail() {
  echo "peer smoke test: $*" >&2
  tail -n 40 "$dir/serve.log" "$dir/data/worker.log" >&2 || true
  exit 1
}
deadline=$((SECONDS + ${PEER_SMOKE_SECS:-300}))
until curl -fsS "$base/healthz" >/dev/null 2>&1; do
  kill -0 "$peer" 2>/dev/null || fail "the peer exited before it answered"
  [ $SECONDS -lt $deadline ] || fail "no answer from /healthz"
  sleep 0.5
done
field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

body='{"prompt": "a small red circle moving left on a black background", "num_scenes": 2, "steps": 4, "seed": 3, "size": 64}'
created="$(curl -fsS -H 'content-type: application/json' -d "$body" "$base/api/tasks")"
id="$(field 'v["id"]' <<<"$created")"
while :; do
  status="$(curl -fsS "$base/api/tasks/$id" | field 'v["status"]')"
  [ "$status" = completed ] && break
  [ "$status" = failed ] && fail "task $id failed: $(curl -fsS "$base/api/tasks/$id")"
  [ $SECONDS -lt $deadline ] || fail "task $id not done in time (status $status)"
  sleep 0.5
done
task="$(curl -fsS "$base/api/tasks/$id")"
[ "$(field 'len(v["plan"])' <<<"$task")" = 2 ] || fail "no 2-scene plan: $task"
curl -fsS -o "$dir/video.mp4" "$base/api/tasks/$id/video"
probe="$(ffprobe -v error -select_streams v:0 -count_frames \
  -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$dir/video.mp4")"
# 2 scenes x 2 s x 24 fps at 64 px, H.264.
[ "$probe" = "h264,64,64,96" ] || fail "unexpected video: $probe"
again="$(curl -fsS -H 'content-type: application/json' -d "$body" "$base/api/tasks")"
[ "$(field 'v["status"], v["cached"]' <<<"$again")" = "('completed', True)" ] || fail "not a cache hit: $again"
[ "$(curl -fsS "$base/api/tasks?limit=5" | field 'len(v["tasks"])')" = 2 ] || fail "the list does not hold both tasks"
page="$(curl -fsS "$base/api/tasks?limit=1")"
[ "$(field '[t["id"] for t in v["tasks"]], v["next_cursor"]' <<<"$page")" = "([2], 2)" ] || fail "first page: $page"
[ "$(curl -fsS "$base/api/tasks?limit=1&cursor=2" | field '[t["id"] for t in v["tasks"]]')" = "[1]" ] || fail "the second page is not task 1"
[ "$(curl -fsS "$base/api/stats" | field 'v["tasks"]["completed"]')" = 2 ] || fail "the counts are wrong"
code="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d '{"prompt": "x", "num_scenes": 99}' "$base/api/tasks")"
[ "$code" = 400 ] || fail "an out-of-range num_scenes answered $code"
code="$(curl -s -o /dev/null -w '%{http_code}' "$base/api/tasks/999")"
[ "$code" = 404 ] || fail "a missing task answered $code"
echo "peer smoke test passed: task $id -> $probe, a cache hit, list and pages, counts, 400, 404 ($SECONDS s)"
