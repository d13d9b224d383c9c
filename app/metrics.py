"""Prometheus metric families, and how `/metrics` gathers them from every OrderHub process.

The families are defined once here so every module counts into the same ones. Gauges that
describe the database (outbox depth, dead jobs, ...) are not here: `app.gauges` reads them when
Prometheus scrapes, so they are right whichever process answers.

Counters live in the process that counts: a gunicorn worker takes webhooks, the dispatcher sends
purchase orders, the `shipments poll` timer applies notices. Only the web app serves `/metrics`,
so without help it would show one worker's webhooks and none of the rest. prometheus_client's
multiprocess mode is that help: with PROMETHEUS_MULTIPROC_DIR set for every OrderHub process
(the systemd EnvironmentFile), each process keeps its counts in `<type>_<pid>.db` files there
and `/metrics` adds them all up.

Files of processes that have exited are kept, so counts never go backwards; but a timer leaves a
file behind every run, so before each scrape those of dead processes are folded into one
`<type>_folded.db` per type (under a lock, which scrapes share). Every process writing to the
folder must run on this host, in one PID namespace: a process the folding believes dead would
keep counting into a file no longer read. Only counters, histograms and summaries are folded;
OrderHub has no gauges that processes write. Every family has labels, so importing this module
writes no file (see `count_in_shared_folder`).
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.errors import ConfigError

log = logging.getLogger(__name__)

MULTIPROC_SETTING = "PROMETHEUS_MULTIPROC_DIR"
FOLDED_TYPES = ("counter", "histogram", "summary")
LOCK_FILE = ".orderhub-metrics.lock"

WEBHOOK_DELIVERIES = Counter(
    "orderhub_webhook_deliveries_total",
    "Webhook deliveries by channel and result (accepted, duplicate, ignored, quarantined, "
    "unauthorized, too_large, error).",
    ["channel", "result"],
)

INGEST_SECONDS = Histogram(
    "orderhub_ingest_seconds",
    "Time from a delivery's first byte read to its transaction committed.",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

INTAKE_APPLIED = Counter(
    "orderhub_intake_applied_total",
    "Accepted deliveries applied by the dispatcher, by channel and result (processed, stale, "
    "ignored, quarantined).",
    ["channel", "result"],
)

INTAKE_DELAY_SECONDS = Histogram(
    "orderhub_intake_delay_seconds",
    "Time from a delivery being stored (and acknowledged) to its order being applied, routed "
    "and its purchase orders written.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)

DISPATCH_JOBS = Counter(
    "orderhub_dispatch_jobs_total",
    "Outbox jobs handled by the dispatcher, by kind and result (uploaded, already_present, "
    "pushed, retry, dead, cancelled).",
    ["kind", "result"],
)

DISPATCH_SECONDS = Histogram(
    "orderhub_dispatch_seconds",
    "Time from a purchase-order version being written to its file being on the supplier's "
    "server, by supplier.",
    ["supplier"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)

SHIPMENTS_APPLIED = Counter(
    "orderhub_shipments_applied_total",
    "Shipments recorded from suppliers' shipment notices, by supplier.",
    ["supplier"],
)

CHANNEL_API_ERRORS = Counter(
    "orderhub_channel_api_errors_total",
    "Failed calls to a channel's API, each attempt counted whether it is retried or not, by "
    "channel and reason (network: no answer; server: 5xx or unreadable answer; refused: 4xx; "
    "rejected: the API answered with errors).",
    ["channel", "reason"],
)

STOCK_PUSHES = Counter(
    "orderhub_stock_pushes_total",
    "Quantities set on a channel, by channel and reason (stock sync, sale, manual).",
    ["channel", "reason"],
)

CHANNEL_API_THROTTLES = Counter(
    "orderhub_channel_api_throttles_total",
    "Calls a channel's API refused for its rate limit (Shopify THROTTLED, HTTP 429), by "
    "channel; each is retried after a wait.",
    ["channel"],
)


# ------------------------------------------------------------------ multiprocess mode

def multiprocess_dir() -> str | None:
    """The folder every process counts into, or None when this process counts in memory."""
    if prometheus_values.ValueClass is prometheus_values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_SETTING) or None


def check_multiprocess(env: Mapping[str, str]) -> None:
    """Refuse a PROMETHEUS_MULTIPROC_DIR that is not a folder this user can write to."""
    path = (env.get(MULTIPROC_SETTING) or "").strip()
    if path and (not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK)):
        raise ConfigError(MULTIPROC_SETTING, f"{path} is not a folder this user can write to "
                          "(create it, owned by the service's user)")


def count_in_shared_folder() -> None:
    """Count into PROMETHEUS_MULTIPROC_DIR when it reached the environment only after
    prometheus_client was imported (from `.env` or ORDERHUB_ENV_FILE, as `orderhub ...` reads
    it). prometheus_client picks the value class when it is imported, but creates a value only
    when a family is first given its labels, and every family here has labels: so no count
    has been made yet, and every count from now on goes to the folder."""
    if os.environ.get(MULTIPROC_SETTING) and multiprocess_dir() is None:
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue()  # type: ignore[no-untyped-call]


def scrape(*collectors: Collector) -> tuple[bytes, str]:
    """The Prometheus text for `collectors` and every process's counts, and its media type."""
    own = CollectorRegistry(auto_describe=False)  # registering never runs a collector
    for collector in collectors:
        own.register(collector)
    body = generate_latest(own)
    path = multiprocess_dir()
    if path is None:
        return body + generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    try:
        with _locked(path, exclusive=True):
            fold_dead_processes(path)
    except (OSError, ValueError, RuntimeError) as exc:  # nothing lost, only not folded yet
        log.warning("could not fold the metrics of exited processes in %s: %s", path, exc)
    files = CollectorRegistry(auto_describe=False)
    files.register(_ProcessFiles(path))
    with _locked(path, exclusive=False):  # no fold may move counts while they are read
        return body + generate_latest(files), CONTENT_TYPE_LATEST


