"""Locust load scenario for reel's HTTP API (the original plan's scenario).

Each simulated user creates tasks (`POST /api/tasks` with a Chinese prompt and 3 scenes) and
reads task 1 (`GET /api/tasks/1`). A 202 is the answer to a create; a 429 is reel's documented
back-pressure when its queue is full (bounded by `--queue-bound`), so it counts as a correct
answer, and the user then waits as long as the `Retry-After` header says. Every user creates a
task in `on_start` before anything else, so task 1 exists by the time anyone reads it (on a
fresh data dir ids start at 1).

    reel serve --port 8000 --data-dir /tmp/reel-locust &
    locust -f bench/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 1m

The peer stack (`bench/peer/`: FastAPI + Celery + Redis + PyTorch) serves the same two
routes with the same answers (no 429: it has no queue bound), so the same file runs against it
unchanged:

    bench/peer/serve.sh --port 8100 --data-dir /tmp/peer-locust &
    locust -f bench/locustfile.py --host http://127.0.0.1:8100 --headless -u 50 -r 10 -t 1m

For the same kind of measurement without Locust, see `bench/src/bin/load.rs`; `peer_report`
(`docs/PEER_REPORT.md`) runs its paced users, Locust's `between(1, 2)`, against both.
"""

import time

from locust import HttpUser, between, task

CREATE = {"prompt": "测试视频", "num_scenes": 3}
# Longest pause honoured from a 429's Retry-After, so a user never stalls for long.
MAX_BACKOFF_S = 5.0


class ReelUser(HttpUser):
    wait_time = between(1, 2)

    def on_start(self):
        self.create_task()

    @task(1)
    def create_task(self):
        with self.client.post(
            "/api/tasks", json=CREATE, name="POST /api/tasks", catch_response=True
        ) as res:
            if res.status_code == 202 and "id" in res.json():
                res.success()
            elif res.status_code == 429:
                res.success()
                retry_after = float(res.headers.get("Retry-After", "1"))
                time.sleep(min(retry_after, MAX_BACKOFF_S))
            else:
                res.failure(f"create answered {res.status_code}: {res.text[:200]}")

    @task(3)
    def get_task(self):
        with self.client.get(
            "/api/tasks/1", name="GET /api/tasks/1", catch_response=True
        ) as res:
            if res.status_code == 200 and res.json().get("id") == 1:
                res.success()
            else:
                res.failure(f"get answered {res.status_code}: {res.text[:200]}")
