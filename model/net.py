"""reel's text-to-video diffusion model: a (2+1)D denoiser over frames cut into cells.

Each 48x48 frame is rearranged losslessly into an 8x8 grid of 6x6-pixel cells (108 channels,
`to_cells`); the denoiser works on that grid, conditioned on the caption and the timestep.
Every layer here uses only ops the Rust `kernels` crate implements on each backend:
conv2d 3x3 (stride 1, pad 1), temporal conv1d (k=3, pad 1), group norm, SiLU, linear,
embedding lookup, sinusoidal time embedding. Rust mirrors the module
and parameter names one to one (`kernels/src/model/`), so keep them in step.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GN_GROUPS = 8
GN_EPS = 1e-5


def to_cells(frames, patch):
    """Frames [N, 3, S, S] in [-1, 1] -> cells [N, 3 * patch^2, S / patch, S / patch]:
    pixel_unshuffle, channel index c * patch^2 + dy * patch + dx (a lossless, fixed
    "autoencoder", so nothing but the denoiser has to be learned)."""
    return F.pixel_unshuffle(frames, patch)


def from_cells(cells, patch):
    """The inverse of `to_cells`."""
    return F.pixel_shuffle(cells, patch)


class TextEncoder(nn.Module):
    """Caption token ids [B, T] (0 = padding) -> condition [B, E]; an all-padding row is the
    unconditional (null) caption used for classifier-free guidance."""

    def __init__(self, vocab, max_tokens=16, width=64, emb=128):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.zeros(max_tokens, width))
        self.null = nn.Parameter(torch.zeros(emb))
        self.fc1 = nn.Linear(width, emb)
        self.fc2 = nn.Linear(emb, emb)

    def forward(self, ids):
        mask = (ids > 0).float()[..., None]
        x = (self.tok(ids) + self.pos[None, : ids.shape[1]]) * mask
        count = mask.sum(1)
        pooled = x.sum(1) / count.clamp(min=1.0)
        c = self.fc2(F.silu(self.fc1(pooled)))
        is_null = (count == 0).float()
        return c * (1 - is_null) + self.null[None] * is_null


def timestep_embedding(t, dim):
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000): [B] -> [B, dim], cos half first."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t[:, None].float() * 1000.0) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class Block(nn.Module):
    """Residual (2+1)D block: GN-SiLU-conv2d, FiLM from the embedding, GN-SiLU-temporal conv."""

    def __init__(self, ch, emb):
        super().__init__()
        self.norm1 = nn.GroupNorm(GN_GROUPS, ch, eps=GN_EPS)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(emb, 2 * ch)
        self.norm2 = nn.GroupNorm(GN_GROUPS, ch, eps=GN_EPS)
        self.tconv = nn.Conv1d(ch, ch, 3, padding=1)

    def forward(self, h, e, frames):
        # h: [B*F, C, H, W]; e: [B, emb]
        bf, c, hh, ww = h.shape
        a = self.conv(F.silu(self.norm1(h)))
        scale, shift = self.film(F.silu(e)).chunk(2, dim=1)
        scale = scale.repeat_interleave(frames, 0)[..., None, None]
        shift = shift.repeat_interleave(frames, 0)[..., None, None]
        a = F.silu(self.norm2(a) * (1 + scale) + shift)
        # temporal conv over frames, independently at each spatial position
        b = bf // frames
        a = a.view(b, frames, c, hh, ww).permute(0, 3, 4, 2, 1).reshape(b * hh * ww, c, frames)
        a = self.tconv(a)
        a = a.view(b, hh, ww, c, frames).permute(0, 4, 3, 1, 2).reshape(bf, c, hh, ww)
        return h + a


class Denoiser(nn.Module):
    """Predicts the clean cell clip x0 [B, F, L, 8, 8] from a noisy one, t [B] and condition [B, E]."""

    def __init__(self, latent=8, frames=8, ch=64, emb=128, blocks=6):
        super().__init__()
        self.frames = frames
        self.conv_in = nn.Conv2d(latent, ch, 3, padding=1)
        self.frame_emb = nn.Parameter(torch.zeros(frames, ch))
        self.t_fc1 = nn.Linear(64, emb)
        self.t_fc2 = nn.Linear(emb, emb)
        self.blocks = nn.ModuleList(Block(ch, emb) for _ in range(blocks))
        self.norm_out = nn.GroupNorm(GN_GROUPS, ch, eps=GN_EPS)
        self.conv_out = nn.Conv2d(ch, latent, 3, padding=1)

    def forward(self, z, t, cond):
        b, f, l, hh, ww = z.shape
        e = self.t_fc2(F.silu(self.t_fc1(timestep_embedding(t, 64)))) + cond
        h = self.conv_in(z.reshape(b * f, l, hh, ww))
        h = h + self.frame_emb.repeat(b, 1)[..., None, None]
        for blk in self.blocks:
            h = blk(h, e, f)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.view(b, f, l, hh, ww)


class Reel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.text = TextEncoder(len(cfg["vocab"]), cfg["max_tokens"], emb=cfg["emb"])
        self.denoiser = Denoiser(cfg["latent_channels"], cfg["frames"], cfg["channels"], cfg["emb"], cfg["blocks"])


def tokenize(caption, vocab, max_tokens):
    index = {w: i for i, w in enumerate(vocab)}
    ids = [index[w] for w in caption.split()]
    return ids + [0] * (max_tokens - len(ids))
