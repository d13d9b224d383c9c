"""What an operator watches, against the real app on a real database: `/metrics` has every
family and they move when work happens (a webhook, a dispatcher run, a shipments poll, calls to
Shopify); it is refused to strangers; `/readyz` fails on a database whose schema is behind; log
lines are JSON with the delivery and order ids when asked; and with PROMETHEUS_MULTIPROC_DIR
the counts of every process, dead or alive, add up.

Counters are process-global (other tests count into them too): tests compare before and after.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from app import create_app
from app.channels.base import ChannelApiError
from app.channels.shopify_api import ShopifyAdmin
from app.db import code_revisions, make_engine, upgrade
from app.dispatch import folder_transports
from app.logs import JsonFormatter, StdoutHandler
from app.models import Order
from app.types import utcnow
from shipment.imports import poll_shipments
from tests.conftest import (
    FIXTURES,
    apply_deliveries,
    base_config,
    encode,
    hub_of,
    shopify_headers,
    shopify_payload,
)
from tests.integration.test_dispatch import RecordedAlerts, dispatcher
from tests.integration.test_shopify_api import (
    GRAPHQL,
    OPEN_AT_WAREHOUSE,
    ORDER_ID,
    SHOP,
    TOKEN,
    FakeAdminGraphQL,
    FakeClock,
    fulfillment_orders,
    throttled,
)

REPO = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-token-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = {
    # counted by the process that does the work
    "orderhub_webhook_deliveries": "counter",
    "orderhub_ingest_seconds": "histogram",
    "orderhub_intake_applied": "counter",
    "orderhub_intake_delay_seconds": "histogram",
    "orderhub_dispatch_jobs": "counter",
    "orderhub_dispatch_seconds": "histogram",
    "orderhub_shipments_applied": "counter",
    "orderhub_channel_api_errors": "counter",
    "orderhub_channel_api_throttles": "counter",
    "orderhub_alerts": "counter",
    # read from the database at scrape time
    "orderhub_outbox_depth": "gauge",
    "orderhub_outbox_oldest_due_seconds": "gauge",
    "orderhub_outbox_dead_jobs": "gauge",
    "orderhub_inbound_files_quarantined": "gauge",
    "orderhub_orders_needing_attention": "gauge",
    "orderhub_database_up": "gauge",
    "orderhub_webhook_deliveries_pending": "gauge",
    "orderhub_webhook_deliveries_oldest_pending_seconds": "gauge",
}


class Setup:
    """One supplier, agriest, on a local folder (its AG- lines); the order's GreenSoil line has
    no supplier, so the order needs attention."""

    def __init__(self, tmp_path: Path) -> None:
        self.inbound = tmp_path / "agriest"
        self.shipments = tmp_path / "agriest-out"
        self.shipments.mkdir()
        self.suppliers = tmp_path / "suppliers.toml"
        self.suppliers.write_text(f"""
[suppliers.agriest]
transport = "file://{self.inbound}"
format = "ubl"
sku_prefixes = ["AG-"]
shipments_path = "{self.shipments}"
""")


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


@pytest.fixture
def config(database_url: str, setup: Setup) -> dict[str, str]:
    return {**base_config(database_url), "SUPPLIERS_FILE": str(setup.suppliers)}


def scrape(client: FlaskClient) -> tuple[dict[str, str], Samples]:
    """Families (name: type) and samples, as Prometheus reads them."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    families: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        families[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def deliver(client: FlaskClient, webhook_id: str | None = None) -> None:
    body = encode(shopify_payload())
    response = client.post("/webhooks/shopify", data=body,
                           headers=shopify_headers(body, webhook_id=webhook_id))
    assert response.json == {"status": "accepted", "event_id": response.json["event_id"]}
    assert apply_deliveries(client.application) == {"processed": 1}


def poll(app: Flask) -> None:
    hub = hub_of(app)
    poll_shipments(db=hub.db, book=hub.purchasing.book, folders=folder_transports(hub.env),
                   alerts=RecordedAlerts(), now=utcnow, api_channels=set(), settle_seconds=0)


