"""`db backup` while orders keep arriving: the copy is one consistent instant of the database,
holds every delivery acknowledged before the backup began, and OrderHub runs on it after a
restore (and applies what was still pending)."""

from __future__ import annotations

import copy
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask

from app import create_app
from app.db import schema_revisions, upgrade
from tests.conftest import (
    apply_deliveries,
    base_config,
    encode,
    hub_of,
    shopify_headers,
    shopify_payload,
)


def test_backup_during_concurrent_ingest_restores_every_committed_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade(url)
    app = create_app(base_config(url))
    acknowledged: list[tuple[float, str]] = []
    stop = threading.Event()

    def shop(start: int) -> None:
        client = app.test_client()
        base = shopify_payload()
        n = start
        while not stop.is_set():
            payload = copy.deepcopy(base)
            payload["id"] = 7_000_000 + n
            payload["name"] = f"#{n}"
            body = encode(payload)
            headers = shopify_headers(body)
            if client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200:
                acknowledged.append((time.monotonic(), headers["X-Shopify-Webhook-Id"]))
            n += 2

    shoppers = [threading.Thread(target=shop, args=(i,)) for i in (0, 1)]
    for t in shoppers:
        t.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["db", "backup", str(tmp_path / "backups")])
        finished = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        for t in shoppers:
            t.join(timeout=10)
    hub_of(app).db.dispose()
    assert result.exit_code == 0, result.output
    [backup] = list((tmp_path / "backups").iterdir())
    assert backup.name.startswith("orderhub-") and backup.suffix == ".db"

    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        in_backup = {row[0] for row in db.execute("SELECT delivery_id FROM webhook_events")}
    before = {oid for at, oid in acknowledged if at < started}
    after = {oid for at, oid in acknowledged if at > finished}
    assert before and after, "orders kept arriving during the backup"
    assert before <= in_backup, "a delivery acknowledged before the backup is missing"
    assert not (after & in_backup)

    # Restore: services stopped, the backup copied over the database, started again.
    restored = tmp_path / "restored.db"
    shutil.copyfile(backup, restored)
    again: Flask = create_app(base_config(f"sqlite:///{restored}"))
    try:
        current, head = schema_revisions(hub_of(again).db.engine)
        assert current == head
        apply_deliveries(again)  # what the dispatcher does once started
        response = again.test_client().get("/api/orders?limit=200",
                                           headers={"Authorization": "Bearer "
                                                    + base_config("")["ORDERHUB_API_TOKEN"]})
        assert response.status_code == 200
        assert len(response.json["orders"]) == min(200, len(in_backup))
    finally:
        hub_of(again).db.dispose()


def test_keep_prunes_old_backups_and_postgres_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade(url)
    app = create_app(base_config(url))
    folder = tmp_path / "backups"
    folder.mkdir()
    for stamp in ("20261120T000000Z", "20261121T000000Z", "20261122T000000Z"):
        (folder / f"orderhub-{stamp}.db").write_bytes(b"old")
    (folder / "notes.txt").write_text("not a backup")
    result = app.test_cli_runner().invoke(args=["db", "backup", "--keep", "2", str(folder)])
    hub_of(app).db.dispose()
    assert result.exit_code == 0, result.output
    assert "removed 2 older" in result.output
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "notes.txt" and names[1] == "orderhub-20261122T000000Z.db"
    assert len(names) == 3

    pg = create_app(base_config("postgresql://nobody@127.0.0.1:1/none"))
    refused = pg.test_cli_runner().invoke(args=["db", "backup", str(folder)])
    assert refused.exit_code == 2 and "pg_dump" in refused.output
