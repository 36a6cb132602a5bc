"""`reel.Pipeline` (in-process) throughput against `reel serve`'s (HTTP) for the same tasks,
side by side in one run.

    PYTHONPATH=$CARGO_TARGET_DIR/python-site:/var/tmp/reel-python-tools \
        python3 bench/python/pipeline_vs_http.py --bin $CARGO_TARGET_DIR/release/reel --tasks 6 --rounds 3

Both run the same engine settings (1 worker, batches of 8, CPU post-processing, no CPU
ceiling, the built-in model) in one process each, alive for the whole run. A round submits
--tasks tasks (2 scenes, 4 steps, 64 px, 0.5 s at 8 fps; seeds differ per round, so nothing
comes from the result cache) to one of them and waits for all to end, polling each task's
status every 20 ms (GET /api/tasks/{id} over HTTP, the stored record in-process); rounds
alternate between the two. Reports the median tasks per second of each (docs/PYTHON.md).
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import reel

parser = argparse.ArgumentParser()
parser.add_argument("--bin", required=True, help="the release `reel` binary")
parser.add_argument("--tasks", type=int, default=6)
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()

TASK = dict(num_scenes=2, steps=4, size=64, fps=8, seconds_per_scene=0.5)
FINAL = {"completed", "failed", "cancelled"}
POLL = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def run_http(base, seeds):
    start = time.perf_counter()
    ids = [http("POST", f"{base}/api/tasks", dict(TASK, prompt=PROMPT, seed=s))["id"] for s in seeds]
    pending = set(ids)
    while pending:
        time.sleep(POLL)
        for i in list(pending):
            status = http("GET", f"{base}/api/tasks/{i}")["status"]
            if status in FINAL:
                assert status == "completed", status
                pending.discard(i)
    return len(ids) / (time.perf_counter() - start)


def run_inprocess(pipeline, seeds):
    start = time.perf_counter()
    tasks = [pipeline.submit(PROMPT, seed=s, **TASK) for s in seeds]
    pending = set(range(len(tasks)))
    while pending:
        time.sleep(POLL)
        for i in list(pending):
            status = tasks[i].status
            if status in FINAL:
                assert status == "completed", status
                pending.discard(i)
    return len(tasks) / (time.perf_counter() - start)


PROMPT = "a red circle moves left, then a blue square grows"
with tempfile.TemporaryDirectory() as http_dir:
    port = free_port()
    server = subprocess.Popen(
        [args.bin, "serve", "--port", str(port), "--data-dir", http_dir, "--workers", "1",
         "--max-batch", "8", "--post", "cpu", "--max-cpu-percent", "100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        pipeline = reel.Pipeline(workers=1, max_batch=8, post="cpu", previews=False)
        # One untimed round each: start-up costs (thread pools, first allocations).
        run_http(base, [10_000 + i for i in range(2)])
        run_inprocess(pipeline, [10_000 + i for i in range(2)])
        rates = {"http": [], "inprocess": []}
        for r in range(args.rounds):
            seeds = [r * 100 + i for i in range(args.tasks)]
            for side in (("http", "inprocess") if r % 2 == 0 else ("inprocess", "http")):
                rate = run_http(base, seeds) if side == "http" else run_inprocess(pipeline, seeds)
                rates[side].append(rate)
    finally:
        server.terminate()
        server.wait()

print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.rounds} rounds of {args.tasks} tasks {TASK}")
for side, r in rates.items():
    print(f"{side:9}: median {statistics.median(r):.3f} tasks/s  (rounds: {', '.join(f'{x:.3f}' for x in r)})")
print(f"in-process / HTTP: {statistics.median(rates['inprocess']) / statistics.median(rates['http']):.3f}")
