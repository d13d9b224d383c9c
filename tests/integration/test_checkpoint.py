"""SQLite's write-ahead log is copied into the database file by the dispatcher's `Checkpointer`,
not by whichever web worker's commit happens to push the log past SQLite's 1,000 pages."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import WAL_AUTOCHECKPOINT_PAGES, Checkpointer, Database, upgrade
from app.models import EventStatus, WebhookEvent
from app.types import new_id


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    Checkpointer(database).checkpoint()  # the schema into the file, so it can be read alone
    yield database
    database.dispose()


def deliver(db: Database, count: int) -> None:
    """`count` webhook deliveries of ~4 KB, one commit each, as the web stores them."""
    for _ in range(count):
        with db.session() as session:
            session.add(WebhookEvent(
                id=new_id(), channel="shopify", delivery_id=f"d-{new_id()}",
                topic="orders/create", account="shop.myshopify.com", raw_body=b"x" * 4096,
                status=EventStatus.PENDING, replays=0))
            session.commit()


def deliveries_in_file(db: Database, tmp_path: Path) -> int:
    """How many deliveries the database file holds without its log: what was checkpointed."""
    path = db.engine.url.database
    assert path is not None
    copy = tmp_path / "file-alone.db"
    shutil.copyfile(path, copy)
    with closing(sqlite3.connect(f"file:{copy}?immutable=1", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0])


def test_commits_leave_the_log_to_the_checkpointer(db: Database, tmp_path: Path) -> None:
    with db.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == \
            WAL_AUTOCHECKPOINT_PAGES
    deliver(db, 300)  # over 1,000 log pages: SQLite's default would have checkpointed
    assert deliveries_in_file(db, tmp_path) == 0

    busy, pages, copied = Checkpointer(db).checkpoint()

    assert (busy, copied) == (0, pages) and pages > 1000
    assert deliveries_in_file(db, tmp_path) == 300


def test_running_checkpointer_copies_new_commits_within_its_interval(
        db: Database, tmp_path: Path) -> None:
    with Checkpointer(db, every_s=0.05):
        deliver(db, 20)
        deadline = time.monotonic() + 5
        while deliveries_in_file(db, tmp_path) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deliveries_in_file(db, tmp_path) == 20
    deliver(db, 5)  # stopped: nothing copies these
    time.sleep(0.2)
    assert deliveries_in_file(db, tmp_path) == 20
