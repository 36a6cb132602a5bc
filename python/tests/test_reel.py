"""The `reel` wheel, installed: run by scripts/python_test.sh (and so by .ci/run)."""

import pathlib
import threading

import numpy as np
import pytest

import reel

CAPTION = "a small red circle moving left on a black background"
# A task small enough for CI: 2 scenes of 0.5 s at 8 fps (4 frames each), 64 px, 2 steps.
SMALL = dict(num_scenes=2, steps=2, seconds_per_scene=0.5, fps=8, size=64)


@pytest.fixture(scope="module")
def model():
    return reel.Model.load()


@pytest.fixture(scope="module")
def pipeline(model):
    return reel.Pipeline(model=model, previews=False)


def test_import_names_the_api():
    for name in ["Model", "WanModel", "Pipeline", "Task", "Event", "ReelError", "plan", "evaluate"]:
        assert hasattr(reel, name), name
    assert issubclass(reel.ReelError, RuntimeError)


def test_generate_shape_dtype_and_range(model):
    frames = model.generate(CAPTION, seed=1, steps=2, guidance=4.0)
    assert frames.shape == (model.frames, model.size, model.size, 3)
    assert frames.dtype == np.float32
    assert frames.flags["C_CONTIGUOUS"]
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    # The array is a view of the Rust buffer handed over whole, not a copy of it.
    assert frames.base is not None and not frames.flags["OWNDATA"]


