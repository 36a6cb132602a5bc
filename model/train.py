"""Train reel's model: `python3 model/train.py` (see model/README.md).

Phase 1 trains the frame autoencoder, phase 2 the text-conditioned latent denoiser on clips
rendered by world.py. Seeds are fixed; state is saved every few hundred steps under --run and
a rerun with the same arguments resumes from it. Runs on CUDA when present, else CPU.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import world
from net import Reel, tokenize

DEFAULTS = {
    "architecture": "reel-latent-2p1d-v1", "base_size": 64, "frames": 8, "latent_channels": 8,
    "channels": 64, "blocks": 6, "emb": 128, "max_tokens": 16, "gn_groups": 8, "gn_eps": 1e-5,
    "prediction": "v", "schedule": "cosine", "t_max": 0.999,
}


def render_batch(rng, n, cfg, allow_held_out=False):
    """n random clips: frames [n, F, 3, S, S] in [-1, 1], object masks, token ids."""
    s, f = cfg["base_size"], cfg["frames"]
    clips, masks, ids = [], [], []
    for _ in range(n):
        sc = world.random_scene(rng, allow_held_out)
        start = world.draw_start(sc, rng.random(), rng.random())
        fr = world.render(sc, s, f, start).astype(np.float32)
        bg = np.array(world.BACKGROUNDS[sc["background"]], np.float32)
        masks.append((np.abs(fr - bg).max(-1) > 1.0).astype(np.float32))
        clips.append(fr / 127.5 - 1.0)
        ids.append(tokenize(world.caption(sc), cfg["vocab"], cfg["max_tokens"]))
    x = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()
    return x, torch.from_numpy(np.stack(masks)), torch.tensor(ids)


def lr_at(step, total, peak, warmup=200):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def save(path, obj):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_ae(model, cfg, args, dev, state_path):
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.ae_lr, weight_decay=0.0)
    step, rng = 0, np.random.default_rng(args.seed)
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        step, rng = st["step"], st["rng"]
    t0 = time.time()
    while step < args.ae_steps:
        x, m, _ = render_batch(rng, args.ae_batch // 4, cfg, allow_held_out=True)
        # four random frames of each clip
        pick = torch.from_numpy(rng.integers(0, cfg["frames"], (x.shape[0], 4)))
        x = torch.stack([x[i, pick[i]] for i in range(x.shape[0])]).flatten(0, 1).to(dev)
        m = torch.stack([m[i, pick[i]] for i in range(m.shape[0])]).flatten(0, 1).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.ae_steps, args.ae_lr)
        z = model.encoder(x)
        zn = z + 0.05 * z.detach().std() * torch.randn_like(z)
        y = model.decoder(zn)
        w = 1.0 + 20.0 * m[:, None]
        loss = ((y - x) ** 2 * w).mean() + 1e-4 * (z ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        step += 1
        if step % 50 == 0:
            print(f"ae step {step} loss {loss.item():.5f} {time.time() - t0:.0f}s", flush=True)
        if step % 250 == 0 or step == args.ae_steps:
            save(state_path, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng})


@torch.no_grad()
def encode_clips(model, x, scale):
    b, f = x.shape[:2]
    z = model.encoder(x.flatten(0, 1))
    return (z / scale).view(b, f, *z.shape[1:])


def train_denoiser(model, ema, cfg, args, dev, state_path):
    params = list(model.text.parameters()) + list(model.denoiser.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step, rng = 0, np.random.default_rng(args.seed + 1)
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]); ema.load_state_dict(st["ema"]); opt.load_state_dict(st["opt"])
        step, rng = st["step"], st["rng"]
    scale = cfg["latent_scale"]
    gen = torch.Generator().manual_seed(args.seed + 2 + step)
    x, _, ids = render_batch(rng, args.pool, cfg)
    pool_z, pool_ids = encode_clips(model, x.to(dev), scale), ids.to(dev)
    t0 = time.time()
    while step < args.steps:
        fresh = args.batch // 4
        x, _, ids = render_batch(rng, fresh, cfg)
        slots = torch.from_numpy(rng.choice(args.pool, fresh, replace=False)).to(dev)
        pool_z[slots] = encode_clips(model, x.to(dev), scale)
        pool_ids[slots] = ids.to(dev)
        pick = torch.from_numpy(rng.choice(args.pool, args.batch, replace=False)).to(dev)
        z0, tok = pool_z[pick], pool_ids[pick].clone()
        drop = torch.rand(args.batch, generator=gen) < args.cond_drop
        tok[drop.to(dev)] = 0
        t = torch.rand(args.batch, generator=gen).to(dev)
        eps = torch.randn(z0.shape, generator=gen).to(dev)
        a = torch.cos(0.5 * math.pi * t)[:, None, None, None, None]
        s = torch.sin(0.5 * math.pi * t)[:, None, None, None, None]
        zt = a * z0 + s * eps
        v_target = a * eps - s * z0
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        v = model.denoiser(zt, t, model.text(tok))
        loss = F.mse_loss(v, v_target)
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)
        step += 1
        if step % 25 == 0:
            print(f"denoiser step {step} loss {loss.item():.5f} {time.time() - t0:.0f}s", flush=True)
        if step % 200 == 0 or step == args.steps:
            save(state_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                              "step": step, "rng": rng})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="model/runs/main", help="where training state is kept (resumable)")
    ap.add_argument("--ae-steps", type=int, default=1500)
    ap.add_argument("--ae-batch", type=int, default=64)
    ap.add_argument("--ae-lr", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pool", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phase", choices=["all", "ae", "denoiser"], default="all")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.run, exist_ok=True)
    cfg = dict(DEFAULTS, vocab=world.vocabulary(), held_out=[list(p) for p in world.HELD_OUT])
    model = Reel(cfg).to(dev)
    t_start = time.time()
    if args.phase in ("all", "ae"):
        train_ae(model, cfg, args, dev, os.path.join(args.run, "ae.pt"))
    ae = torch.load(os.path.join(args.run, "ae.pt"), weights_only=False)["model"]
    model.load_state_dict(ae)
    # latent scale: the std of encoded clips, so the denoiser sees unit-variance latents
    x, _, _ = render_batch(np.random.default_rng(123), 64, cfg, allow_held_out=True)
    with torch.no_grad():
        cfg["latent_scale"] = float(model.encoder(x.flatten(0, 1).to(dev)).std())
    for p in list(model.encoder.parameters()) + list(model.decoder.parameters()):
        p.requires_grad_(False)
    ema = Reel(cfg).to(dev)
    ema.load_state_dict(model.state_dict())
    if args.phase in ("all", "denoiser"):
        train_denoiser(model, ema, cfg, args, dev, os.path.join(args.run, "denoiser.pt"))
    info = {"command": "python3 model/train.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            "device": dev if dev == "cpu" else torch.cuda.get_device_name(0),
            "threads": args.threads, "ae_steps": args.ae_steps, "denoiser_steps": args.steps,
            "batch": args.batch, "seconds_this_invocation": round(time.time() - t_start),
            "torch": torch.__version__}
    with open(os.path.join(args.run, "config.json"), "w") as fh:
        json.dump(dict(cfg, training=info), fh, indent=1)


if __name__ == "__main__":
    main()
