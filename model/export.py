"""Export a training run for the Rust `kernels` crate: `python3 model/export.py`.

Writes, from the run's EMA weights (model/runs/main/denoiser.pt by default, see train.py):
- model/checkpoint/config.json: the run config (architecture, vocabulary, training facts)
  plus the sampler defaults and the base clip's frame rate;
- model/checkpoint/model.safetensors: fp32 weights of the text encoder and the denoiser under
  their PyTorch state_dict names;
- kernels/tests/golden/golden.safetensors: reference tensors the Rust parity tests compare
  against (text encoder, one denoiser pass, cells -> pixels, short DPM-Solver++ and DDIM
  runs), computed from exactly the exported weights, with the weights' SHA-1 in its metadata.

Re-run it whenever the weights change; checkpoint and golden file always move together.
Before a run has weights, `--random-init` exports a seeded random model so the Rust side
can be built and tested against it.
"""
import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import noise
import sampler
import world
from net import Reel, from_cells, tokenize
from train import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SAMPLER_DEFAULTS = {"method": "dpmpp2m", "steps": 20, "guidance": 4.0}
CLIP_SECONDS = 2.0  # a base clip spans one scene (WORLD.md: 2.0 s per scene)

# Golden scenes: (size, colour, shape, motion, background); the Rust tests read the captions
# from the golden file's metadata.
GOLDEN_SCENES = [("small", "red", "circle", "left", "black"), ("large", "blue", "square", "grow", "beige")]
GOLDEN_SEED = 42
DENOISE_SEED = 11  # the single-pass test's clips: streams 0 and 1
CELLS_SEED = 12  # the cells -> pixels test's frame: stream 0, first frame
# Clip-sized golden tensors keep every STRIDE-th value of each flattened row (13 is coprime to
# every dimension, so the kept values cover all frames, channels and positions): any error of
# the network spreads over the whole output, and the file stays small.
STRIDE = 13


def caption_of(size, color, shape, motion, background):
    return world.caption({"size": size, "color": color, "shape": shape, "motion": motion, "background": background})


def base_config():
    return dict(DEFAULTS, vocab=world.vocabulary(), held_out=[list(p) for p in world.HELD_OUT])


def load_run(run, random_init):
    """(config dict with training info, Reel holding the EMA weights)."""
    if random_init:
        torch.manual_seed(0)
        cfg = dict(base_config(), training=None)
        return cfg, Reel(cfg)
    state_path = run / "denoiser.pt"
    if not state_path.exists():
        raise SystemExit(f"{state_path} does not exist yet (training writes it every --save-every steps); "
                         "use --random-init to export an untrained model")
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    # train.py rewrites config.json at every save, with the command that reproduces the state
    cfg = json.loads((run / "config.json").read_text())
    if cfg["training"]["steps_done"] != state["step"]:
        raise SystemExit(f"{run}/config.json says step {cfg['training']['steps_done']}, the state step {state['step']}")
    model = Reel(cfg)
    model.load_state_dict(state["ema"])
    return cfg, model


def write_checkpoint(cfg, model, out):
    out.mkdir(parents=True, exist_ok=True)
    config = dict(cfg, sampler=SAMPLER_DEFAULTS, fps=cfg["frames"] / CLIP_SECONDS)
    weights = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    tmp = out / "model.safetensors.tmp"
    save_file(weights, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return config


def philox_latents(seed, streams, cfg):
    f, l, s = cfg["frames"], cfg["latent_channels"], cfg["base_size"] // cfg["patch"]
    return torch.stack([torch.from_numpy(noise.gaussian(seed, st, f * l * s * s)).view(f, l, s, s) for st in streams])


def decimate(x, rows=1):
    """Every STRIDE-th value of each of the `rows` flattened rows of x."""
    return x.reshape(rows, -1)[:, ::STRIDE].contiguous()


@torch.no_grad()
def golden_tensors(cfg, model):
    """The reference tensors (PyTorch layouts) and their metadata."""
    captions = [caption_of(*sc) for sc in GOLDEN_SCENES]
    ids = torch.tensor([tokenize(c, cfg["vocab"], cfg["max_tokens"]) for c in captions])
    null_ids = torch.zeros(1, cfg["max_tokens"], dtype=torch.long)
    g = {}

    # text encoder: the first caption and the null caption
    g["text.ids"] = torch.cat([ids[:1], null_ids])
    g["text.cond"] = model.text(g["text.ids"])

    # one denoiser pass over two Philox clips at different t
    g["denoise.t"] = torch.tensor([0.25, 0.9])
    g["denoise.ids"] = ids
    g["denoise.out"] = decimate(model.denoiser(philox_latents(DENOISE_SEED, [0, 1], cfg), g["denoise.t"], model.text(ids)))

    # cells -> pixels on one Philox frame
    g["cells.pixels"] = from_cells(philox_latents(CELLS_SEED, [0], cfg)[:, 0], cfg["patch"])

    # short guided runs of both scenes, batched, from Philox noise
    cond, null = model.text(ids), model.text(null_ids.expand(len(captions), -1))
    z0 = philox_latents(GOLDEN_SEED, range(len(captions)), cfg)
    g["dpm.z0"] = decimate(z0)
    for name, method, steps in [("dpm", "dpmpp2m", 4), ("ddim", "ddim", 2)]:
        trace = []
        z = sampler.sample(model, z0, cond, null, steps, 4.0, method, trace)
        g[f"{name}.trace"] = decimate(torch.stack(trace), steps)
        if name == "dpm":  # decoded like kernels' Model::decode; scene 0 first frame, scene 1 last
            x = ((from_cells(z.flatten(0, 1), cfg["patch"]) + 1) / 2).clamp(0, 1)
            x = x.view(len(captions), cfg["frames"], *x.shape[1:])
            g["dpm.frames"] = torch.stack([x[0, 0], x[1, -1]])
    meta = {"captions": json.dumps(captions), "seed": str(GOLDEN_SEED), "guidance": "4.0", "dpm_steps": "4",
            "ddim_steps": "2", "denoise_seed": str(DENOISE_SEED), "cells_seed": str(CELLS_SEED),
            "stride": str(STRIDE)}
    return {k: v.contiguous() for k, v in g.items()}, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "model/runs/main", help="training run directory")
    ap.add_argument("--out", type=Path, default=ROOT / "model/checkpoint", help="checkpoint directory to write")
    ap.add_argument("--golden", type=Path, default=ROOT / "kernels/tests/golden/golden.safetensors")
    ap.add_argument("--random-init", action="store_true", help="export a seeded random model (no run needed)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg, model = load_run(args.run, args.random_init)
    config = write_checkpoint(cfg, model, args.out)
    # The golden tensors come from the file just written, so they match it bit for bit.
    weights_file = args.out / "model.safetensors"
    inference = Reel(config).eval()
    inference.load_state_dict(load_file(str(weights_file)))
    tensors, meta = golden_tensors(config, inference)
    meta["weights_sha1"] = hashlib.sha1(weights_file.read_bytes()).hexdigest()
    args.golden.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.golden), metadata=meta)
    os.chmod(args.golden, 0o644)
    size = sum(t.numel() for t in tensors.values()) * 4
    print(f"wrote {args.out}/config.json, {weights_file} (sha1 {meta['weights_sha1'][:12]}), "
          f"{args.golden} ({size / 1e3:.0f} kB of tensors)")


if __name__ == "__main__":
    main()
