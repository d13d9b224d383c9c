"""The engine and the unit of work.

SQLite is the default and has to carry thousands of orders a day from several gunicorn workers,
so every connection gets WAL (readers never block the writer), foreign keys, a busy timeout and
`synchronous=NORMAL` (durable at every checkpoint, and a committed transaction survives a process
crash; only a power cut can lose those since the last checkpoint). Write transactions start with
`BEGIN IMMEDIATE`: a deferred transaction that reads first and writes later fails with "database
is locked" when another writer committed in between, and no busy timeout helps it. Read-only
work uses plain `BEGIN` so that it never queues behind a writer.

Checkpoints (copying the write-ahead log back into the database file, with an fsync of each) are
the dispatcher's job while it runs (`Checkpointer`): left to SQLite, the connection whose commit
pushes the log past `wal_autocheckpoint` pages does it, which is a web worker answering a
webhook. The web's connections keep a high backstop, for when no dispatcher runs.

One unit of work per request, CLI run or job: `with db.session() as s: ...; s.commit()`. Leaving
the block without `commit()` rolls back.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

DEFERRED = "orderhub_deferred"

# SQLite's own default is 1,000 pages (4 MB), about 130 webhooks: at a burst's rate every web
# worker would checkpoint several times a second. The dispatcher's `Checkpointer` keeps the log
# far below this; 20,000 pages (80 MB) bounds it when no dispatcher runs.
WAL_AUTOCHECKPOINT_PAGES = 20_000

log = logging.getLogger(__name__)


class Database:
    """One engine and its session factories; built by `create_app`, never at import."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{DEFERRED: True})
        self._read = sessionmaker(reader, expire_on_commit=False)

    def session(self) -> Session:
        """A session for a unit of work that writes; commit it explicitly."""
        return self._write()

    def read_session(self) -> Session:
        """A session for reads only (on SQLite it does not take the write lock)."""
        return self._read()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection, for health checks and migrations."""
        with self.engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.read_session() as s:
            s.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def normalize_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean psycopg 3, the driver OrderHub ships."""
    parsed = make_url(url)
    if parsed.get_backend_name() in ("postgres", "postgresql") and parsed.drivername in (
        "postgres", "postgresql"
    ):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, busy_timeout_ms: int = 15_000, pool_size: int = 10) -> Engine:
    """Create the engine with the per-connection settings each database needs."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True
        )

    if parsed.database:
        folder = os.path.dirname(os.path.abspath(parsed.database))
        os.makedirs(folder, exist_ok=True)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(DEFERRED, False):
            conn.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(conn.connection.dbapi_connection, busy_timeout_ms)

    return engine


def _begin_immediate(dbapi_conn: Any, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock by trying again every millisecond or two.

    SQLite's own busy handler sleeps 1, 2, 5, 10, ... up to 100 ms between tries, so a writer
    that waits can miss every short gap of a busy one (the dispatcher applying deliveries
    back to back) and starve: a webhook would wait hundreds of milliseconds for a lock that is
    free most of the time. Trying at a short, steady interval takes the next gap.
    """
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + busy_timeout_ms / 1000
        pause = 0.0002
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    # As SQLAlchemy raises it for any statement: callers handle one type.
                    raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            time.sleep(pause)
            pause = min(pause * 1.5, 0.002)
    finally:
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()


class Checkpointer:
    """Checkpoints SQLite's write-ahead log every `every_s` seconds, from a thread of its own.

    PASSIVE: it copies what no reader still needs, takes no lock a writer or reader waits for,
    and leaves the rest to the next round. One pass copies each page changed since the last
    once, however many commits changed it, and syncs once. A context manager; on PostgreSQL
    it does nothing.
    """

    def __init__(self, db: Database, *, every_s: float = 0.25) -> None:
        self.db = db
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Checkpointer:
        if self.db.is_sqlite:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="wal-checkpoint",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (1 if it could not run now, log pages, pages copied)."""
        conn = self.db.engine.raw_connection()  # autocommit (`_on_connect`): no BEGIN
        try:
            cur = conn.cursor()
            try:
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                row = cur.fetchone()
            finally:
                cur.close()
        finally:
            conn.close()
        assert row is not None  # the pragma always answers one row
        busy, pages, copied = row
        return int(busy), int(pages), int(copied)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.checkpoint()
            except Exception:  # the database may be away: the next round tries again
                log.warning("checkpointing the SQLite log failed", exc_info=True)
                self._stop.wait(5)


MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def alembic_config(url: str) -> Any:
    """An Alembic config for our migrations folder and `url` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def schema_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's current revision, the code's head revision)."""
    with engine.connect() as conn:
        current = current_revision(conn)
    return current, code_revisions()[0]


@cache
def code_revisions() -> tuple[str | None, frozenset[str]]:
    """The code's head revision and every revision it knows. Read from the migrations folder
    once per process: they change only with the code, and reading them parses every file."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(""))
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The revision the database's schema is at (None before the first migration)."""
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
