"""Cosine-schedule x0-prediction sampling: DDIM (eta = 0) and DPM-Solver++(2M), with
classifier-free guidance. `kernels/src/sampler.rs` implements the same arithmetic."""
import math

import numpy as np
import torch

T_MAX = 0.999  # the first step starts here: lambda = log(alpha/sigma) is finite


def alpha_sigma(t):
    return math.cos(0.5 * math.pi * t), math.sin(0.5 * math.pi * t)


def timesteps(steps):
    return [T_MAX * (1.0 - i / steps) for i in range(steps + 1)]


def guided_x0(model, z, t, cond, null, guidance):
    """x0 from one batched forward pass over [conditional; unconditional]."""
    b = z.shape[0]
    tt = torch.full((2 * b,), t)
    x = model.denoiser(torch.cat([z, z]), tt, torch.cat([cond, null]))
    xc, xu = x[:b], x[b:]
    return xu + guidance * (xc - xu)


@torch.no_grad()
def sample(model, z, cond, null, steps, guidance, method="dpmpp2m", trace=None):
    ts = timesteps(steps)
    prev_x0 = None
    for i in range(steps):
        t, tn = ts[i], ts[i + 1]
        a, s = alpha_sigma(t)
        an, sn = alpha_sigma(tn)
        x0 = guided_x0(model, z, t, cond, null, guidance)
        if method == "ddim" or tn == 0.0:
            eps = (z - a * x0) / s
            z = an * x0 + sn * eps
        else:
            lam, lam_n = math.log(a / s), math.log(an / sn)
            h = lam_n - lam
            d = x0
            if prev_x0 is not None:
                lam_p = math.log(prev_a / prev_s)
                r = (lam - lam_p) / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
            z = (sn / s) * z - an * math.expm1(-h) * d
        prev_x0, prev_a, prev_s = x0, a, s
        if trace is not None:
            trace.append(z.clone())
    return z