# ---------------------------------------------------------------- /metrics

def test_every_family_is_exposed(client: FlaskClient) -> None:
    families, samples = scrape(client)

    assert {name: families.get(name) for name in FAMILIES} == FAMILIES
    assert value(samples, "orderhub_database_up") == 1
    # Every job kind has its gauges even with an empty outbox, so rules see 0, not nothing.
    assert value(samples, "orderhub_outbox_depth", kind="send_po", status="pending") == 0
    assert ("orderhub_outbox_depth",
            frozenset({("kind", "push_fulfillment"), ("status", "running")})) in samples
    assert value(samples, "orderhub_outbox_dead_jobs", kind="send_po") == 0
    assert value(samples, "orderhub_orders_needing_attention") == 0


def test_metrics_move_when_work_happens(app: Flask, client: FlaskClient,
                                        setup: Setup) -> None:
    _, before = scrape(client)

    body = encode(shopify_payload())
    client.post("/webhooks/shopify", data=body, headers=shopify_headers(body))
    _, accepted = scrape(client)
    assert value(accepted, "orderhub_webhook_deliveries_pending") == 1
    assert value(accepted, "orderhub_webhook_deliveries_oldest_pending_seconds") >= 0
    apply_deliveries(app)
    _, received = scrape(client)
    shopify = {"channel": "shopify"}
    assert value(received, "orderhub_webhook_deliveries_total", result="accepted", **shopify) \
        == value(before, "orderhub_webhook_deliveries_total", result="accepted", **shopify) + 1
    assert value(received, "orderhub_intake_applied_total", result="processed", **shopify) == \
        value(before, "orderhub_intake_applied_total", result="processed", **shopify) + 1
    assert value(received, "orderhub_ingest_seconds_count", **shopify) == \
        value(before, "orderhub_ingest_seconds_count", **shopify) + 1
    assert value(received, "orderhub_intake_delay_seconds_count", **shopify) == \
        value(before, "orderhub_intake_delay_seconds_count", **shopify) + 1
    assert value(received, "orderhub_webhook_deliveries_pending") == 0
    assert value(received, "orderhub_outbox_depth", kind="send_po", status="pending") == 1
    assert value(received, "orderhub_orders_needing_attention") == 1   # GS-SOIL-40: no supplier

    assert dispatcher(app).run(once=True).sent == 1
    _, sent = scrape(client)
    uploaded = {"kind": "send_po", "result": "uploaded"}
    assert value(sent, "orderhub_dispatch_jobs_total", **uploaded) == \
        value(received, "orderhub_dispatch_jobs_total", **uploaded) + 1
    assert value(sent, "orderhub_dispatch_seconds_count", supplier="agriest") == \
        value(received, "orderhub_dispatch_seconds_count", supplier="agriest") + 1
    assert value(sent, "orderhub_outbox_depth", kind="send_po", status="pending") == 0
    assert value(sent, "orderhub_outbox_oldest_due_seconds", kind="send_po",
                 status="pending") == 0

    (setup.shipments / "asn-1.csv").write_bytes((FIXTURES / "shipments" /
                                                 "csv_partial.csv").read_bytes())
    (setup.shipments / "bad.csv").write_bytes((FIXTURES / "shipments" /
                                               "csv_wrong_columns.csv").read_bytes())
    poll(app)
    _, shipped = scrape(client)
    assert value(shipped, "orderhub_shipments_applied_total", supplier="agriest") == \
        value(sent, "orderhub_shipments_applied_total", supplier="agriest") + 1
    assert value(shipped, "orderhub_inbound_files_quarantined", supplier="agriest",
                 kind="shipment") == 1


