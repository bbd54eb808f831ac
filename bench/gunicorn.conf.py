"""Gunicorn settings used by bench/flash_sale.py (and usable in production as a start).

    gunicorn -c bench/gunicorn.conf.py wsgi:app

Every value can be overridden on the command line (flash_sale.py passes --bind,
--workers, --worker-class and --threads) or through GUNICORN_* style environment
variables that gunicorn itself reads (GUNICORN_CMD_ARGS).
"""

import multiprocessing

bind = "127.0.0.1:8000"
# Threaded workers, two processes per core with two threads each: measured best of
# the shapes tried on 2 cores (bench/REPORT.md). Threads keep browsers' connections
# alive; a sync worker closes every connection and, since gunicorn 27, lingers on each
# close until the client has read the answer, so it spends its time waiting.
workers = multiprocessing.cpu_count() * 2
worker_class = "gthread"
threads = 2
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
