"""Python `reel.Model.generate` against the Rust call behind it, on the same scene, in one run.

    scripts/python_test.sh --wheel-only   # then, with the wheel installed as that script does:
    PYTHONPATH=$CARGO_TARGET_DIR/python-site:/var/tmp/reel-python-tools \
        python3 bench/python/python_overhead.py --repeats 15

Each repeat times `generate` from Python (argument conversion, releasing the GIL, the numpy
array) and `_rust_generate_seconds`, the same `kernels::Model::generate` call timed inside Rust,
in alternating order. Reports both medians and the overhead of the median Python call over
the median Rust call (docs/PYTHON.md).
"""

import argparse
import platform
import statistics
import time

import reel

parser = argparse.ArgumentParser()
parser.add_argument("--repeats", type=int, default=15)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--caption", default="a small red circle moving left on a black background")
args = parser.parse_args()

model = reel.Model.load()
call = dict(seed=0, steps=args.steps, guidance=4.0)
for _ in range(2):  # warm-up: caches, thread pool
    model.generate(args.caption, **call)
    model._rust_generate_seconds(args.caption, **call)

py, rust = [], []
for i in range(args.repeats):
    for side in (("py", "rust") if i % 2 == 0 else ("rust", "py")):
        if side == "py":
            t = time.perf_counter()
            frames = model.generate(args.caption, **call)
            py.append(time.perf_counter() - t)
            del frames
        else:
            rust.append(model._rust_generate_seconds(args.caption, **call))

mp, mr = statistics.median(py), statistics.median(rust)
print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, model {model.id}, {model.backend}")
print(f"scene: {args.caption!r}, {args.steps} steps, {args.repeats} repeats each, alternating")
print(f"median Python generate: {mp * 1e3:.3f} ms")
print(f"median Rust call:       {mr * 1e3:.3f} ms")
print("per repeat, Python - Rust (ms):", " ".join(f"{(p - r) * 1e3:+.2f}" for p, r in zip(py, rust)))
print(f"overhead: {(mp / mr - 1) * 100:+.2f}%")
