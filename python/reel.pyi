"""reel: text-to-video with reel's own diffusion model, in-process.

Type stubs of the extension module built from python/src/lib.rs (maturin puts them in the
wheel with a py.typed marker). Rust errors are raised with the Rust message: ValueError for
bad arguments, KeyError for an unknown task, reel.ReelError for the rest.
"""

from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
import numpy.typing as npt

__all__ = ["Model", "Pipeline", "Task", "Event", "Frames", "ReelError", "plan", "evaluate"]

class ReelError(RuntimeError):
    """An error of reel's Rust code; its message is the Rust error's."""

class Model:
    """reel's diffusion model: a checkpoint on the CPU (or a CUDA GPU)."""

    @staticmethod
    def load(
        path: Union[str, PathLike[str], None] = None,
        device: Literal["cpu", "cuda", "auto"] = "cpu",
    ) -> Model:
        """The checkpoint directory `path` (config.json + model.safetensors), or the one built
        into the module when None, on `device`."""
    @property
    def id(self) -> str:
        """`<architecture>-<12 hex digits of the weights' SHA-1>`."""
    @property
    def backend(self) -> str:
        """The backend in words."""
    @property
    def frames(self) -> int:
        """Frames of one generated scene."""
    @property
    def size(self) -> int:
        """Side of a generated frame in pixels."""
    @property
    def default_steps(self) -> int:
        """The checkpoint's default sampling steps."""
    @property
    def default_guidance(self) -> float:
        """The checkpoint's default guidance scale."""
    @property
    def vocabulary(self) -> list[str]:
        """The words captions may use."""
    def generate(
        self,
        caption: str,
        seed: int = 0,
        steps: Optional[int] = None,
        guidance: Optional[float] = None,
    ) -> npt.NDArray[np.float32]:
        """One scene for `caption`: RGB in [0, 1], shape (frames, height, width, 3). The same
        caption, seed, steps and guidance give the same array. The GIL is released while it
        runs."""
    def _rust_generate_seconds(
        self,
        caption: str,
        seed: int = 0,
        steps: Optional[int] = None,
        guidance: Optional[float] = None,
    ) -> float:
        """Seconds the Rust call behind `generate` takes, timed inside Rust (benchmarks)."""

class Event:
    """One thing that happened to a task."""

    kind: Literal["status", "step", "preview", "frame", "done"]
    task: int
    status: Optional[str]
    """"status" and "done": queued, planning, generating, post_processing, encoding, completed, failed,
    cancelled."""
    error: Optional[str]
    """"done" of a failed task: why."""
    scene: Optional[int]
    step: Optional[int]
    steps: Optional[int]
    overall: Optional[float]
    """"step": the task's progress in [0, 1]."""
    index: Optional[int]
    """"frame": the delivered frame's index (in order, none skipped)."""
    frame: Optional[npt.NDArray[np.uint8]]
    """"frame": uint8 RGB, shape (size, size, 3)."""
    png: Optional[bytes]
    """"preview": a PNG of the model's current estimate of the scene's middle frame."""

class Frames(Iterator[npt.NDArray[np.uint8]]):
    """A task's frames only; raises ReelError at the end when the task did not complete."""

    def __iter__(self) -> Frames: ...
    def __next__(self) -> npt.NDArray[np.uint8]: ...

class Task(Iterator[Event]):
    """A submitted task: iterating yields its events up to "done" (frames as they are
    made); the GIL is released while it waits."""

    id: int
    def __iter__(self) -> Task: ...
    def __next__(self) -> Event: ...
    def frames(self) -> Frames:
        """Only the frames, in order."""
    def cancel(self) -> str:
        """Cancels the task; returns its status after the call."""
    def record(self) -> dict[str, Any]:
        """The stored record: status, plan, timings, artifact, error."""
    @property
    def status(self) -> str:
        """The stored status now."""
    @property
    def video(self) -> Optional[Path]:
        """The finished MP4 (None until the task has completed)."""

class WanModel:
    """Wan2.1 text-to-video from a local diffusers checkpoint, on the CPU: for `Pipeline`."""

    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> WanModel:
        """Loads and checks the checkpoint directory (ValueError naming the file and tensor
        when something is missing or wrong)."""
    @property
    def id(self) -> str:
        """`wan2.1-<12 hex digits of the checkpoint's SHA-1>`."""
    @property
    def spec(self) -> dict[str, Any]:
        """What requests take: parameters, weight bytes, free-form defaults and rules."""

class Pipeline:
    """The whole pipeline in-process (planner, timely dataflow engine, post-processing,
    PNG frames and MP4 under a data dir), no HTTP."""

    def __init__(
        self,
        model: Union[Model, WanModel, None] = None,
        data_dir: Union[str, PathLike[str], None] = None,
        workers: int = 1,
        max_batch: int = 8,
        scene_stagger: float = 1.0,
        previews: bool = True,
        queue_bound: int = 256,
        post: Literal["cpu", "wgpu", "auto"] = "cpu",
    ) -> None:
        """`model`: the built-in one on the CPU by default, or a `WanModel` (scene prompts
        then come from the free-text planner); `data_dir`: a temporary directory
        removed with the pipeline by default; the rest as `reel serve --help` says."""
    def submit(
        self,
        prompt: str,
        num_scenes: Optional[int] = None,
        seed: int = 0,
        steps: Optional[int] = None,
        guidance: Optional[float] = None,
        seconds_per_scene: Optional[float] = None,
        fps: Optional[int] = None,
        size: Optional[int] = None,
        priority: int = 5,
        width: Optional[int] = None,
        height: Optional[int] = None,
        num_frames: Optional[int] = None,
        negative_prompt: Optional[str] = None,
        scheduler: Optional[Literal["unipc", "euler"]] = None,
    ) -> Task:
        """Validates (ValueError with the reason), stores and runs a task. Unset fields take
        the model's defaults; `size` and `seconds_per_scene` are the built-in model's,
        `width`, `height` (multiples of 16), `num_frames` (1 + 4k), `negative_prompt` and
        `scheduler` a free-form model's."""
    def task(self, id: int) -> Task:
        """Watches a task already submitted, from now on."""
    def cancel(self, id: int) -> str:
        """Cancels task `id`; returns its status after the call."""
    @property
    def data_dir(self) -> Path: ...
    @property
    def queue_depth(self) -> int:
        """Tasks accepted and not yet finished."""

def plan(prompt: str, num_scenes: int = 1, seed: int = 0) -> dict[str, Any]:
    """The rule planner's plan: {"scenes": [{"scene", "caption", "guessed"}, ...]}."""

def evaluate(
    frames: Union[npt.NDArray[np.float32], npt.NDArray[np.uint8]], caption: str
) -> dict[str, Any]:
    """Judges frames (frames, height, width, 3) against a canonical caption: {"pass",
    "attributes": {name: bool}, "expected", "measured"}."""
