"""The job queue on Redis (``REDIS_URL``), as production runs it: the web app queues the
mail, a worker process on the same Redis sends it; every key the queue writes is under
``<REDIS_KEY_PREFIX>:jobs:``. And the periodic jobs' lease holds for two worker
processes on Redis too. Needs the Redis at 127.0.0.1:6379 (``TEST_REDIS_URL``); with
``STOREFRONT_REQUIRE_REDIS=1`` (CI) it fails instead of skipping.
"""

from __future__ import annotations

import redis

from storefront import jobs

from .jobs_support import WorkerProcess, free_order, mail_row_of_order, worker_env
from .sandbox_support import wait_until
from .test_limits_redis import redis_prefix  # noqa: F401 (fixture)


def test_a_worker_on_redis_sends_the_mail_the_web_app_queued(app, redis_prefix, tmp_path):
    url, prefix = redis_prefix
    app.config.update(REDIS_URL=url, REDIS_KEY_PREFIX=prefix, MAIL_OUTBOX=str(tmp_path / "outbox"))
    client = redis.Redis.from_url(url)
    try:
        order = free_order(app)  # no worker yet: the job waits in Redis
        keys = {key.decode() for key in client.scan_iter(f"{prefix}:jobs:*")}
        assert keys and all(key.startswith(f"{prefix}:jobs:") for key in keys)
        assert not any(prefix in key.decode() for key in client.scan_iter("huey.*"))
        assert mail_row_of_order(order.id).status == "pending"
        worker = WorkerProcess(worker_env(app, tmp_path), tmp_path / "worker.log")
        try:
            worker.wait_started()
            wait_until(lambda: mail_row_of_order(order.id).status == "sent", timeout=20, what="the worker")
        finally:
            worker.stop()
    finally:
        client.close()
    [mail] = (tmp_path / "outbox").glob("*.eml")
    assert mail.name.endswith(f"-{order.code}.eml")


def test_two_workers_on_redis_run_a_periodic_job_once(app, redis_prefix, tmp_path):
    url, prefix = redis_prefix
    app.config.update(REDIS_URL=url, REDIS_KEY_PREFIX=prefix)
    env = worker_env(app, tmp_path)
    workers = [WorkerProcess(env, tmp_path / f"worker-{n}.log", "--workers", "2") for n in range(2)]
    try:
        for worker in workers:
            worker.wait_started()
        for _ in range(12):
            jobs.get_jobs(app).expire_lapsed_checkouts()

        def lines():
            text = "".join(worker.text() for worker in workers)
            return text.count("job expire_lapsed_checkouts: ran\n"), text.count(
                "job expire_lapsed_checkouts: ran elsewhere"
            )

        wait_until(lambda: sum(lines()) == 12, timeout=30, what="every copy")
    finally:
        for worker in workers:
            worker.stop()
    assert lines() == (1, 11)
