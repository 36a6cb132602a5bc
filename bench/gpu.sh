#!/usr/bin/env bash
# The CUDA backend on a GPU machine: NVRTC compile check, CUDA-vs-CPU parity tests, then
# throughput (frames x steps per second at batch 1, 8, 32) of the CUDA backend against
# PyTorch eager and torch.compile on the same weights (model/checkpoint), in one run.
#
# Two halves, because the GPU machine has no Rust toolchain and no network:
#   bench/gpu.sh build   here (x86-64 with cargo): builds the two CUDA test binaries and the
#                        benchmark (kernels/examples/cuda_throughput.rs) into target/gpu/,
#                        stripped (a few MB: small enough to carry);
#   bench/gpu.sh run     there, in the repository root with target/gpu carried: runs them and
#                        bench/gpu_torch.py, writing under $OUT (default ./gpu-results):
#                        device.txt, compile.log, parity.log, bench.jsonl, summary.txt.
# With the device tool: run(command="bench/gpu.sh run", carry=["target/gpu"], timeout_s=600).
# `run` exits non-zero if any stage failed, after running all of them; the stage timeouts add
# up to under 10 minutes, the device tool's limit for one command.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/gpu"
BATCHES="${BATCHES:-1,8,32}"

build() {
  set -e
  cd "$ROOT"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  mkdir -p "$BIN" && rm -f "$BIN"/cuda_*
  # cargo prints the path of every artifact it builds; keep the executables.
  cargo build --release -p kernels --example cuda_throughput \
      --tests --message-format=json-render-diagnostics \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' \
    | while read -r exe; do
        case "$(basename "$exe")" in
          cuda_compile-*) strip -o "$BIN/cuda_compile" "$exe" ;;
          cuda_parity-*) strip -o "$BIN/cuda_parity" "$exe" ;;
          cuda_throughput) strip -o "$BIN/cuda_throughput" "$exe" ;;
        esac
      done
  for b in cuda_compile cuda_parity cuda_throughput; do
    [ -x "$BIN/$b" ] || { echo "build: $b was not built" >&2; exit 1; }
  done
  ls -la "$BIN"
}

# cudarc opens libnvrtc and libcublas through the dynamic loader by unversioned (or .so.12)
# names. Where the loader finds neither (CUDA 13 names them .so.13), link the first copy found
# (the toolkit's first: it matches the driver, and PTX from a newer NVRTC would not load) under
# the plain name, and put its own directory on the path too (NVRTC loads its builtins there).
loadable() { python3 -c "import ctypes, sys; [ctypes.CDLL(n) for n in sys.argv[1:]]" "$@" 2>/dev/null; }
find_cuda_libs() {
  local links name dir found
  links="$(mktemp -d)"
  for name in nvrtc cublas; do
    if loadable "lib${name}.so" || loadable "lib${name}.so.12"; then
      echo "lib${name}: found by the loader"
      continue
    fi
    found=""
    for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
        /usr/lib/x86_64-linux-gnu "$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)/nvidia"; do
      found="$(find "$dir" -name "lib${name}.so.[0-9]*" -not -name "*.alt.*" 2>/dev/null | sort | head -n 1)"
      [ -n "$found" ] && break
    done
    if [ -n "$found" ]; then
      ln -sf "$found" "$links/lib${name}.so"
      export LD_LIBRARY_PATH="$(dirname "$found"):${LD_LIBRARY_PATH:-}"
      echo "lib${name}: $found (linked as lib${name}.so)"
    else
      echo "lib${name}: not found" >&2
    fi
  done
  export LD_LIBRARY_PATH="$links:${LD_LIBRARY_PATH:-}"
}

stage() {  # stage NAME SECONDS LOGFILE COMMAND...: runs COMMAND under a timeout, logged
  local name="$1" secs="$2" log="$3"; shift 3
  echo "=== $name"
  if ! timeout "$secs" "$@" 2>&1 | tee "$log"; then
    echo "=== $name FAILED" | tee -a "$log"
    status=1
  fi
}

run() {
  cd "$ROOT"
  OUT="${OUT:-$ROOT/gpu-results}"
  mkdir -p "$OUT"
  status=0
  for b in cuda_compile cuda_parity cuda_throughput; do
    [ -x "$BIN/$b" ] || { echo "run: $BIN/$b missing: run 'bench/gpu.sh build' first and carry target/gpu" >&2; exit 1; }
  done
  # Not in a pipeline: find_cuda_libs exports LD_LIBRARY_PATH for the stages below.
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/device.txt" 2>&1
  find_cuda_libs >>"$OUT/device.txt" 2>&1
  cat "$OUT/device.txt"
  export REEL_CHECKPOINT="$ROOT/model/checkpoint" REEL_REQUIRE_CUDA=1 PYTHONUNBUFFERED=1
  # A private PTX cache: the first backend compiles, the later ones read it.
  export XDG_CACHE_HOME="$(mktemp -d)"

  stage "NVRTC compile" 60 "$OUT/compile.log" "$BIN/cuda_compile" --nocapture
  stage "CUDA vs CPU parity" 150 "$OUT/parity.log" "$BIN/cuda_parity" --test-threads=1 --nocapture
  stage "Rust CUDA throughput" 90 "$OUT/rust.jsonl" "$BIN/cuda_throughput" \
      --checkpoint "$REEL_CHECKPOINT" --batches "$BATCHES"
  stage "PyTorch throughput" 270 "$OUT/torch.jsonl" python3 "$ROOT/bench/gpu_torch.py" \
      --checkpoint "$REEL_CHECKPOINT" --batches "$BATCHES"
  grep -h '^{' "$OUT/rust.jsonl" "$OUT/torch.jsonl" > "$OUT/bench.jsonl"
  rm -f "$OUT/rust.jsonl" "$OUT/torch.jsonl"

  python3 - "$OUT/bench.jsonl" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
impls = list(dict.fromkeys(r["impl"] for r in rows))
print(f"{'batch':>5} {'impl':<28} {'step ms':>9} {'pass ms':>9} {'frames*steps/s':>15} {'vs torch-eager':>15}")
for b in sorted({r["batch"] for r in rows}):
    at = {r["impl"]: r for r in rows if r["batch"] == b}
    eager = at.get("torch-eager")
    for i in impls:
        if i in at:
            r = at[i]
            ratio = f"{eager['step_ms'] / r['step_ms']:.2f}x" if eager else "-"
            print(f"{b:>5} {i:<28} {r['step_ms']:>9.3f} {r['pass_ms']:>9.3f} {r['frame_steps_per_s']:>15.0f} {ratio:>15}")
EOF
  exit "$status"
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: bench/gpu.sh build | run" >&2; exit 2 ;;
esac