def test_waiting_and_dead_jobs_show_their_age(app: Flask, client: FlaskClient) -> None:
    deliver(client)
    with hub_of(app).db.session() as s:
        s.execute(text("UPDATE outbox SET next_attempt_at = :due"),
                  {"due": utcnow() - timedelta(minutes=10)})
        s.commit()
    _, waiting = scrape(client)
    age = value(waiting, "orderhub_outbox_oldest_due_seconds", kind="send_po", status="pending")
    assert 600 <= age < 700

    with hub_of(app).db.session() as s:
        s.execute(text("UPDATE outbox SET status = 'dead'"))
        s.commit()
    _, dead = scrape(client)
    assert value(dead, "orderhub_outbox_dead_jobs", kind="send_po") == 1
    assert value(dead, "orderhub_outbox_depth", kind="send_po", status="pending") == 0


def test_shopify_errors_and_throttles_are_counted(client: FlaskClient) -> None:
    _, before = scrape(client)
    clock = FakeClock()
    admin = ShopifyAdmin(SHOP, TOKEN, api_version="2026-10", clock=clock, sleep=clock.sleep)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        shopify = FakeAdminGraphQL(mock)
        shopify.reply("OrderHubFulfillmentOrders", throttled(requested=50, available=0))
        shopify.reply("OrderHubFulfillmentOrders", fulfillment_orders(OPEN_AT_WAREHOUSE))
        shopify.reply("OrderHubFulfillmentOrders", {"errors": "[API] Invalid API key"},
                      status=401)
        assert len(admin.fulfillment_orders(ORDER_ID)) == 1
        with pytest.raises(ChannelApiError, match="401"):
            admin.fulfillment_orders(ORDER_ID)
        assert len(mock.calls) == 3 and mock.calls[0].request.url == GRAPHQL
    _, after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("orderhub_channel_api_throttles_total", channel="shopify") == 1
    assert delta("orderhub_channel_api_errors_total", channel="shopify", reason="refused") == 1
    assert delta("orderhub_channel_api_errors_total", channel="shopify", reason="server") == 0


# ---------------------------------------------------------------- who may read /metrics

def test_without_a_token_only_loopback_clients_get_metrics(client: FlaskClient) -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": address}).status_code == 200
    for address in ("203.0.113.7", "10.0.0.5", ""):  # "": gunicorn's unix socket, no proxy
        refused = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert refused.status_code == 403
        assert "METRICS_TOKEN" in refused.json["error"]
        assert b"orderhub_" not in refused.data


def test_behind_nginx_the_forwarded_client_counts(config: dict[str, str]) -> None:
    upgrade(config["DATABASE_URL"])
    behind = create_app({**config, "TRUST_PROXY": "1"})
    client = behind.test_client()
    local = {"REMOTE_ADDR": "127.0.0.1"}
    from_internet = client.get("/metrics", environ_base=local,
                               headers={"X-Forwarded-For": "198.51.100.4"})
    from_this_host = client.get("/metrics", environ_base=local,
                                headers={"X-Forwarded-For": "127.0.0.1"})
    assert (from_internet.status_code, from_this_host.status_code) == (403, 200)
    hub_of(behind).db.dispose()


def test_with_a_token_everyone_needs_it(config: dict[str, str]) -> None:
    upgrade(config["DATABASE_URL"])
    guarded = create_app({**config, "METRICS_TOKEN": METRICS_TOKEN})
    client = guarded.test_client()
    remote = {"REMOTE_ADDR": "203.0.113.7"}

    assert client.get("/metrics").status_code == 401  # loopback too
    wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"},
                      environ_base=remote).status_code == 401
    right = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                       environ_base=remote)
    assert right.status_code == 200 and b"orderhub_database_up 1.0" in right.data
    hub_of(guarded).db.dispose()


# ---------------------------------------------------------------- /readyz

def test_readyz_fails_while_the_schema_is_behind(config: dict[str, str]) -> None:
    url = config["DATABASE_URL"]
    upgrade(url, "0004")
    app = create_app(config)
    client = app.test_client()
    head = code_revisions()[0]

    behind = client.get("/readyz")
    assert behind.status_code == 503
    assert behind.json["status"] == "unavailable"
    assert behind.json["schema"] == "0004" and behind.json["head"] == head
    assert "behind" in behind.json["error"] and "db upgrade" in behind.json["error"]

    upgrade(url)
    assert (client.get("/readyz").status_code, client.get("/readyz").json) == \
        (200, {"status": "ready"})
    hub_of(app).db.dispose()


