"""Prometheus metric families. Defined once here so every module counts into the same ones."""

from prometheus_client import Counter, Histogram

WEBHOOK_DELIVERIES = Counter(
    "orderhub_webhook_deliveries_total",
    "Webhook deliveries by channel and result (processed, stale, duplicate, ignored, "
    "quarantined, unauthorized, too_large, error).",
    ["channel", "result"],
)

INGEST_SECONDS = Histogram(
    "orderhub_ingest_seconds",
    "Time from a delivery's first byte read to its transaction committed.",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

DISPATCH_JOBS = Counter(
    "orderhub_dispatch_jobs_total",
    "Outbox jobs handled by the dispatcher, by kind and result (uploaded, already_present, "
    "retry, dead, cancelled).",
    ["kind", "result"],
)

DISPATCH_SECONDS = Histogram(
    "orderhub_dispatch_seconds",
    "Time from a purchase-order version being written to its file being on the supplier's "
    "server.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)
