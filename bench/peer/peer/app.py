"""The FastAPI service: reel's contract for the routes the plan names (create, read, list,
video) plus the health and task counts the bench reads. Every endpoint is async: SQLite
through SQLAlchemy's async engine (a pool of kept-open connections), Redis through redis'
asyncio client, the task handed to Celery without waiting for it."""
import random
import time
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from . import db, settings
from .worker import generate


class CreateTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    num_scenes: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seconds_per_scene: float | None = None
    fps: int | None = None
    size: int | None = None


state = {}


@asynccontextmanager
async def lifespan(_app):
    db.sync_session_factory()  # creates the table when missing
    engine, sessions = db.async_session_factory()
    state["sessions"] = sessions
    state["redis"] = aioredis.Redis.from_url(f"{settings.REDIS_URL}/2", max_connections=64)
    yield
    await state["redis"].aclose()
    await engine.dispose()


app = FastAPI(title="reel peer", lifespan=lifespan)


def bad(message):
    return JSONResponse({"code": "invalid_field", "message": message}, status_code=400)


@app.post("/api/tasks", status_code=202)
async def create(req: CreateTask):
    prompt = req.prompt.strip()
    if not prompt or len(prompt) > 2000:
        return bad("prompt must be 1-2000 characters")
    params = {"prompt": prompt, "seed": req.seed if req.seed is not None else random.getrandbits(63)}
    for name, default in settings.DEFAULTS.items():
        v = getattr(req, name)
        v = default if v is None else v
        lo, hi = settings.BOUNDS[name]
        if not lo <= v <= hi:
            return bad(f"{name} must be in {lo}..={hi}, got {v}")
        params[name] = v
    # A repeated prompt (same parameters, same seed) is answered from the Redis cache.
    hit = await state["redis"].get(db.cache_key(params))
    async with state["sessions"]() as s:
        if hit is not None:
            t = db.Task(prompt=prompt, params=params, status="completed", video=hit.decode(),
                        cached=1, scenes_done=params["num_scenes"], finished_at=time.time(),
                        timings_ms={})
        else:
            t = db.Task(prompt=prompt, params=params, status="queued", timings_ms={})
        s.add(t)
        await s.commit()
        view = t.view()
    if hit is None:
        generate.delay(t.id)
    return JSONResponse(view, status_code=202)


@app.get("/api/tasks/{task_id}")
async def read(task_id: int):
    async with state["sessions"]() as s:
        t = await s.get(db.Task, task_id)
    if t is None:
        raise HTTPException(404, "no such task")
    return t.view()


@app.get("/api/tasks")
async def list_tasks(limit: int = 20, cursor: int | None = None, status: str | None = None):
    """Newest first, `limit` per page; `next_cursor` (an id) asks for the page after."""
    if not 1 <= limit <= 100:
        return bad("limit must be in 1..=100")
    q = select(db.Task).order_by(db.Task.id.desc()).limit(limit)
    if cursor is not None:
        q = q.where(db.Task.id < cursor)
    if status:
        q = q.where(db.Task.status == status)
    async with state["sessions"]() as s:
        rows = (await s.execute(q)).scalars().all()
    more = len(rows) == limit
    return {"tasks": [t.view() for t in rows], "next_cursor": rows[-1].id if more else None}


@app.get("/api/tasks/{task_id}/video")
async def video(task_id: int):
    async with state["sessions"]() as s:
        t = await s.get(db.Task, task_id)
    if t is None or t.status != "completed" or not t.video:
        raise HTTPException(404, "no video for this task")
    return FileResponse(t.video, media_type="video/mp4")


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/api/stats")
async def stats():
    async with state["sessions"]() as s:
        rows = (await s.execute(select(db.Task.status, func.count()).group_by(db.Task.status))).all()
    return {"tasks": {status: n for status, n in rows}}