def test_readyz_fails_before_the_first_migration(config: dict[str, str]) -> None:
    app = create_app(config)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "not created" in response.json["error"]
    hub_of(app).db.dispose()


def test_a_newer_schema_is_ready_while_the_code_catches_up(app: Flask,
                                                           client: FlaskClient) -> None:
    with hub_of(app).db.session() as s:   # as after `db upgrade` by the next release
        s.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        s.commit()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["status"] == "ready" and "newer" in response.json["warning"]


def test_metrics_still_answer_when_the_database_does_not(config: dict[str, str]) -> None:
    down = create_app({**config, "DATABASE_URL":
                       "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"})
    client = down.test_client()
    assert client.get("/readyz").json == {"status": "unavailable",
                                          "error": "database unreachable"}
    families, samples = scrape(client)
    assert value(samples, "orderhub_database_up") == 0
    assert "orderhub_webhook_deliveries" in families


# ---------------------------------------------------------------- logs

def run_python(code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    environment.update(env or {})
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_json_log_lines_carry_the_delivery_and_order(sqlite_url: str, setup: Setup) -> None:
    result = run_python("""
        import sys
        from app import create_app
        from app.db import upgrade
        from tests.conftest import (apply_deliveries, base_config, encode, shopify_headers,
                                    shopify_payload)
        config = {**base_config(sys.argv[1]), "SUPPLIERS_FILE": sys.argv[2],
                  "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
        app = create_app(config)
        upgrade(config["DATABASE_URL"])
        body = encode(shopify_payload())
        response = app.test_client().post(
            "/webhooks/shopify", data=body,
            headers=shopify_headers(body, webhook_id="delivery-for-the-logs"))
        assert response.status_code == 200, response.json
        apply_deliveries(app)
    """, sqlite_url, str(setup.suppliers))
    assert result.returncode == 0, result.stderr

    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        order_id = str(conn.execute(select(Order.id)).scalar_one())
    engine.dispose()
    (accepted,) = [line for line in lines if line["logger"] == "app.webhooks"]
    assert accepted["level"] == "INFO" and "accepted" in accepted["message"]
    assert accepted["delivery_id"] == "delivery-for-the-logs"
    (done,) = [line for line in lines if line["logger"] == "app.intake"]
    assert done["level"] == "INFO" and "processed" in done["message"]
    assert (done["delivery_id"], done["order_id"]) == ("delivery-for-the-logs", order_id)
    assert {"time", "level", "logger", "message"} <= set(accepted) <= set(done)
    assert all(line.get("delivery_id") == "delivery-for-the-logs"
               for line in lines if line["logger"].startswith(("app.intake", "app.purchasing")))


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What OrderHub's own handler, as LOG_FORMAT=json, writes for app.* loggers at INFO."""
    stream = io.StringIO()
    handler = StdoutHandler()
    handler.setStream(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_dispatch_log_lines_carry_the_job_and_purchase_order(
        app: Flask, client: FlaskClient, json_lines: io.StringIO) -> None:
    deliver(client)
    assert dispatcher(app).run(once=True).sent == 1
    with hub_of(app).db.read_session() as s:
        job_id, po_id = s.execute(text("SELECT id, target FROM outbox")).one()

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    (sent,) = [line for line in lines
               if line["logger"] == "app.dispatch" and "uploaded" in line["message"]]
    assert uuid.UUID(sent["job_id"]) == uuid.UUID(str(job_id))
    assert sent["po_id"] == po_id
    assert "delivery_id" not in sent


# ---------------------------------------------------------------- several processes

COUNT = """
    import sys
    from app.metrics import SHIPMENTS_APPLIED, WEBHOOK_DELIVERIES
    WEBHOOK_DELIVERIES.labels("shopify", "processed").inc(int(sys.argv[1]))
    SHIPMENTS_APPLIED.labels("agriest").inc()
    if len(sys.argv) > 2:  # stay alive until told, then count once more
        print("counted", flush=True)
        sys.stdin.readline()
        WEBHOOK_DELIVERIES.labels("shopify", "processed").inc()
"""

SCRAPE = """
    import sys
    from app import create_app
    from tests.conftest import base_config
    app = create_app(base_config(sys.argv[1]))
    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.data
    with open(sys.argv[2], "w") as out:  # not stdout: the app logs there
        out.write(response.get_data(as_text=True))
"""


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "metrics"
    folder.mkdir()
    return folder


def scrape_elsewhere(database_url: str, folder: Path, env: dict[str, str] | None = None) -> str:
    """/metrics as a new process (a gunicorn worker, say) answers it."""
    out = folder / "scraped.txt"
    result = run_python(SCRAPE, database_url, str(out), env=env)
    assert result.returncode == 0, result.stderr
    return out.read_text()


def counted(body: str) -> tuple[float, float]:
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return (value(samples, "orderhub_webhook_deliveries_total", channel="shopify",
                  result="processed"),
            value(samples, "orderhub_shipments_applied_total", supplier="agriest"))


@pytest.fixture
def live_counter(multiproc_dir: Path) -> Iterator[subprocess.Popen[str]]:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
                   "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(COUNT), "1", "stay"],
                            cwd=REPO, env=environment, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_every_process_counts_into_one_metrics_page(sqlite_url: str, multiproc_dir: Path,
                                                   live_counter: subprocess.Popen[str],
                                                   tmp_path: Path) -> None:
    upgrade(sqlite_url)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    for n in ("2", "3"):   # two processes (a worker, a timer run) that count and exit
        assert run_python(COUNT, n, env=env).returncode == 0
    assert live_counter.stdout is not None and live_counter.stdout.readline() == "counted\n"

    assert counted(scrape_elsewhere(sqlite_url, tmp_path, env)) == (6, 3)
    # The exited processes' files are folded into one per type; the live one's stays.
    names = {p.name for p in multiproc_dir.glob("*.db")}
    assert names == {"counter_folded.db", f"counter_{live_counter.pid}.db"}

    assert live_counter.stdin is not None
    live_counter.stdin.write("\n")
    live_counter.stdin.flush()
    assert live_counter.wait(timeout=30) == 0
    assert counted(scrape_elsewhere(sqlite_url, tmp_path, env)) == (7, 3)  # none lost or doubled
    assert sorted(p.name for p in multiproc_dir.glob("*.db")) == ["counter_folded.db"]
    assert counted(scrape_elsewhere(sqlite_url, tmp_path, env)) == (7, 3)


def test_the_folder_may_come_from_the_settings_file(sqlite_url: str, multiproc_dir: Path,
                                                   tmp_path: Path) -> None:
    """As `orderhub po resend ...` runs: settings from ORDERHUB_ENV_FILE, read after start."""
    upgrade(sqlite_url)
    env_file = tmp_path / "orderhub.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in base_config(sqlite_url).items())
                        + f"PROMETHEUS_MULTIPROC_DIR={multiproc_dir}\n")
    result = run_python("""
        from app import create_app
        from app.metrics import SHIPMENTS_APPLIED
        create_app()
        SHIPMENTS_APPLIED.labels("agriest").inc(4)
    """, env={"ORDERHUB_ENV_FILE": str(env_file), "FLASK_SKIP_DOTENV": "1"})
    assert result.returncode == 0, result.stderr
    assert [p.name.split("_")[0] for p in multiproc_dir.glob("*.db")] == ["counter"]
    env = {"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    assert counted(scrape_elsewhere(sqlite_url, tmp_path, env)) == (0, 4)


def test_without_the_variable_each_process_counts_alone(sqlite_url: str,
                                                        tmp_path: Path) -> None:
    upgrade(sqlite_url)
    assert run_python(COUNT, "5").returncode == 0
    assert counted(scrape_elsewhere(sqlite_url, tmp_path)) == (0, 0)
