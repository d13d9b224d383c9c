"""gunicorn settings for the web process: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Each setting can be overridden from the environment (GUNICORN_WORKERS, ...) or the command line.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One sync worker per core. Requests are short and CPU-bound (no outbound calls happen inside
# one), and on SQLite they take turns at the single write lock: bench/README.md measured the
# same orders/s with 2 workers as with 4 on 2 cores, and half the p99 (more workers only queue
# at the lock). With PostgreSQL, more workers per core can pay off; set GUNICORN_WORKERS.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Shopify gives a webhook 5 s; a request still running after 30 s is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Load the app once in the master so a bad setting fails the start instead of every worker.
preload_app = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
