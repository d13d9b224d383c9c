"""Going live safely: shadow mode (files to a local folder, the supplier never contacted),
paused mode (purchase orders held, never failed), and `suppliers diff` against the supplier's
samples."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app.dispatch import default_transports
from app.models import OutboxJob, PurchaseOrder
from app.types import utcnow
from tests.conftest import (
    base_config,
    encode,
    hub_of,
    post_delivery,
    shopify_headers,
    shopify_payload,
)
from tests.integration.test_dispatch import dispatcher

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


class Trap:
    """A TCP port that counts every connection made to it (the supplier's real server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


def suppliers_file(tmp_path: Path, port: int, mode: str) -> Path:
    path = tmp_path / "suppliers.toml"
    path.write_text(f"""
[suppliers.agriest]
transport = "sftp://orders@127.0.0.1:{port}/inbound"
password_env = "AGRIEST_SFTP_PASSWORD"
host_key = "{HOST_KEY}"
format = "ubl"
sku_prefixes = ["AG-"]
mode = "{mode}"
samples = "agriest-samples"
shipments_path = "/outbound/shipments"

[suppliers.greensoil]
transport = "file://{tmp_path / 'greensoil'}"
vendors = ["GreenSoil Co"]
""")
    return path


def make_app(tmp_path: Path, database_url: str, port: int, mode: str) -> Flask:
    config = {**base_config(database_url),
              "SUPPLIERS_FILE": str(suppliers_file(tmp_path, port, mode)),
              "AGRIEST_SFTP_PASSWORD": "never-used", "SHADOW_DIR": str(tmp_path / "shadow"),
              "SHIPMENTS_SETTLE_SECONDS": "0"}
    return create_app(config)


@pytest.fixture
def apps(tmp_path: Path, database_url: str) -> Iterator[Any]:
    from app.db import upgrade

    upgrade(database_url)
    made: list[Flask] = []

    def build(port: int, mode: str) -> Flask:
        made.append(make_app(tmp_path, database_url, port, mode))
        return made[-1]

    yield build
    for app in made:
        hub_of(app).db.dispose()


def deliver(client: FlaskClient) -> None:
    body = encode(shopify_payload())
    assert post_delivery(client, body, shopify_headers(body)) == "processed"


def shadow_dispatcher(app: Flask, tmp_path: Path, **options: Any) -> Any:
    hub = hub_of(app)
    return dispatcher(app, transports=default_transports(
        hub.env, shadow_dir=str(tmp_path / "shadow")), **options)


def test_shadow_mode_writes_locally_and_never_connects(apps: Any, tmp_path: Path,
                                                       trap: Trap) -> None:
    app = apps(trap.port, "shadow")
    deliver(app.test_client())

    stats = shadow_dispatcher(app, tmp_path).run(once=True)

    assert stats.sent == 2 and stats.failed == 0
    shadow = tmp_path / "shadow" / "agriest" / "inbound"
    with hub_of(app).db.read_session() as s:
        po = s.execute(select(PurchaseOrder).where(PurchaseOrder.supplier == "agriest")
                       ).scalar_one()
    assert {p.name: p.read_bytes() for p in shadow.iterdir()} == {po.file_name: po.document}
    assert po.status == "sent"
    result = app.test_cli_runner().invoke(args=["shipments", "poll"])
    assert result.exit_code == 0, result.output
    check = app.test_cli_runner().invoke(args=["suppliers", "check", "agriest"])
    assert "folder " + str(shadow) in check.output
    assert trap.connections == 0


def test_paused_supplier_is_held_not_failed(apps: Any, tmp_path: Path, trap: Trap) -> None:
    app = apps(trap.port, "paused")
    deliver(app.test_client())

    a_day_later = shadow_dispatcher(app, tmp_path, clock=lambda: utcnow() + timedelta(hours=25))
    stats = a_day_later.run(once=True)

    assert stats.sent == 1 and stats.dead == 0   # greensoil went; agriest waits
    with hub_of(app).db.read_session() as s:
        held = s.execute(select(OutboxJob).where(OutboxJob.lane == "agriest")).scalar_one()
    assert (held.status, held.attempts) == ("pending", 0)
    assert trap.connections == 0

    resumed = apps(trap.port, "shadow")   # the operator switches it back on (to shadow here)
    assert shadow_dispatcher(resumed, tmp_path).run(once=True).sent == 1


def test_suppliers_diff_against_samples(apps: Any, tmp_path: Path, trap: Trap) -> None:
    app = apps(trap.port, "shadow")
    deliver(app.test_client())
    shadow_dispatcher(app, tmp_path).run(once=True)
    [ours] = list((tmp_path / "shadow" / "agriest" / "inbound").iterdir())
    samples = tmp_path / "agriest-samples"
    samples.mkdir()
    (samples / "their-order.xml").write_bytes(ours.read_bytes())
    runner = app.test_cli_runner()

    same = runner.invoke(args=["suppliers", "diff", "agriest"])
    assert same.exit_code == 0, same.output
    assert "same shape" in same.output and "1 of 1 sample(s) match" in same.output

    text = ours.read_text()
    assert 'unitCode="C62"' in text   # UN/ECE "one"; this supplier's samples say "EA"
    changed = text.replace('unitCode="C62"', 'unitCode="EA"', 1).replace(
        "<cbc:ID>", "<cbc:AccountingCostCode>GARDEN</cbc:AccountingCostCode><cbc:ID>", 1)
    (samples / "their-order.xml").write_text(changed)
    (samples / "their-notice.csv").write_text("Bestellung;Menge\n4711;2\n")

    different = runner.invoke(args=["suppliers", "diff", "agriest"])
    assert different.exit_code == 1
    assert "value differs at" in different.output and "'EA'" in different.output
    assert "'C62'" in different.output
    assert "only in the sample (we never write it): /Order/AccountingCostCode" in (
        different.output)
    assert "we wrote no file of its kind (csv)" in different.output
    assert "0 of 2 sample(s) match" in different.output

    missing = runner.invoke(args=["suppliers", "diff", "greensoil"])
    assert missing.exit_code == 2 and "no samples" in missing.output
