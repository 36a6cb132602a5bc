"""The world of ../shared/WORLD.md: vocabulary, canonical captions and an anti-aliased renderer.

The renderer draws any canonical scene at any size and frame count; training clips and the
ground truth of the evaluator come from here (the Rust twin lives in `eval/src/render.rs`).
"""
import math

import numpy as np

COLORS = {
    "red": (230, 50, 50), "orange": (245, 140, 30), "yellow": (240, 220, 50),
    "green": (50, 190, 80), "cyan": (40, 200, 210), "blue": (50, 90, 230),
    "purple": (150, 70, 210), "white": (240, 240, 240),
}
BACKGROUNDS = {"black": (10, 10, 10), "gray": (110, 110, 110), "navy": (20, 30, 80), "beige": (225, 210, 170)}
SHAPES = ["circle", "square", "triangle", "diamond"]
SIZES = {"small": 0.16, "medium": 0.25, "large": 0.34}
MOTIONS = ["left", "right", "up", "down", "grow", "shrink", "still"]
MOTION_PHRASES = {
    "left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
    "grow": "growing", "shrink": "shrinking", "still": "staying still",
}
TRAVEL = 0.45  # fraction of the frame side the centre travels in a moving scene

# (colour, shape) pairs never shown in training: generating them shows composition.
HELD_OUT = [("red", "triangle"), ("cyan", "square"), ("yellow", "diamond"), ("purple", "circle")]


def caption(scene):
    """The canonical caption of a scene dict with keys size, color, shape, motion, background."""
    return (f"a {scene['size']} {scene['color']} {scene['shape']} "
            f"{MOTION_PHRASES[scene['motion']]} on a {scene['background']} background")


def vocabulary():
    """Every word a canonical caption can hold; index 0 is padding."""
    words = ["<pad>", "a", "on", "background", "moving", "staying"]
    words += list(SIZES) + list(COLORS) + SHAPES + ["left", "right", "up", "down", "still"]
    words += ["growing", "shrinking"] + list(BACKGROUNDS)
    return words


def size_at(scene, p):
    """Bounding-box side (fraction of the frame) at progress p in [0, 1]."""
    s0 = SIZES[scene["size"]]
    if scene["motion"] == "grow":
        return s0 * (1.0 + p)
    if scene["motion"] == "shrink":
        return s0 * (1.0 - 0.5 * p)
    return s0


def direction(motion):
    return {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}.get(motion, (0, 0))


def start_range(scene):
    """Per axis, the interval of start centres (fractions) keeping the object inside all scene long."""
    half = 0.5 * max(size_at(scene, 0.0), size_at(scene, 1.0))
    dx, dy = direction(scene["motion"])
    out = []
    for d in (dx, dy):
        lo, hi = half, 1.0 - half
        if d < 0:
            lo += TRAVEL
        elif d > 0:
            hi -= TRAVEL
        out.append((lo, hi))
    return out


def draw_start(scene, u, v):
    """Start centre from two uniforms in [0, 1)."""
    (xl, xh), (yl, yh) = start_range(scene)
    return xl + u * (xh - xl), yl + v * (yh - yl)


def centre_at(scene, start, p):
    dx, dy = direction(scene["motion"])
    return start[0] + TRAVEL * p * dx, start[1] + TRAVEL * p * dy


def coverage(shape, px, py, cx, cy, side):
    """Anti-aliased coverage in [0, 1] from a signed distance in pixels (1-pixel ramp)."""
    h = 0.5 * side
    x, y = px - cx, py - cy
    if shape == "circle":
        d = np.sqrt(x * x + y * y) - h
    elif shape == "square":
        d = np.maximum(np.abs(x), np.abs(y)) - h
    elif shape == "diamond":
        d = (np.abs(x) + np.abs(y) - h) / math.sqrt(2.0)
    else:  # equilateral triangle, apex up, base horizontal, width = side, centred in its box
        ht = side * math.sqrt(3.0) / 2.0
        yy = y + ht / 2.0  # measured from the apex
        slant_r = x * (math.sqrt(3.0) / 2.0) - yy * 0.5
        slant_l = -x * (math.sqrt(3.0) / 2.0) - yy * 0.5
        d = np.maximum(y - ht / 2.0, np.maximum(slant_r, slant_l))
    return np.clip(0.5 - d, 0.0, 1.0)


