"""PyTorch side of bench/gpu.sh: the denoiser of a checkpoint on the GPU, eager and under
torch.compile, with the inputs of kernels/examples/cuda_throughput.rs (Philox stream 0 of
seed 1 as the noise of both guidance halves, t = 0.5, one caption and the null caption).

For each mode and batch of b scenes it prints one JSON line with the medians of
- pass_ms: one guided denoiser pass over 2b clips, inputs already on the GPU;
- step_ms: one whole sampler step, the pass plus the guidance combine and a second-order
  DPM-Solver++(2M) update (model/sampler.py's arithmetic), all on the GPU;
and frame_steps_per_s = b * frames / step. Each timing is bracketed by CUDA synchronisation.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "model"))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import noise  # noqa: E402
from net import Reel, tokenize  # noqa: E402
from sampler import alpha_sigma  # noqa: E402

CAPTION = "a small red circle moving left on a black background"


def median_ms(warmup, iters, fn):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "model/checkpoint")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--modes", default="eager,compile,compile-reduce-overhead",
                    help="eager, compile (torch.compile default mode), compile-reduce-overhead (CUDA graphs)")
    args = ap.parse_args()
    dev = torch.device("cuda")

    cfg = json.loads((args.checkpoint / "config.json").read_text())
    model = Reel(cfg).eval()
    missing, unexpected = model.load_state_dict(load_file(str(args.checkpoint / "model.safetensors")), strict=False)
    assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
    model = model.to(dev)
    f, l = cfg["frames"], cfg["latent_channels"]
    s = cfg["base_size"] // cfg["patch"]
    ids = torch.tensor([tokenize(CAPTION, cfg["vocab"], cfg["max_tokens"]), [0] * cfg["max_tokens"]], device=dev)
    # A mid-run DPM-Solver++(2M) step: t = 0.5 -> 0.45, previous x0 at t = 0.55.
    (a, sg), (an, sn), (pa, ps) = alpha_sigma(0.5), alpha_sigma(0.45), alpha_sigma(0.55)
    lam, lam_n, lam_p = math.log(a / sg), math.log(an / sn), math.log(pa / ps)
    h = lam_n - lam
    r = (lam - lam_p) / h
    c0, c1, zf, df = 1 + 1 / (2 * r), 1 / (2 * r), sn / sg, an * math.expm1(-h)

    with torch.no_grad():
        cond, null = model.text(ids)
        for mode in args.modes.split(","):
            if mode == "eager":
                den = model.denoiser
            elif mode == "compile":
                den = torch.compile(model.denoiser, dynamic=False)
            elif mode == "compile-reduce-overhead":
                den = torch.compile(model.denoiser, mode="reduce-overhead", dynamic=False)
            else:
                raise SystemExit(f"unknown mode {mode}")
            for b in (int(x) for x in args.batches.split(",")):
                z = torch.from_numpy(noise.gaussian(1, 0, b * f * l * s * s)).view(b, f, l, s, s).to(dev)
                zz, tt = torch.cat([z, z]), torch.full((2 * b,), 0.5, device=dev)
                cc = torch.cat([cond.expand(b, -1), null.expand(b, -1)])
                prev = torch.zeros_like(z)
                compile_t0 = time.perf_counter()
                den(zz, tt, cc)
                torch.cuda.synchronize()
                first_ms = (time.perf_counter() - compile_t0) * 1e3

                def step():
                    x = den(torch.cat([z, z]), tt, cc)
                    x0 = x[b:] + 4.0 * (x[:b] - x[b:])
                    return zf * z - df * (c0 * x0 - c1 * prev)

                pass_ms = median_ms(args.warmup, args.iters, lambda: den(zz, tt, cc))
                step_ms = median_ms(args.warmup, args.iters, step)
                print(json.dumps({
                    "impl": f"torch-{mode}", "batch": b, "pass_ms": pass_ms, "step_ms": step_ms,
                    "frame_steps_per_s": b * f / (step_ms / 1e3), "pass_frame_steps_per_s": b * f / (pass_ms / 1e3),
                    "first_call_ms": first_ms, "torch": torch.__version__, "device": torch.cuda.get_device_name(),
                }), flush=True)


if __name__ == "__main__":
    main()
