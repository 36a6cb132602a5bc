#!/usr/bin/env bash
# Everything reel does on a lent GPU machine, as one prepared command:
#   1. trains the model (model/train.py, bf16, for $TRAIN_SECS seconds; 0 skips it) and exports
#      it, while the NVRTC compile check, the CUDA-vs-CPU parity tests and Wan2.1's kernel
#      parity tests (kernels/tests/wan_cuda_*.rs) share the GPU;
#   2. then, with the GPU to themselves: throughput (frames x steps per second at batch 1, 8,
#      32) of the CUDA backend (default paths, then TF32 implicit-GEMM convolutions) against
#      PyTorch eager and torch.compile on the same weights;
#      post-processing frames per second, wgpu on the GPU vs the CPU path; and the default
#      3-scene task end to end through `reel serve --device cuda` (bench/spine_figures.py).
#
# Two halves, because the GPU machine has no Rust toolchain and no network:
#   bench/gpu.sh build   here (x86-64 with cargo): builds the CUDA test binaries, the benchmark
#                        (kernels/examples/cuda_throughput.rs), `reel` and `post_throughput`
#                        into target/gpu/, stripped (about 35 MB: small enough to carry);
#   bench/gpu.sh run     there, in the repository root with target/gpu (and .gl, the Vulkan
#                        loader packages of the device README) carried; writes under $OUT
#                        (default ./gpu-results) at most 8 files: device.txt, gpu.log (every
#                        stage), train.log, checkpoint.tar (model/checkpoint + golden file of
#                        the trained model), bench.jsonl, post.txt, e2e.txt, summary.txt.
# With the device tool: run(command="TRAIN_SECS=270 bench/gpu.sh run", carry=["target/gpu", ".gl"]).
# TORCH=0 leaves out the PyTorch comparison (up to 2 minutes) when only reel's figures are wanted.
# `run` exits non-zero if any stage failed, after running all of them; TRAIN_SECS plus the
# stage timeouts stay under 10 minutes, the device tool's limit for one command.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/gpu"
BATCHES="${BATCHES:-1,8,32}"
TRAIN_SECS="${TRAIN_SECS:-0}"
TORCH="${TORCH:-1}"
WAN_TESTS="wan_cuda_gemm wan_cuda_attention wan_cuda_norm wan_cuda_step wan_cuda_vae"
BINARIES="cuda_compile cuda_parity cuda_throughput reel post_throughput $WAN_TESTS"

build() {
  set -e
  cd "$ROOT"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  mkdir -p "$BIN" && rm -f "$BIN"/cuda_* "$BIN"/wan_cuda_*
  # cargo prints the path of every artifact it builds; keep the executables.
  cargo build --release -p kernels --example cuda_throughput \
      --tests --message-format=json-render-diagnostics \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' \
    | while read -r exe; do
        case "$(basename "$exe")" in
          cuda_compile-*) strip -o "$BIN/cuda_compile" "$exe" ;;
          cuda_parity-*) strip -o "$BIN/cuda_parity" "$exe" ;;
          cuda_throughput) strip -o "$BIN/cuda_throughput" "$exe" ;;
          wan_cuda_*-*) strip -o "$BIN/$(basename "$exe" | sed 's/-[0-9a-f]*$//')" "$exe" ;;
        esac
      done
  cargo build --release -p reel --bin reel -p bench --bin post_throughput
  strip -o "$BIN/reel" "$CARGO_TARGET_DIR/release/reel"
  strip -o "$BIN/post_throughput" "$CARGO_TARGET_DIR/release/post_throughput"
  for b in $BINARIES; do
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

stage() {  # stage NAME SECONDS COMMAND...: runs COMMAND under a timeout, logged to gpu.log
  local name="$1" secs="$2"; shift 2
  echo "=== $name ($(date +%T))" | tee -a "$OUT/gpu.log"
  if ! timeout "$secs" "$@" 2>&1 | tee -a "$OUT/gpu.log"; then
    echo "=== $name FAILED" | tee -a "$OUT/gpu.log"
    status=1
  fi
}

