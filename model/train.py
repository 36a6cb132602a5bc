"""Train reel's model: `python3 model/train.py` (see model/README.md).

Trains the text-conditioned denoiser on clips rendered by world.py, fresh every step, on the
training device itself (`world.render_many`). Every step draws its batch from its own seed
(`--seed`, step), so the state after N steps does not depend on how the run was split: state
is saved every `--save-every` steps under --run, and a rerun with the same arguments resumes
from it. Runs on CUDA when present (bf16 autocast with `--amp`), else on the CPU.
`--max-seconds` stops early at a step boundary, saving; `--steps <steps_done>` then
reproduces that state (bit for bit on the CPU; on a GPU up to its non-deterministic kernels).
"""
import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch

import world
from net import Reel, to_cells, tokenize

DEFAULTS = {
    "architecture": "reel-cells-2p1d-v1", "base_size": 48, "patch": 6, "frames": 8,
    "latent_channels": 108, "channels": 128, "blocks": 8, "emb": 128, "max_tokens": 16,
    "gn_groups": 8, "gn_eps": 1e-5, "prediction": "x0", "schedule": "cosine", "t_max": 0.999,
}


def batch_at(step, args, cfg, dev):
    """The training batch of `step`: cells [n, F, L, S/p, S/p] in [-1, 1] and token ids [n, T],
    drawn from a generator seeded by (seed, step) and rendered on `dev`."""
    rng = np.random.default_rng([args.seed, step])
    scenes = world.random_scenes(rng, args.batch)
    uv = rng.random((args.batch, 2))
    starts = [world.draw_start(sc, u, v) for sc, (u, v) in zip(scenes, uv)]
    x = world.render_many(scenes, starts, cfg["base_size"], cfg["frames"], dev) / 127.5 - 1.0
    ids = [tokenize(world.caption(sc), cfg["vocab"], cfg["max_tokens"]) for sc in scenes]
    return clip_cells(x, cfg), torch.tensor(ids, device=dev)


def clip_cells(x, cfg):
    """[B, F, 3, S, S] -> [B, F, 3 * patch^2, S / patch, S / patch]."""
    b, f = x.shape[:2]
    c = to_cells(x.flatten(0, 1), cfg["patch"])
    return c.view(b, f, *c.shape[1:])


def lr_at(step, peak, warmup=200):
    """Warm-up, then constant (the EMA weights do the averaging): the state after N steps
    does not depend on how many steps were planned, so any saved step is reproducible."""
    return peak * min(1.0, (step + 1) / warmup)


def save(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def device_name(dev, threads):
    if dev == "cuda":
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()}, {threads} threads)"


def write_config(run, cfg, args, dev, step, seconds):
    """config.json of the run: the architecture plus how it was trained, so far."""
    flags = {k: v for k, v in vars(args).items() if k not in ("run", "max_seconds")}
    flags["steps"] = step
    info = {"command": "python3 model/train.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items()
                                                             if not isinstance(v, bool)) + (" --amp" if args.amp else ""),
            "device": device_name(dev, args.threads), "amp_bf16": bool(args.amp and dev == "cuda"),
            "steps_done": step, "batch": args.batch, "lr": args.lr, "seconds": round(seconds),
            "torch": torch.__version__}
    tmp = os.path.join(run, "config.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(dict(cfg, training=info), fh, indent=1)
    os.replace(tmp, os.path.join(run, "config.json"))


def train(model, ema, cfg, args, dev):
    state_path = os.path.join(args.run, "denoiser.pt")
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step, seconds = 0, 0.0
    if os.path.exists(state_path):
        st = torch.load(state_path, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"]); opt.load_state_dict(st["opt"])
        step, seconds = st["step"], st.get("seconds", 0.0)
    gen = torch.Generator(device=dev)  # noise drawn where it is used: no host copies
    amp = args.amp and dev == "cuda"
    t0 = time.time()

    def checkpoint():
        save(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                          "step": step, "seconds": seconds + time.time() - t0})
        write_config(args.run, cfg, args, dev, step, seconds + time.time() - t0)

    while step < args.steps:
        # reseeded per step, so a resumed run draws exactly what an uninterrupted one would
        gen.manual_seed(args.seed * 1_000_003 + step)
        z0, tok = batch_at(step, args, cfg, dev)
        drop = torch.rand(args.batch, generator=gen, device=dev) < args.cond_drop
        tok = torch.where(drop[:, None], 0, tok)  # no boolean indexing: it would sync the device
        t = torch.rand(args.batch, generator=gen, device=dev)
        eps = torch.randn(z0.shape, generator=gen, device=dev)
        a = torch.cos(0.5 * math.pi * t)[:, None, None, None, None]
        s = torch.sin(0.5 * math.pi * t)[:, None, None, None, None]
        zt = a * z0 + s * eps
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr)
        # x0-prediction: the 108-channel cells are wider than the network, which can denoise
        # (project onto clean frames) but not copy noise through, as v or eps would need.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            x0 = model.denoiser(zt, t, model.text(tok))
        weight = 1.0 + torch.clamp((a / s.clamp(min=1e-4)) ** 2, max=5.0)  # min-SNR style
        loss = (weight * (x0.float() - z0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), params, 1 - d)
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.5f} {time.time() - t0:.0f}s", flush=True)
        out_of_time = args.max_seconds is not None and time.time() - t0 > args.max_seconds
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            checkpoint()
        if out_of_time:
            print(f"stopped at step {step} after {time.time() - t0:.0f}s (--max-seconds)", flush=True)
            break


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="model/runs/main", help="where training state is kept (resumable)")
    ap.add_argument("--steps", type=int, default=9000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels", type=int, default=DEFAULTS["channels"])
    ap.add_argument("--blocks", type=int, default=DEFAULTS["blocks"])
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (ignored on the CPU)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (and save) after this long")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    os.makedirs(args.run, exist_ok=True)
    cfg = dict(DEFAULTS, channels=args.channels, blocks=args.blocks, vocab=world.vocabulary(),
               held_out=[list(p) for p in world.HELD_OUT])
    model = Reel(cfg).to(dev)
    ema = Reel(cfg).to(dev)
    ema.load_state_dict(model.state_dict())
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on {device_name(dev, args.threads)}",
          flush=True)
    train(model, ema, cfg, args, dev)


if __name__ == "__main__":
    main()
