#!/usr/bin/env python3
"""Serving-spine figures against a running `reel serve` (stdlib only):
wall time of the default 3-scene task, time to its first streamed frame (SSE), and the
throughput of 10 concurrent default tasks against one.

    cargo run --release -- serve --data-dir /tmp/reel-figures &
    python3 bench/spine_figures.py --base http://127.0.0.1:8000
"""
import argparse
import json
import statistics
import threading
import time
import urllib.request


def post(base, body):
    req = urllib.request.Request(base + "/api/tasks", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def get(base, path):
    return json.load(urllib.request.urlopen(base + path))


def run_task(base, seed):
    """(seconds to completion, seconds to the first `frame` event) of one default task."""
    t0 = time.time()
    task = post(base, {"prompt": "测试视频", "num_scenes": 3, "seed": seed})
    first = None
    with urllib.request.urlopen(f"{base}/api/tasks/{task['id']}/events") as events:
        for line in events:
            if first is None and line.replace(b" ", b"").startswith(b"event:frame"):
                first = time.time() - t0
            if line.replace(b" ", b"").startswith(b"event:done"):
                break
    status = get(base, f"/api/tasks/{task['id']}")
    assert status["status"] == "completed", status
    return time.time() - t0, first


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", default="http://127.0.0.1:8000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=10)
    a = ap.parse_args()
    singles = [run_task(a.base, 1000 + i) for i in range(a.repeats)]
    wall = statistics.median(s[0] for s in singles)
    first = statistics.median(s[1] for s in singles)
    results = []
    t0 = time.time()
    threads = [threading.Thread(target=lambda i=i: results.append(run_task(a.base, 2000 + i)))
               for i in range(a.concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    makespan = time.time() - t0
    print(json.dumps({
        "single_task_wall_s_median": round(wall, 2),
        "first_frame_s_median": round(first, 2),
        f"{a.concurrent}_concurrent_makespan_s": round(makespan, 2),
        "throughput_ratio_concurrent_vs_single": round(a.concurrent / makespan * wall, 2),
        "concurrent_first_frame_s_median": round(statistics.median(r[1] for r in results), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
