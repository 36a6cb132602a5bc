# %% [markdown]
# # Streaming frames from `reel.Pipeline`
#
# A notebook-style script (cells split by `# %%`, as Jupyter, VS Code and jupytext read
# them): the whole pipeline in-process, its frames shown as they are made. Install the wheel
# first (docs/PYTHON.md), then run it as a script or cell by cell:
#
#     python3 examples/stream_frames.py "a red circle moves left, then it grows" --out frames
#
# In a notebook each frame is displayed as it arrives; as a script, each is written as a PNG
# under --out and a contact sheet (`sheet.png`, one row per scene) is written at the end.
# scripts/python_test.sh runs it small in CI.

# %%
import argparse
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

import reel

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("prompt", nargs="?", default="a red circle moves left, then a blue square grows")
parser.add_argument("--scenes", type=int, default=2)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--size", type=int, default=128)
parser.add_argument("--fps", type=int, default=8)
parser.add_argument("--seconds", type=float, default=1.0, help="seconds per scene")
parser.add_argument("--out", type=Path, default=Path("frames"))
# In a notebook there is no command line: the defaults apply.
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of `rgb` (height, width, 3), with the standard library alone."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


try:  # a notebook shows images inline
    from IPython.display import Image, display

    in_notebook = "ipykernel" in sys.modules
except ImportError:
    in_notebook = False

# %% [markdown]
# ## Plan, then run
# The rule planner splits the prompt into scenes; the pipeline runs them on the real
# dataflow (denoise with continuous batching, post-processing, PNG frames, MP4).

# %%
print(reel.plan(args.prompt, num_scenes=args.scenes)["scenes"])
pipeline = reel.Pipeline()  # the built-in model on the CPU, a temporary data dir
task = pipeline.submit(
    args.prompt,
    num_scenes=args.scenes,
    steps=args.steps,
    size=args.size,
    fps=args.fps,
    seconds_per_scene=args.seconds,
)

# %% [markdown]
# ## Frames as they come
# Iterating over the task yields its events; "frame" events carry a uint8 array.

# %%
args.out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
frames = []
for event in task:
    if event.kind == "step" and event.step == event.steps:
        print(f"{time.perf_counter() - start:6.2f}s scene {event.scene + 1} sampled")
    elif event.kind == "frame":
        frames.append(event.frame)
        if in_notebook:
            display(Image(png(event.frame)))
        else:
            (args.out / f"{event.index:05}.png").write_bytes(png(event.frame))
        if event.index == 0:
            print(f"{time.perf_counter() - start:6.2f}s first frame")
    elif event.kind == "done":
        print(f"{time.perf_counter() - start:6.2f}s {event.status} {event.error or ''}")
        if event.status != "completed":
            sys.exit(1)

# %% [markdown]
# ## A contact sheet: one row per scene

# %%
per_scene = len(frames) // args.scenes
rows = [np.concatenate(frames[i * per_scene : (i + 1) * per_scene], axis=1) for i in range(args.scenes)]
sheet = np.concatenate(rows, axis=0)
(args.out / "sheet.png").write_bytes(png(sheet))
print(f"{len(frames)} frames, {sheet.shape[1]}x{sheet.shape[0]} sheet -> {args.out / 'sheet.png'}; video {task.video}")
