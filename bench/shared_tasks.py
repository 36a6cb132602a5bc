#!/usr/bin/env python3
"""Ten identical tasks in flight at once against ten distinct ones, against a running
`reel serve` or `reel cluster` (stdlib only): makespan and scene-steps denoised (the sum of
`reel_run_steps_total` over processes, from /metrics) per round, rounds alternating, medians and their ratio. Identical tasks share
one sampling run per scene (see `pipeline/src/dataflow/denoise.rs`); each round uses fresh
seeds so that the finished-result cache never answers.

    cargo build --release && target/release/reel serve --data-dir /tmp/reel-shared &
    python3 bench/shared_tasks.py --base http://127.0.0.1:8000 --rounds 3
"""
import argparse
import statistics
import threading
import time
import urllib.request

from spine_figures import get, post

PROMPT = "a small red circle moving left, then a blue square grows, then a green triangle"


def denoise_steps(base):
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    return sum(int(float(line.split()[1])) for line in text.splitlines()
               if line.startswith("reel_run_steps_total{"))


def round_of(base, seeds, steps):
    """(makespan s, scene-steps denoised) of one task per seed, all posted at once."""
    before = denoise_steps(base)
    ids = [None] * len(seeds)
    t0 = time.time()

    def submit(i):
        ids[i] = post(base, {"prompt": PROMPT, "num_scenes": 3, "seed": seeds[i],
                             "steps": steps})["id"]

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for id_ in ids:
        while True:
            task = get(base, f"/api/tasks/{id_}")
            if task["status"] in ("completed", "failed", "cancelled"):
                assert task["status"] == "completed", task
                assert not task["cached"], task
                break
            time.sleep(0.05)
    return time.time() - t0, denoise_steps(base) - before


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    seed = int(time.time()) % 1_000_000 * 1000
    rows = {"identical": [], "distinct": []}
    for r in range(args.rounds):
        for kind in ("identical", "distinct"):
            seed += 100
            seeds = [seed] * args.tasks if kind == "identical" else [seed + i for i in range(args.tasks)]
            secs, steps = round_of(args.base, seeds, args.steps)
            rows[kind].append((secs, steps))
            print(f"round {r + 1} {kind}: {secs:.2f} s, {steps} scene-steps", flush=True)
    med = {k: (statistics.median(s for s, _ in v), statistics.median(n for _, n in v))
           for k, v in rows.items()}
    print(f"\n| {args.tasks} tasks of 3 scenes, {args.steps} steps | median makespan s | median scene-steps |")
    print("|---|---:|---:|")
    for k in ("identical", "distinct"):
        print(f"| {k} | {med[k][0]:.2f} | {med[k][1]:.0f} |")
    print(f"\ndistinct / identical makespan: {med['distinct'][0] / med['identical'][0]:.2f}")


if __name__ == "__main__":
    main()
