"""Train reel's model: `python3 model/train.py` (see model/README.md).

Trains the text-conditioned denoiser on clips rendered by world.py, fresh every step. Seeds
are fixed; state is saved every 200 steps under --run and a rerun with the same arguments
resumes from it. Runs on CUDA when present, else CPU.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch

import world
from net import Reel, to_cells, tokenize

DEFAULTS = {
    "architecture": "reel-cells-2p1d-v1", "base_size": 48, "patch": 6, "frames": 8,
    "latent_channels": 108, "channels": 96, "blocks": 6, "emb": 128, "max_tokens": 16,
    "gn_groups": 8, "gn_eps": 1e-5, "prediction": "x0", "schedule": "cosine", "t_max": 0.999,
}


def render_batch(rng, n, cfg, allow_held_out=False):
    """n random clips: frames [n, F, 3, S, S] in [-1, 1] and caption token ids [n, T]."""
    s, f = cfg["base_size"], cfg["frames"]
    clips, ids = [], []
    for _ in range(n):
        sc = world.random_scene(rng, allow_held_out)
        start = world.draw_start(sc, rng.random(), rng.random())
        clips.append(world.render(sc, s, f, start).astype(np.float32) / 127.5 - 1.0)
        ids.append(tokenize(world.caption(sc), cfg["vocab"], cfg["max_tokens"]))
    x = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()
    return x, torch.tensor(ids)


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


def train(model, ema, cfg, args, dev, state_path):
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step, rng = 0, np.random.default_rng(args.seed)
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"]); opt.load_state_dict(st["opt"])
        step, rng = st["step"], st["rng"]
    gen = torch.Generator()
    t0 = time.time()
    while step < args.steps:
        # reseeded per step, so a resumed run draws exactly what an uninterrupted one would
        gen.manual_seed(args.seed * 1_000_003 + step)
        x, tok = render_batch(rng, args.batch, cfg)
        z0, tok = clip_cells(x, cfg).to(dev), tok.to(dev)
        drop = torch.rand(args.batch, generator=gen) < args.cond_drop
        tok[drop.to(dev)] = 0
        t = torch.rand(args.batch, generator=gen).to(dev)
        eps = torch.randn(z0.shape, generator=gen).to(dev)
        a = torch.cos(0.5 * math.pi * t)[:, None, None, None, None]
        s = torch.sin(0.5 * math.pi * t)[:, None, None, None, None]
        zt = a * z0 + s * eps
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr)
        # x0-prediction: the 108-channel cells are wider than the network, which can denoise
        # (project onto clean frames) but not copy noise through, as v or eps would need.
        x0 = model.denoiser(zt, t, model.text(tok))
        weight = 1.0 + torch.clamp((a / s.clamp(min=1e-4)) ** 2, max=5.0)  # min-SNR style
        loss = (weight * (x0 - z0) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)
        step += 1
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.5f} {time.time() - t0:.0f}s", flush=True)
        if step % 200 == 0 or step == args.steps:
            save(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                              "step": step, "rng": rng, "seconds": time.time() - t0})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="model/runs/main", help="where training state is kept (resumable)")
    ap.add_argument("--steps", type=int, default=9000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.run, exist_ok=True)
    cfg = dict(DEFAULTS, vocab=world.vocabulary(), held_out=[list(p) for p in world.HELD_OUT])
    model = Reel(cfg).to(dev)
    ema = Reel(cfg).to(dev)
    ema.load_state_dict(model.state_dict())
    t_start = time.time()
    train(model, ema, cfg, args, dev, os.path.join(args.run, "denoiser.pt"))
    info = {"command": "python3 model/train.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            "device": dev if dev == "cpu" else torch.cuda.get_device_name(0),
            "threads": args.threads, "steps": args.steps, "batch": args.batch,
            "seconds_this_invocation": round(time.time() - t_start), "torch": torch.__version__}
    with open(os.path.join(args.run, "config.json"), "w") as fh:
        json.dump(dict(cfg, training=info), fh, indent=1)


if __name__ == "__main__":
    main()
