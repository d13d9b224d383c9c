"""gunicorn settings for the web process: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Each setting can be overridden from the environment (GUNICORN_WORKERS, ...) or the command line;
the command line wins, so `--bind unix:/run/orderhub/web.sock` (deploy/orderhub-web.service)
replaces the default bind below. Under systemd the socket comes from orderhub-web.socket
instead (socket activation), and gunicorn ignores every bind address.
"""

import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# A unix socket gunicorn creates itself is not for every local user (0770); nginx reaches the
# one systemd creates (orderhub-web.socket: orderhub:www-data, 0660).
umask = 0o007
proc_name = "orderhub-web"
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
# Who the client is and whether it came over https is decided in one place: the app's ProxyFix,
# switched on by TRUST_PROXY (app/proxy.py). gunicorn would otherwise believe X-Forwarded-Proto
# and SCRIPT_NAME headers from any peer on a unix socket, whatever TRUST_PROXY says.
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""  # none
# No runtime control socket (gunicornc; it would go to $HOME/.gunicorn): systemctl restarts and
# stops the service. GUNICORN_CONTROL_SOCKET=PATH turns it on at PATH.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: with PROMETHEUS_MULTIPROC_DIR (app/metrics.py), drop its live gauges;
    its counts stay, and a later scrape folds them into the other exited processes'."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