# Vulkan for wgpu: the loader packages unpacked (device README), the NVIDIA ICD named.
vulkan() {
  local f icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  for f in "$ROOT"/.gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
  ldconfig
  if [ -e "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
  XDG_RUNTIME_DIR="$(mktemp -d)"
  export XDG_RUNTIME_DIR
  echo "vulkan: loader $(ldconfig -p | grep -c libvulkan) entries, ICD ${VK_DRIVER_FILES:-default}"
}

train() {  # trains in $RUN for TRAIN_SECS, then exports the checkpoint to $CKPT
  local args=(--run "$RUN" --steps 1000000 --batch 256 --lr 1e-3 --ema 0.999 --save-every 1000 --threads 8)
  local t0=$SECONDS
  python3 "$ROOT/model/train.py" "${args[@]}" --max-seconds "$TRAIN_SECS" --amp
  # bf16 autocast failing at once should not cost the run: fall back to fp32 (TF32)
  if [ ! -e "$RUN/denoiser.pt" ] && [ $((SECONDS - t0)) -lt 60 ]; then
    echo "train: the bf16 run failed early; training in fp32"
    python3 "$ROOT/model/train.py" "${args[@]}" --max-seconds $((TRAIN_SECS - SECONDS + t0))
  fi
  python3 "$ROOT/model/export.py" --run "$RUN" --out "$CKPT" --golden "$CKPT/golden.safetensors" --threads 8 &&
    tar -C "$CKPT" -cf "$OUT/checkpoint.tar" .
}

e2e() {  # the default 3-scene task through a real `reel serve --device cuda` (a stage of run)
  local data pid rc port=8177
  data="$(mktemp -d)"
  "$BIN/reel" serve --device "${E2E_DEVICE:-cuda}" --post auto --model "$REEL_CHECKPOINT" --port $port --data-dir "$data" \
    >"$data/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
  curl -s "http://127.0.0.1:$port/readyz"; echo
  python3 "$ROOT/bench/spine_figures.py" --base "http://127.0.0.1:$port" --repeats 5 --concurrent 10
  rc=$?
  # The GPU as monitoring sees it (NVML): /api/stats' "gpu" and the reel_gpu_* gauges.
  curl -s "http://127.0.0.1:$port/api/stats" | python3 -c 'import json,sys; print("gpu:", json.load(sys.stdin)["gpu"])'
  curl -s "http://127.0.0.1:$port/metrics" | grep '^reel_gpu_'
  kill $pid; wait $pid
  grep -E "WARN|ERROR|device|adapter|panick" "$data/serve.log" | tail -n 20
  return $rc
}

run() {
  cd "$ROOT"
  OUT="${OUT:-$ROOT/gpu-results}"
  mkdir -p "$OUT"
  status=0
  for b in $BINARIES; do
    [ -x "$BIN/$b" ] || { echo "run: $BIN/$b missing: run 'bench/gpu.sh build' first and carry target/gpu" >&2; exit 1; }
  done
  # Not in a pipeline: find_cuda_libs and vulkan export variables for the stages below.
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u; } >"$OUT/device.txt" 2>&1
  find_cuda_libs >>"$OUT/device.txt" 2>&1
  vulkan >>"$OUT/device.txt" 2>&1
  cat "$OUT/device.txt"
  export REEL_CHECKPOINT="$ROOT/model/checkpoint" PYTHONUNBUFFERED=1
  # A private PTX cache: the first backend compiles, the later ones read it.
  XDG_CACHE_HOME="$(mktemp -d)"
  export XDG_CACHE_HOME

  local trainer=""
  if [ "$TRAIN_SECS" -gt 0 ]; then
    RUN="$(mktemp -d)" CKPT="$(mktemp -d)"
    train >"$OUT/train.log" 2>&1 &
    trainer=$!
  fi
  stage "NVRTC compile" 30 "$BIN/cuda_compile" --nocapture
  stage "CUDA vs CPU parity" 120 "$BIN/cuda_parity" --include-ignored --test-threads=1 --nocapture
  # Wan2.1's kernels (kernels/src/cuda/wan/) against f32 references, first run on a GPU.
  for t in $WAN_TESTS; do
    stage "Wan2.1 CUDA parity: $t" 20 "$BIN/$t" --include-ignored --test-threads=1 --nocapture
  done
  if [ -n "$trainer" ]; then
    wait "$trainer" || status=1
    tail -n 3 "$OUT/train.log"
    # benchmark what was just trained, when its export worked
    if [ -e "$CKPT/model.safetensors" ]; then REEL_CHECKPOINT="$CKPT"; fi
  fi
  echo "checkpoint: $REEL_CHECKPOINT" | tee -a "$OUT/gpu.log"

  # --resident adds the step with latents kept on the device (Model::with_resident_steps).
  stage "Rust CUDA throughput" 60 "$BIN/cuda_throughput" --checkpoint "$REEL_CHECKPOINT" --batches "$BATCHES" --resident
  # The implicit-GEMM TF32 convolutions (CudaOptions), side by side with the default above.
  stage "Rust CUDA throughput, TF32 convolutions" 45 "$BIN/cuda_throughput" --checkpoint "$REEL_CHECKPOINT" \
      --batches "$BATCHES" --conv tf32 --temporal tf32
  if [ "$TORCH" != 0 ]; then
    stage "PyTorch throughput" 100 python3 "$ROOT/bench/gpu_torch.py" \
        --checkpoint "$REEL_CHECKPOINT" --batches "$BATCHES" --modes eager,compile
  fi
  grep -h '^{.*"impl"' "$OUT/gpu.log" > "$OUT/bench.jsonl"
  stage "post-processing" 60 "$BIN/post_throughput"
  sed -n '/=== post-processing/,$p' "$OUT/gpu.log" > "$OUT/post.txt"
  stage "default task end to end" 75 "$ROOT/bench/gpu.sh" e2e
  sed -n '/=== default task end to end/,$p' "$OUT/gpu.log" > "$OUT/e2e.txt"

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
  e2e) e2e ;;  # a stage of `run`, which exports REEL_CHECKPOINT
  *) echo "usage: bench/gpu.sh build | run" >&2; exit 2 ;;
esac
