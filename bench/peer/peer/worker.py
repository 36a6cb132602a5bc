"""The Celery worker: Redis as broker and result backend; one task generates one video and
writes its status to the SQLite task table as it goes."""
import os
import time

from celery import Celery
from celery.signals import worker_process_init

from . import db, settings

app = Celery("peer", broker=f"{settings.REDIS_URL}/0", backend=f"{settings.REDIS_URL}/1")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # the task table holds the outcome; no result to poll for
    task_acks_late=True,
    worker_prefetch_multiplier=1,  # one task at a time per process: no task waits behind a long one
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_gen = None
_sessions = None


@worker_process_init.connect
def _load(**_):
    """Each worker process loads the model and opens the database once."""
    global _gen, _sessions
    from .generate import Generator
    _gen = Generator()
    _sessions = db.sync_session_factory()
    os.nice(19)  # generation yields the cores to the API (reel's engine runs at SCHED_IDLE)
    ready = os.environ.get("PEER_READY_FILE")
    if ready:
        open(ready, "w").close()


def _update(task_id, **fields):
    with _sessions() as s:
        t = s.get(db.Task, task_id)
        for k, v in fields.items():
            setattr(t, k, v)
        s.commit()


@app.task(name="peer.generate")
def generate(task_id):
    import redis
    with _sessions() as s:
        t = s.get(db.Task, task_id)
        params = dict(t.params)
    timings = {}
    try:
        t0 = time.perf_counter()
        _update(task_id, status="planning")
        plan = _gen.plan(params["prompt"], params["num_scenes"], params["seed"])
        captions = [sc["caption"] for sc in plan["scenes"]]
        t1 = time.perf_counter()
        timings["plan"] = round((t1 - t0) * 1e3, 3)
        _update(task_id, status="generating", plan=plan, timings_ms=dict(timings))
        clips = _gen.denoise(captions, params["seed"], params["steps"], params["guidance"])
        t2 = time.perf_counter()
        timings["denoise"] = round((t2 - t1) * 1e3, 3)
        _update(task_id, status="post_processing", scenes_done=len(captions), timings_ms=dict(timings))
        frames = max(1, round(params["seconds_per_scene"] * params["fps"]))
        scenes = [_gen.post(c, params["size"], frames) for c in clips]
        t3 = time.perf_counter()
        timings["post_process"] = round((t3 - t2) * 1e3, 3)
        _update(task_id, status="encoding", timings_ms=dict(timings))
        settings.VIDEOS.mkdir(parents=True, exist_ok=True)
        path = settings.VIDEOS / f"{task_id}.mp4"
        tmp = path.with_suffix(".tmp.mp4")
        _gen.encode(scenes, params["size"], params["fps"], tmp)
        os.replace(tmp, path)
        timings["encode"] = round((time.perf_counter() - t3) * 1e3, 3)
        _update(task_id, status="completed", video=str(path), timings_ms=timings,
                finished_at=time.time())
        redis.Redis.from_url(f"{settings.REDIS_URL}/2").set(
            db.cache_key(params), str(path), ex=settings.CACHE_TTL_S)
    except Exception as e:  # the task fails with its reason, the worker goes on
        _update(task_id, status="failed", error=f"{type(e).__name__}: {e}"[:2000],
                timings_ms=timings, finished_at=time.time())
        raise
