"""PyTorch side of `cargo run --release -p bench --bin denoiser_throughput`.

Times one classifier-free-guided denoiser forward pass (2 * batch clips) of the exported
checkpoint on the CPU, with the same inputs the Rust side uses (Philox noise, one caption),
and prints one JSON line per batch size: {"batch": B, "median_ms": ..., "times_ms": [...]}.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "model"))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import noise  # noqa: E402
from net import Reel, tokenize  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "model/checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8", help="scenes per step, comma separated")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--caption", default="a small red circle moving left on a black background")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = json.loads((args.checkpoint / "config.json").read_text())
    model = Reel(cfg).eval()
    missing, unexpected = model.load_state_dict(load_file(str(args.checkpoint / "model.safetensors")), strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
    f, l, s = cfg["frames"], cfg["latent_channels"], cfg["base_size"] // cfg["patch"]
    ids = torch.tensor([tokenize(args.caption, cfg["vocab"], cfg["max_tokens"]), [0] * cfg["max_tokens"]])
    with torch.no_grad():
        cond, null = model.text(ids)
        for batch in (int(b) for b in args.batches.split(",")):
            z = torch.from_numpy(noise.gaussian(1, 0, batch * f * l * s * s)).view(batch, f, l, s, s)
            zz, tt = torch.cat([z, z]), torch.full((2 * batch,), 0.5)
            cc = torch.cat([cond.expand(batch, -1), null.expand(batch, -1)])
            times = []
            for i in range(args.warmup + args.iters):
                t0 = time.perf_counter()
                model.denoiser(zz, tt, cc)
                if i >= args.warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
            times.sort()
            print(json.dumps({"batch": batch, "median_ms": times[len(times) // 2], "times_ms": times,
                              "threads": torch.get_num_threads(), "torch": torch.__version__,
                              "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()