def test_generate_is_deterministic_by_seed(model):
    a = model.generate(CAPTION, seed=7, steps=3)
    b = model.generate(CAPTION, seed=7, steps=3)
    c = model.generate(CAPTION, seed=8, steps=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generate_releases_the_gil(model):
    ticks = 0
    worker = threading.Thread(target=model.generate, args=(CAPTION,), kwargs=dict(steps=6))
    worker.start()
    while worker.is_alive():
        ticks += 1
    worker.join()
    # With the GIL held through the Rust call this thread could not count meanwhile.
    assert ticks > 1000


def test_rust_errors_are_python_exceptions_with_the_rust_message(model, pipeline):
    with pytest.raises(ValueError, match="at least one sampling step"):
        model.generate(CAPTION, steps=0)
    with pytest.raises(ValueError, match='unknown word "zebra"'):
        model.generate("a zebra")
    with pytest.raises(ValueError, match="num_scenes must be between 1 and 8, got 9"):
        pipeline.submit("a red circle", num_scenes=9)
    with pytest.raises(ValueError, match="size must be a multiple of 16, got 70"):
        pipeline.submit("a red circle", size=70)
    with pytest.raises(KeyError, match="no task 999999"):
        pipeline.task(999999)
    with pytest.raises(reel.ReelError, match="bad weights file|config.json"):
        reel.Model.load("/nonexistent/checkpoint")
    with pytest.raises(ValueError, match="device must be"):
        reel.Model.load(device="tpu")


def test_pipeline_streams_frames_in_order_then_done(pipeline):
    task = pipeline.submit("a red circle moves left, then a blue square grows", **SMALL)
    events = list(task)
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert events[-1].status == "completed", events[-1]
    frames = [e for e in events if e.kind == "frame"]
    assert [f.index for f in frames] == list(range(2 * 4))
    for f in frames:
        assert f.frame.shape == (64, 64, 3) and f.frame.dtype == np.uint8
    # Statuses come in the order of a task's life.
    statuses = [e.status for e in events if e.kind == "status"]
    order = ["queued", "planning", "generating", "post_processing", "encoding", "completed"]
    assert statuses == sorted(statuses, key=order.index)
    assert "generating" in statuses and statuses[-1] == "completed"
    # Every scene's steps are reported, each scene's in order.
    for scene in (0, 1):
        steps = [e.step for e in events if e.kind == "step" and e.scene == scene]
        assert steps == [1, 2]
    # Frames stream: the first one comes before the task completes.
    completed = next(i for i, e in enumerate(events) if e.status == "completed")
    assert kinds.index("frame") < completed
    record = task.record()
    assert record["artifact"]["frame_count"] == len(frames)
    assert task.video is not None and task.video.exists()


def test_frames_only_and_watching_a_finished_task(pipeline):
    task = pipeline.submit("一个红色圆形向右移动", **dict(SMALL, num_scenes=1))
    frames = list(task.frames())
    assert len(frames) == 4 and all(f.shape == (64, 64, 3) for f in frames)
    # Watching it again after its end: every frame from disk, then done.
    again = list(pipeline.task(task.id))
    assert [e.kind for e in again] == ["frame"] * 4 + ["done"]
    assert all(np.array_equal(a, e.frame) for a, e in zip(frames, again))


def test_a_repeated_task_comes_from_the_cache_with_the_same_frames(pipeline):
    first = pipeline.submit("a green diamond moves up", seed=3, **SMALL)
    a = list(first.frames())
    second = pipeline.submit("a green diamond moves up", seed=3, **SMALL)
    b = list(second.frames())
    assert (first.record()["cached"], second.record()["cached"]) == (False, True)
    assert len(a) == len(b) == 8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_cancel_stops_a_running_task(pipeline):
    task = pipeline.submit("a red circle moves left", num_scenes=8, steps=100, size=64, fps=8)
    seen = []
    for event in task:
        seen.append(event)
        if event.kind == "step":
            assert task.cancel() == "cancelled"
            break
    rest = list(task)
    assert rest[-1].kind == "done" and rest[-1].status == "cancelled"
    assert task.status == "cancelled"
    assert task.video is None
    frames = [e for e in seen + rest if e.kind == "frame"]
    assert len(frames) < 8 * 16
    with pytest.raises(reel.ReelError, match="ended cancelled"):
        list(pipeline.task(task.id).frames())
    # Cancelling again answers how it ended.
    assert pipeline.cancel(task.id) == "cancelled"


def test_plan_and_evaluate(model):
    plan = reel.plan("a big blue box slides to the right, then it gets smaller", num_scenes=2)
    scenes = plan["scenes"]
    assert len(scenes) == 2
    assert scenes[0]["scene"]["color"] == "blue" and scenes[0]["scene"]["shape"] == "square"
    caption = scenes[0]["caption"]
    frames = model.generate(caption, seed=0)
    verdict = reel.evaluate(frames, caption)
    assert set(verdict["attributes"]) == {"background", "color", "shape", "size", "motion"}
    assert verdict["pass"] == all(verdict["attributes"].values())
    assert verdict["expected"]["color"] == "blue"
    # Black frames show no object: colour, shape, size and motion all fail.
    blank = reel.evaluate(np.zeros((8, 48, 48, 3), np.uint8), caption)
    assert not blank["pass"] and blank["measured"]["object"] is None
    with pytest.raises(ValueError, match="leaves"):
        reel.evaluate(frames, "a circle")
    with pytest.raises(TypeError, match="numpy array"):
        reel.evaluate([[1, 2, 3]], caption)


# The tiny random-weight Wan2.1 checkpoint model/wan/make_tiny.py builds (committed).
WAN_TINY = pathlib.Path(__file__).resolve().parents[2] / "model" / "wan" / "tiny"


@pytest.fixture(scope="module")
def wan_pipeline():
    return reel.Pipeline(model=reel.WanModel.load(WAN_TINY), previews=False)


def test_a_wan_checkpoint_runs_in_the_pipeline(wan_pipeline):
    wan = reel.WanModel.load(WAN_TINY)
    assert wan.id.startswith("wan2.1-")
    # The tiny checkpoint's VAE scales by 12 and its patches are 2 wide: widths of 24k.
    assert wan.spec["free_form"]["width_multiple"] == 24
    # Two scenes of 48 x 32, 5 frames each (2 latent frames), 2 steps; frames stream per
    # decoded latent frame, before the task completes.
    task = wan_pipeline.submit(
        "A fox runs through snow. Then it leaps over a log.",
        num_scenes=2, steps=2, width=48, height=32, num_frames=5, seed=3,
        negative_prompt="blurry", scheduler="euler",
    )
    events = list(task)
    assert events[-1].kind == "done" and events[-1].status == "completed", events[-1]
    frames = [e for e in events if e.kind == "frame"]
    assert [f.index for f in frames] == list(range(10))
    assert all(f.frame.shape == (32, 48, 3) and f.frame.dtype == np.uint8 for f in frames)
    completed = next(i for i, e in enumerate(events) if e.status == "completed")
    assert events.index(frames[0]) < completed
    plan = task.record()["plan"]["scenes"]
    assert [s["caption"] for s in plan] == ["A fox runs through snow.", "it leaps over a log."]
    # The same request with another seed makes other frames.
    other = wan_pipeline.submit(
        "A fox runs through snow. Then it leaps over a log.",
        num_scenes=2, steps=2, width=48, height=32, num_frames=5, seed=4,
        negative_prompt="blurry", scheduler="euler",
    )
    other_frames = list(other.frames())
    assert len(other_frames) == 10
    assert not np.array_equal(other_frames[0], frames[0].frame)


def test_wan_requests_are_checked_against_the_model(wan_pipeline, pipeline):
    with pytest.raises(ValueError, match="width must be a multiple of 24, got 50"):
        wan_pipeline.submit("a fox", width=50, height=32, num_frames=5)
    with pytest.raises(ValueError, match="num_frames must be 1 more than a multiple of 4"):
        wan_pipeline.submit("a fox", width=48, height=32, num_frames=6)
    with pytest.raises(ValueError, match="size is for the built-in model"):
        wan_pipeline.submit("a fox", size=64)
    with pytest.raises(ValueError, match="width is for free-form models"):
        pipeline.submit("a red circle", width=64)
    with pytest.raises(ValueError, match="model_index.json"):
        reel.WanModel.load("/nonexistent/wan")
    with pytest.raises(TypeError, match="reel.Model or a reel.WanModel"):
        reel.Pipeline(model="wan:/somewhere")