def render(scene, size, frames, start):
    """Frames [frames, size, size, 3] uint8 of a scene; start is the centre (fractions) at p=0."""
    fg = np.array(COLORS[scene["color"]], np.float32)
    bg = np.array(BACKGROUNDS[scene["background"]], np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    out = np.empty((frames, size, size, 3), np.uint8)
    for i in range(frames):
        p = i / (frames - 1) if frames > 1 else 0.0
        cx, cy = centre_at(scene, start, p)
        a = coverage(scene["shape"], xs, ys, cx * size, cy * size, size_at(scene, p) * size)
        img = bg[None, None, :] * (1.0 - a[..., None]) + fg[None, None, :] * a[..., None]
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


SHAPE_INDEX = {s: i for i, s in enumerate(SHAPES)}


def random_scenes(rng, n, allow_held_out=False):
    """n random scenes, drawn attribute by attribute as whole arrays (a training batch)."""
    keys = [("size", list(SIZES)), ("color", list(COLORS)), ("shape", SHAPES), ("motion", MOTIONS),
            ("background", list(BACKGROUNDS))]
    scenes = []
    while len(scenes) < n:
        picks = {k: rng.integers(len(v), size=n) for k, v in keys}
        for i in range(n):
            s = {k: v[picks[k][i]] for k, v in keys}
            if allow_held_out or (s["color"], s["shape"]) not in HELD_OUT:
                scenes.append(s)
    return scenes[:n]


def render_many(scenes, starts, size, frames, device="cpu"):
    """Frames [n, frames, 3, size, size] float32 in [0, 255] (already rounded) of many scenes at
    once, with torch on `device`: the same drawing as `render`, vectorised, so that a GPU
    renders training batches as fast as it trains on them."""
    import torch

    n = len(scenes)
    p = [i / (frames - 1) if frames > 1 else 0.0 for i in range(frames)]
    centres = np.array([[centre_at(sc, st, q) for q in p] for sc, st in zip(scenes, starts)], np.float32)
    sides = np.array([[size_at(sc, q) for q in p] for sc in scenes], np.float32)
    as_t = lambda a: torch.as_tensor(a, device=device)
    shape = as_t(np.array([SHAPE_INDEX[sc["shape"]] for sc in scenes]))[:, None, None, None]
    fg = as_t(np.array([COLORS[sc["color"]] for sc in scenes], np.float32))[:, None, :, None, None]
    bg = as_t(np.array([BACKGROUNDS[sc["background"]] for sc in scenes], np.float32))[:, None, :, None, None]
    cx = as_t(centres[..., 0] * size)[..., None, None]
    cy = as_t(centres[..., 1] * size)[..., None, None]
    side = as_t(sides * size)[..., None, None]
    grid = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    x = grid[None, None, None, :] - cx  # [n, frames, 1, size]
    y = grid[None, None, :, None] - cy  # [n, frames, size, 1]
    h = 0.5 * side
    circle = torch.sqrt(x * x + y * y) - h
    square = torch.maximum(x.abs(), y.abs()) - h
    diamond = (x.abs() + y.abs() - h) / math.sqrt(2.0)
    ht = side * (math.sqrt(3.0) / 2.0)
    yy = y + ht / 2.0
    k = math.sqrt(3.0) / 2.0
    triangle = torch.maximum(y - ht / 2.0, torch.maximum(x * k - yy * 0.5, -x * k - yy * 0.5))
    d = torch.where(shape == 0, circle, torch.where(shape == 1, square, torch.where(shape == 2, triangle, diamond)))
    a = torch.clamp(0.5 - d, 0.0, 1.0)[:, :, None]  # [n, frames, 1, size, size]
    img = bg * (1.0 - a) + fg * a
    assert img.shape == (n, frames, 3, size, size)
    return torch.clamp(torch.round(img), 0, 255)