def fold_dead_processes(path: str) -> int:
    """Add the counts of processes that have exited into `<type>_folded.db`, delete their
    files, and return how many were folded. The caller holds the folder's lock."""
    folded = 0
    for typ in FOLDED_TYPES:
        dead = [f for f in glob.glob(os.path.join(path, f"{typ}_*.db"))
                if not _alive(_pid_of(f)) and os.access(f, os.R_OK)]
        if not dead:
            continue
        archive = os.path.join(path, f"{typ}_folded.db")
        totals: dict[str, float] = {}
        for source in ([archive] if os.path.exists(archive) else []) + dead:
            for key, value, _, _ in _read(source):
                totals[key] = totals.get(key, 0.0) + value
        staging = archive + ".new"  # not *.db: never read as counts
        if os.path.exists(staging):
            os.remove(staging)
        merged = MmapedDict(staging)  # type: ignore[no-untyped-call]
        try:
            for key, value in totals.items():
                merged.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
        finally:
            merged.close()  # type: ignore[no-untyped-call]
        # A crash between this replace and the removals below would count those processes
        # twice; counters are for rates and alerts, and the window is a few system calls.
        os.replace(staging, archive)
        for source in dead:
            os.remove(source)
        folded += len(dead)
    return folded


def _read(path: str) -> Iterator[tuple[str, float, float, int]]:
    """(key, value, timestamp, position) of every value in a metrics file."""
    return MmapedDict.read_all_values_from_file(path)  # type: ignore[no-any-return,no-untyped-call]


def _pid_of(path: str) -> int | None:
    digits = os.path.basename(path)[:-3].rpartition("_")[2]
    return int(digits) if digits.isdigit() else None


def _alive(pid: int | None) -> bool:
    """Whether the process may still write to its file (True for anything not a pid)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: maybe not ours, but never guess dead
        return True
    return True


@contextmanager
def _locked(path: str, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


class _ProcessFiles(Collector):
    """Every process's counts from the multiprocess folder (like prometheus_client's own
    collector, but a file this user cannot read is skipped with a warning, not a 500)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        files = []
        for name in sorted(glob.glob(os.path.join(self.path, "*.db"))):
            if os.access(name, os.R_OK):
                files.append(name)
            else:
                log.warning("metrics file %s is not readable by this user: left out", name)
        return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]
