"""Gunicorn settings used by bench/flash_sale.py (and usable in production as a start).

    gunicorn -c bench/gunicorn.conf.py wsgi:app

Every value can be overridden on the command line (flash_sale.py passes --bind,
--workers, --worker-class and --threads) or through GUNICORN_* style environment
variables that gunicorn itself reads (GUNICORN_CMD_ARGS).
"""
import multiprocessing

bind = "127.0.0.1:8000"
# Sync workers: one request at a time per process, no GIL contention between
# requests; on 2 cores 2*cores+1 = 5 keeps the CPUs busy while some workers wait
# on PostgreSQL. (bench/README.md has the sync vs gthread measurements.)
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "sync"
threads = 1
# Accept-queue depth: a flash sale opens with far more connections than workers.
backlog = 2048
timeout = 30
graceful_timeout = 10
keepalive = 5
# No access log: writing a line per request costs as much as a small request.
accesslog = None
errorlog = "-"
loglevel = "warning"
# Load the app once in the master and fork: workers boot faster and share the
# read-only pages of the imported code (copy-on-write).
preload_app = True


def post_fork(server, worker):
    """Each worker gets its own connection pool: never share sockets opened before fork."""
    from storefront.extensions import db

    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
