#!/usr/bin/env python3
"""Cluster mode on one machine (stdlib only): scenes per second of 1, 2 and 3 processes
sharing its cores, side by side in rounds that alternate the configurations, medians.

Each configuration is started here from the release binary: `reel serve` for 1 process,
`reel cluster --local N` for more, one timely worker per process and the machine's cores
split between the processes' compute threads (at least one each). Each round posts `--tasks`
distinct default tasks (3 scenes, 20 steps) at once and waits for all. Per configuration:
makespan, scenes/s, scene-steps/s (sum of `reel_run_steps_total` over processes), the wall
time per scene-step against 1 process (the coordination overhead per denoise step when the
same cores are shared, with the placement of tasks by hash), where the steps ran, the bytes
process 0 received per scene denoised elsewhere (`reel_cluster_bytes_in_total`: finished
latents and step/preview reports, in timely's wire format), and process 0's own work per
scene (its tasks' `post_process` + `publish` + `encode` timings: decode, post-process, PNGs,
H.264), what bounds a cluster's throughput when the others have GPUs.

    cargo build --release
    python3 bench/cluster.py --reel target/release/reel --rounds 3
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from spine_figures import get, post


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(base):
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    steps = {int(p): float(v) for p, v in
             re.findall(r'^reel_run_steps_total\{process="(\d+)"\} (\S+)$', text, re.M)}
    bytes_in = sum(float(v) for v in
                   re.findall(r'^reel_cluster_bytes_in_total\{kind="\w+"\} (\S+)$', text, re.M))
    return steps, bytes_in


def start(reel, processes, data, cores):
    port = free_port()
    threads = str(max(1, cores // processes))
    args = ["--port", str(port), "--data-dir", data, "--compute-threads", threads,
            "--max-cpu-percent", "100", "--post", "cpu"]
    if processes == 1:
        cmd = [reel, "serve"] + args
    else:
        cmd = [reel, "cluster", "--local", str(processes),
               "--cluster-port", str(free_port() // 4 * 4 % 50000 + 10000)] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if get(base, "/readyz")["status"] == "ready":
                return proc, base
        except Exception:
            pass
        assert time.time() < deadline, f"{cmd} did not get ready"
        time.sleep(0.2)


def round_of(base, seeds):
    ids = [None] * len(seeds)

    def submit(i):
        ids[i] = post(base, {"prompt": "a red circle moves left, then a blue square grows, "
                                       "then a green triangle moves up",
                             "num_scenes": 3, "seed": seeds[i]})["id"]

    t0 = time.time()
    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    home_ms = []
    for id_ in ids:
        while True:
            task = get(base, f"/api/tasks/{id_}")
            if task["status"] in ("completed", "failed", "cancelled"):
                assert task["status"] == "completed", task
                break
            time.sleep(0.05)
        t = task["timings_ms"]
        home_ms.append(sum(t.get(k, 0) for k in ("post_process", "publish", "encode")) / 3)
    return time.time() - t0, statistics.median(home_ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reel", default="target/release/reel")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--processes", default="1,2,3")
    a = ap.parse_args()
    cores = os.cpu_count()
    configs = [int(n) for n in a.processes.split(",")]
    rows = {n: [] for n in configs}
    seed = int(time.time()) % 100_000 * 1000
    for r in range(a.rounds):
        for n in configs:
            data = tempfile.mkdtemp(prefix=f"reel-cluster-bench-{n}-")
            proc, base = start(a.reel, n, data, cores)
            try:
                seed += 100
                secs, home_ms = round_of(base, [seed + i for i in range(a.tasks)])
                steps, bytes_in = metrics(base)
            finally:
                proc.kill()
                proc.wait()
                shutil.rmtree(data, ignore_errors=True)
            scenes = 3 * a.tasks
            rows[n].append((secs, steps, bytes_in, home_ms))
            print(f"round {r + 1}, {n} process(es): {secs:.2f} s, steps by process "
                  f"{dict(sorted(steps.items()))}, {bytes_in:.0f} B in, process 0's work "
                  f"{home_ms:.0f} ms per scene", flush=True)
    scenes = 3 * a.tasks
    print(f"\n{a.tasks} distinct default tasks (3 scenes x 20 steps) at once, {cores} cores, "
          f"medians of {a.rounds} rounds\n")
    print("| processes | makespan s | scenes/s | scene-steps/s | ms per scene-step | "
          "vs 1 process | steps outside process 0 | bytes in per remote scene | "
          "process 0's work per scene ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_ms = None
    for n in configs:
        secs = statistics.median(x[0] for x in rows[n])
        total = statistics.median(sum(x[1].values()) for x in rows[n])
        outside = statistics.median(
            sum(v for p, v in x[1].items() if p != 0) / max(1, sum(x[1].values()))
            for x in rows[n])
        remote = [x[2] / (sum(v for p, v in x[1].items() if p != 0) / 20)
                  for x in rows[n] if any(p != 0 for p in x[1])]
        bytes_in = f"{statistics.median(remote):.0f}" if remote else "-"
        home_ms = statistics.median(x[3] for x in rows[n])
        ms = secs * 1000 / total
        base_ms = base_ms or ms
        print(f"| {n} | {secs:.2f} | {scenes / secs:.2f} | {total / secs:.1f} | {ms:.2f} | "
              f"{ms / base_ms:.2f}x | {outside:.0%} | {bytes_in} | {home_ms:.0f} |")


if __name__ == "__main__":
    main()
