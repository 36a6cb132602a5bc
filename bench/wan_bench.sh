#!/usr/bin/env bash
# Wan2.1 on reel's CPU kernels against diffusers 0.42.1 (PyTorch), same thread count on both
# sides, each configuration and side in its own process (so each peak RSS is its own):
#
#   bench/wan_bench.sh [tiny] [mid] [1.3b]     (default: all three)
#
# Environment: THREADS (2), RUNS (5; timed runs per measurement after one warm-up),
# RUNS_1_3B (3), WAN_PY (the Python packages: /var/tmp/reel-wan-py when present, else a venv
# made here from model/wan/requirements.txt), MID_DIR (the mid-size checkpoint,
# /var/tmp/reel-wan-mid, written by `wan_torch.py make-mid` when missing), OUT (the results,
# target/wan-bench). Prints the Markdown table of docs/WAN.md's benchmark section.
set -euo pipefail

cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
RUNS=${RUNS:-5}
RUNS_1_3B=${RUNS_1_3B:-3}
MID_DIR=${MID_DIR:-/var/tmp/reel-wan-mid}
OUT=${OUT:-target/wan-bench}
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(tiny mid 1.3b)

# The Python side: the --target directory make_tiny.py's requirements went into, or a venv.
if [ -z "${WAN_PY:-}" ] && [ -d /var/tmp/reel-wan-py ]; then
    WAN_PY=/var/tmp/reel-wan-py
fi
if [ -n "${WAN_PY:-}" ]; then
    py() { PYTHONPATH="$WAN_PY" OMP_NUM_THREADS=$THREADS python3 "$@"; }
else
    VENV=${VENV:-target/wan-venv}
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -r model/wan/requirements.txt
    fi
    py() { OMP_NUM_THREADS=$THREADS "$VENV/bin/python" "$@"; }
fi

cargo build --release -p bench --bin wan_vs_torch
BIN=${CARGO_TARGET_DIR:-target}/release/wan_vs_torch
reel() { RAYON_NUM_THREADS=$THREADS "$BIN" "$@"; }

mkdir -p "$OUT"
for config in "${CONFIGS[@]}"; do
    case $config in
        tiny)
            reel --config tiny --runs "$RUNS" >"$OUT/tiny-reel.jsonl"
            py bench/wan_torch.py run --config tiny --runs "$RUNS" --threads "$THREADS" \
                >"$OUT/tiny-torch.jsonl"
            ;;
        mid)
            [ -f "$MID_DIR/model_index.json" ] || py bench/wan_torch.py make-mid "$MID_DIR"
            reel --config mid --dir "$MID_DIR" --runs "$RUNS" >"$OUT/mid-reel.jsonl"
            py bench/wan_torch.py run --config mid --dir "$MID_DIR" --runs "$RUNS" \
                --threads "$THREADS" >"$OUT/mid-torch.jsonl"
            ;;
        1.3b)
            reel --config 1.3b --runs "$RUNS_1_3B" >"$OUT/1.3b-reel.jsonl"
            for dtype in f32 bf16; do
                py bench/wan_torch.py run --config 1.3b --dtype $dtype --runs "$RUNS_1_3B" \
                    --threads "$THREADS" >"$OUT/1.3b-torch-$dtype.jsonl"
            done
            ;;
        *)
            echo "unknown configuration $config (tiny, mid, 1.3b)" >&2
            exit 2
            ;;
    esac
done
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
    "threads $THREADS; $(date -u +%F); commit $(git rev-parse --short HEAD)"
py bench/wan_torch.py report "$OUT"/*.jsonl
