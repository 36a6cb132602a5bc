"""The peer: reel's HTTP contract served the way the original performance plan builds it
(FastAPI + Celery + Redis + SQLite through SQLAlchemy + the model in PyTorch)."""
