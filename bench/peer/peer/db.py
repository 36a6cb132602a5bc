"""The task table in SQLite through SQLAlchemy: an async engine with a connection pool for
the API, a plain one for the Celery worker. WAL journal, so readers never wait for the
worker's writes."""
import json
import time

from sqlalchemy import JSON, Float, Integer, String, create_engine, event
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from . import settings


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    prompt: Mapped[str] = mapped_column(String(2000))
    params: Mapped[dict] = mapped_column(JSON)
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    scenes_done: Mapped[int] = mapped_column(Integer, default=0)
    video: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    cached: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    timings_ms: Mapped[dict] = mapped_column(JSON, default=dict)

    def view(self):
        """The JSON of GET /api/tasks/{id}, in reel's shape (`api::models::TaskView`) where the
        fields exist here (no owner, priority, planner origin, artifact details)."""
        p = self.params
        n = p["num_scenes"]
        done = 1.0 if self.status == "completed" else 0.0
        scenes = [1.0 if i < self.scenes_done else done for i in range(n)]
        plan = self.plan["scenes"] if self.plan else None
        return {
            "id": self.id,
            "status": self.status,
            "created_ms": int(self.created_at * 1000),
            "updated_ms": int((self.finished_at or self.created_at) * 1000),
            "params": p,
            "plan": [{"caption": s["caption"], "guessed": s["guessed"]} for s in plan] if plan else None,
            # The peer has no partial frames: a video exists only once it is encoded.
            "progress": {"overall": sum(scenes) / n, "scenes": scenes, "frames_ready": 0},
            "timings_ms": {k: int(v) for k, v in self.timings_ms.items()},
            "cached": bool(self.cached),
            "error": self.error,
            "links": {"self": f"/api/tasks/{self.id}", "video": f"/api/tasks/{self.id}/video"},
        }


def _pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def async_session_factory():
    """The API's sessions: aiosqlite under a pool of kept-open connections."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{settings.DB_PATH}", pool_size=8,
                                 max_overflow=8, pool_pre_ping=False)
    event.listen(engine.sync_engine, "connect", _pragmas)
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def sync_session_factory():
    """The worker's sessions (and the schema's creation)."""
    engine = create_engine(f"sqlite:///{settings.DB_PATH}")
    event.listen(engine, "connect", _pragmas)
    Base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def cache_key(params):
    """Same prompt and parameters, same video: the Redis key of a finished result."""
    return "peer:video:" + json.dumps(params, sort_keys=True, ensure_ascii=False)
