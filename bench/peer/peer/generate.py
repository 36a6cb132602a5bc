"""Generation with reel's own PyTorch model code (`model/`) on the shipped checkpoint: the
same planner (the reel binary's `plan`), the same Philox noise per scene, the same sampler,
steps and guidance; then the usual Python post-processing (bicubic upscale, linear
interpolation between frames) and H.264 MP4 through imageio-ffmpeg."""
import json
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from . import settings

sys.path.insert(0, str(settings.ROOT / "model"))
import noise  # noqa: E402  (model/noise.py: Philox, bit-identical to kernels/src/philox.rs)
import sampler  # noqa: E402  (model/sampler.py: DPM-Solver++(2M) / DDIM with guidance)
from net import Reel, from_cells, tokenize  # noqa: E402


class Generator:
    """The model, loaded once per worker process."""

    def __init__(self):
        torch.set_num_threads(settings.TORCH_THREADS)
        self.cfg = json.loads((settings.MODEL_DIR / "config.json").read_text())
        self.model = Reel(self.cfg).eval()
        self.model.load_state_dict(load_file(str(settings.MODEL_DIR / "model.safetensors")))

    def plan(self, prompt, num_scenes, seed):
        """reel's own planner, through its binary: the same scenes for the same prompt."""
        out = subprocess.run([settings.REEL_BIN, "plan", "--num-scenes", str(num_scenes),
                              "--seed", str(seed), prompt], capture_output=True, text=True,
                             check=True, timeout=30)
        return json.loads(out.stdout)

    @torch.inference_mode()
    def denoise(self, captions, seed, steps, guidance):
        """Every scene of a task in one batch: [B, F, L, h, w] latents -> [B, F, 3, S, S]
        frames in [0, 1]. Scene k's noise is Philox stream k of the task's seed, as in reel."""
        cfg = self.cfg
        f, l, s = cfg["frames"], cfg["latent_channels"], cfg["base_size"] // cfg["patch"]
        z = torch.stack([torch.from_numpy(noise.gaussian(seed, k, f * l * s * s)).view(f, l, s, s)
                         for k in range(len(captions))])
        ids = torch.tensor([tokenize(c, cfg["vocab"], cfg["max_tokens"]) for c in captions])
        cond = self.model.text(ids)
        null = self.model.text(torch.zeros_like(ids))
        method = cfg["sampler"]["method"]
        z = sampler.sample(self.model, z, cond, null, steps, guidance, method)
        x = ((from_cells(z.flatten(0, 1), cfg["patch"]) + 1) / 2).clamp(0, 1)
        return x.view(len(captions), f, *x.shape[1:])

    @torch.inference_mode()
    def post(self, clip, size, frames):
        """[F, 3, s, s] -> [frames, size, size, 3] uint8: bicubic upscale, then linear
        interpolation in time over the clip (the clip spans the whole scene)."""
        x = F.interpolate(clip, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        n, c, h, w = x.shape
        t = x.permute(1, 2, 3, 0).reshape(1, c * h * w, n)
        t = F.interpolate(t, size=frames, mode="linear", align_corners=True)
        x = t.reshape(c, h, w, frames).permute(3, 1, 2, 0)
        return (x * 255.0 + 0.5).to(torch.uint8).numpy()

    def encode(self, scenes, size, fps, path):
        """H.264 (libx264, yuv420p, faststart) through imageio-ffmpeg's ffmpeg."""
        writer = imageio_ffmpeg.write_frames(
            str(path), (size, size), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            macro_block_size=1, output_params=["-preset", "veryfast", "-movflags", "+faststart"],
            ffmpeg_log_level="error")
        writer.send(None)
        for frames in scenes:
            for frame in frames:
                writer.send(np.ascontiguousarray(frame))
        writer.close()
