"""The peer's denoising alone, in-process: a 3-scene task's 20 guided DPM-Solver++(2M) steps,
wall and CPU time, three runs after a warm-up (torch threads: PEER_TORCH_THREADS, default all
cores). The figure beside reel's whole `reel generate` in docs/PERFORMANCE.md.

    source bench/peer/deps.sh && python3 bench/peer/denoise_time.py
"""
import time

from peer.generate import Generator

gen = Generator()
captions = ["a small red circle moving left on a black background"] * 3
gen.denoise(captions, 1, 2, 4.0)
for _ in range(3):
    wall, cpu = time.perf_counter(), time.process_time()
    gen.denoise(captions, 7, 20, 4.0)
    print(f"3 scenes x 20 steps: wall {time.perf_counter() - wall:.2f} s, "
          f"cpu {time.process_time() - cpu:.2f} s")
