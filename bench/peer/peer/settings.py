"""Settings from the environment, shared by the API and the worker (serve.sh sets them)."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the reel checkout
DATA_DIR = Path(os.environ.get("PEER_DATA_DIR", "/tmp/reel-peer"))
DB_PATH = DATA_DIR / "tasks.sqlite3"
VIDEOS = DATA_DIR / "videos"
REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379")
REEL_BIN = os.environ.get("REEL_BIN", str(ROOT / "target/release/reel"))
MODEL_DIR = Path(os.environ.get("PEER_MODEL_DIR", str(ROOT / "model/checkpoint")))
CORES = os.cpu_count() or 1
TORCH_THREADS = int(os.environ.get("PEER_TORCH_THREADS", str(CORES)))
# How long a finished result stays in the Redis cache of repeated prompts.
CACHE_TTL_S = int(os.environ.get("PEER_CACHE_TTL_S", "3600"))

# reel's defaults and bounds (storage::TaskParams), so that the same request means the same
# video on both.
DEFAULTS = {"num_scenes": 3, "steps": 20, "guidance": 4.0, "seconds_per_scene": 2.0, "fps": 24,
            "size": 256}
BOUNDS = {"num_scenes": (1, 8), "steps": (1, 100), "guidance": (0.0, 20.0),
          "seconds_per_scene": (0.25, 10.0), "fps": (1, 60), "size": (32, 1024)}
