"""`flask --app wsgi ...` commands. Each parses its arguments, calls one service, and exits
non-zero when that service failed."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TextIO

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.breaker import CircuitBreaker
from app.dispatch import Dispatcher, default_transports, folder_transports
from app.errors import NotFound
from app.hub import Hub, hub
from app.intake import Outcome, replay_event
from app.models import Order
from app.outbox import RetryPolicy
from app.purchasing import find_purchase_order, route_order
from app.resend import ResendRefused
from app.resend import resend_purchase_order as resend_po
from app.skumap import import_sku_rows, parse_sku_csv
from app.types import utcnow

db_cli = AppGroup("db", help="Create, migrate and inspect the database schema.")
orders_cli = AppGroup("orders", help="Repair tools for orders.")
suppliers_cli = AppGroup("suppliers", help="Suppliers and the SKU map.")
po_cli = AppGroup("po", help="Purchase orders.")
shipments_cli = AppGroup("shipments", help="Suppliers' shipment notices.")


log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    for group in (db_cli, orders_cli, suppliers_cli, po_cli, shipments_cli, stock_cli):
        app.cli.add_command(group)
    app.cli.add_command(dispatch)


@click.command("dispatch")
@with_appcontext
@click.option("--once", is_flag=True,
              help="Send what is due now and exit (non-zero if anything failed).")
def dispatch(once: bool) -> None:
    """Send queued purchase orders to suppliers: loop until stopped, or drain once."""
    dispatcher = build_dispatcher(hub())
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("dispatcher stopping (signal %d): finishing the files in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not once:
        log.info("dispatcher %s running: %d supplier(s) at a time, polling every %ss",
                 dispatcher.owner, dispatcher.threads, dispatcher.poll_seconds)
    stats = dispatcher.run(once=once, stop=stop)
    click.echo(f"dispatch: {stats.summary()}")
    if once and stats.failed:
        sys.exit(1)


def build_dispatcher(services: Hub) -> Dispatcher:
    """A dispatcher configured from the app's settings and suppliers."""
    settings = services.settings
    return Dispatcher(
        db=services.db, purchasing=services.purchasing,
        policy=RetryPolicy(base_seconds=settings.retry_base_seconds,
                           cap_seconds=settings.retry_cap_seconds,
                           give_up_after=timedelta(hours=settings.give_up_hours),
                           lease_seconds=settings.lease_seconds),
        transports=default_transports(services.env, shadow_dir=settings.shadow_dir),
        alerts=services.alerts,
        threads=settings.dispatch_threads, batch=settings.dispatch_batch,
        poll_seconds=settings.dispatch_poll_seconds,
        breaker=CircuitBreaker(failures=settings.breaker_failures,
                               cooldown=settings.breaker_cooldown_seconds),
        folders=folder_transports(services.env, shadow_dir=settings.shadow_dir),
        ack_poll_seconds=settings.ack_poll_seconds, apis=services.apis,
        ack_settle_seconds=settings.shipments_settle_seconds,
        stock_rules=services.stock_rules,
        sync_targets=services.sync_targets,
        sync_overlap=timedelta(hours=settings.orders_sync_overlap_hours),
        channels=services.channels, intake_lock_share=settings.intake_lock_share,
        intake_max_delay_seconds=settings.intake_max_delay_seconds)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Create the schema or migrate it to REVISION (default: the newest)."""
    from app.db import upgrade

    upgrade(hub().settings.database_url, revision)
    click.echo(f"database at revision {revision}")


@db_cli.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of the code."""
    from app.db import schema_revisions

    current, head = schema_revisions(hub().db.engine)
    click.echo(f"database: {current or 'empty'}  code: {head}")
    if current != head:
        sys.exit(1)


@db_cli.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--keep", type=click.IntRange(min=1),
              help="With a folder: keep only the newest N backups there.")
def db_backup(path: Path, keep: int | None) -> None:
    """Copy the SQLite database to PATH (a file, or a folder for a timestamped file) while
    OrderHub runs."""
    from app.backup import BackupError, backup_sqlite

    try:
        result = backup_sqlite(hub().settings.database_url, path, now=utcnow(), keep=keep)
    except BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2 if "pg_dump" in str(exc) else 1)
    click.echo(f"backup written: {result.path} ({result.size} bytes)"
               + (f"; removed {len(result.removed)} older" if result.removed else ""))


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    from alembic import command

    from app.db import alembic_config

    command.revision(
        alembic_config(hub().settings.database_url), message=message, autogenerate=True
    )


@orders_cli.command("replay")
@click.argument("event_ref")
def orders_replay(event_ref: str) -> None:
    """Re-run a stored delivery (EVENT_REF: OrderHub event id or the platform's delivery id)."""
    services = hub()
    try:
        with services.db.session() as session:
            result = replay_event(session, channels=services.channels, ref=event_ref,
                                  purchasing=services.purchasing)
            session.commit()
    except NotFound as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"event {result.event_id}: {result.outcome.value}"
               + (f" (order {result.order_id})" if result.order_id else "")
               + (f": {result.reason}" if result.reason else ""))
    if result.outcome is Outcome.QUARANTINED:
        sys.exit(1)


@orders_cli.command("reroute")
@click.argument("order_id")
def orders_reroute(order_id: str) -> None:
    """Route again the lines of ORDER_ID that had no supplier (after adding a mapping)."""
    services = hub()
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        click.echo(f"error: {order_id!r} is not an order id", err=True)
        sys.exit(2)
    with services.db.session() as session:
        if session.get(Order, key) is None:
            click.echo(f"error: no order {order_id}", err=True)
            sys.exit(2)
        result = route_order(session, order_id=key, purchasing=services.purchasing, now=utcnow())
        session.commit()
    click.echo(f"order {order_id}: {result.order_status}; {len(result.created)} new and "
               f"{len(result.replaced)} replaced purchase order(s); {result.unrouted} line(s) "
               "still need a mapping"
               + (f"; document failed for {', '.join(result.failed)}" if result.failed else ""))
    if result.unrouted or result.failed:
        sys.exit(1)


@suppliers_cli.command("import-skus")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
def suppliers_import_skus(csv_file: TextIO) -> None:
    """Import the SKU map from CSV_FILE (sku, supplier, supplier_sku, cost, priority)."""
    services = hub()
    rows, errors = parse_sku_csv(csv_file, services.purchasing.book)
    if errors:
        for error in errors:
            click.echo(f"{csv_file.name}: {error}", err=True)
        click.echo(f"nothing imported: {len(errors)} bad row(s)", err=True)
        sys.exit(1)
    with services.db.session() as session:
        added, updated = import_sku_rows(session, rows)
        session.commit()
    click.echo(f"imported {len(rows)} row(s): {added} added, {updated} updated")


@suppliers_cli.command("check")
@click.argument("name", required=False)
def suppliers_check(name: str | None) -> None:
    """Connect to NAME's server (or every supplier's): who it is, write access, its folders."""
    from app.supplier_check import check_supplier, describe

    services = hub()
    book = services.purchasing.book
    if name is not None and book.get(name) is None:
        known = ", ".join(s.key for s in book.suppliers) or "none configured"
        click.echo(f"error: no supplier {name!r} (known: {known})", err=True)
        sys.exit(2)
    chosen = [book.by_key[name]] if name else list(book.suppliers)
    if not chosen:
        click.echo("no suppliers configured", err=True)
        sys.exit(2)
    failed = 0
    for supplier in chosen:
        result = check_supplier(supplier, folder_transports(
            services.env, shadow_dir=services.settings.shadow_dir))
        click.echo("\n".join(describe(result)))
        failed += not result.ok
    if failed:
        click.echo(f"{failed} of {len(chosen)} supplier(s) failed the check", err=True)
        sys.exit(1)


@suppliers_cli.command("diff")
@click.argument("name")
@click.option("--samples", type=click.Path(exists=True, file_okay=False),
              help="Folder of the supplier's sample files (default: its `samples` setting).")
def suppliers_diff(name: str, samples: str | None) -> None:
    """Compare the files written for NAME in shadow mode with the supplier's samples."""
    from pathlib import Path

    from app.shadow import diff_folders

    services = hub()
    supplier = services.purchasing.book.get(name)
    if supplier is None:
        click.echo(f"error: no supplier {name!r}", err=True)
        sys.exit(2)
    folder = samples or supplier.samples
    if folder is None or not Path(folder).is_dir():
        click.echo(f"error: no samples for {name}: set samples = \"FOLDER\" in its table or "
                   "pass --samples FOLDER", err=True)
        sys.exit(2)
    ours = Path(services.settings.shadow_dir) / supplier.key / "inbound"
    if supplier.mode != "shadow":
        click.echo(f"note: {name} is not in shadow mode (mode = \"{supplier.mode}\"); "
                   f"comparing what is in {ours}")
    results = diff_folders(ours, Path(folder))
    if not results:
        click.echo(f"error: {folder} holds no sample files", err=True)
        sys.exit(2)
    differing = 0
    for result in results:
        head = f"{result.sample} <-> {result.ours or '(nothing of ours)'}"
        if not result.differences:
            click.echo(f"{head}: same shape")
            continue
        differing += 1
        click.echo(f"{head}:")
        for line in result.differences:
            click.echo(f"  {line}")
    click.echo(f"{len(results) - differing} of {len(results)} sample(s) match what OrderHub "
               f"writes for {name}")
    if differing:
        sys.exit(1)


@po_cli.command("show")
@click.argument("po_id")
def po_show(po_id: str) -> None:
    """Print one purchase order's details and its document as stored."""
    services = hub()
    with services.db.read_session() as session:
        po = find_purchase_order(session, po_id)
        if po is None:
            click.echo(f"error: no purchase order {po_id}", err=True)
            sys.exit(2)
        click.echo(f"purchase order {po.po_number} v{po.version} ({po.action}) to {po.supplier}: "
                   f"{po.status}, {po.format}, file {po.file_name}")
        if po.error:
            click.echo(f"error: {po.error}")
        if po.document:
            click.echo(po.document.decode("utf-8"))


@po_cli.command("resend")
@click.argument("po_id")
def po_resend(po_id: str) -> None:
    """Queue PO_ID again: a dead one under its own name, a sent one under a new name."""
    services = hub()
    with services.db.session() as session:
        po = find_purchase_order(session, po_id)
        if po is None:
            click.echo(f"error: no purchase order {po_id}", err=True)
            sys.exit(2)
        try:
            name = resend_po(session, po, now=utcnow())
        except ResendRefused as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        session.commit()
        click.echo(f"purchase order {po.po_number} v{po.version} queued for {po.supplier} "
                   f"as {name}")


@shipments_cli.command("poll")
@click.option("--supplier", "only", help="Only this supplier.")
def shipments_poll(only: str | None) -> None:
    """Import new shipment notices from suppliers' shipments_path (the timer runs this)."""
    from shipment.imports import poll_shipments

    services = hub()
    if only is not None and services.purchasing.book.get(only) is None:
        click.echo(f"error: no supplier {only!r}", err=True)
        sys.exit(2)
    run = poll_shipments(db=services.db, book=services.purchasing.book,
                         folders=folder_transports(services.env,
                                                   shadow_dir=services.settings.shadow_dir),
                         alerts=services.alerts,
                         now=utcnow, api_channels=set(services.apis),
                         settle_seconds=services.settings.shipments_settle_seconds, only=only)
    click.echo(f"shipments: {run.files} file(s), {run.applied} applied ({run.shipments} "
               f"shipment(s)), {run.quarantined} quarantined, {run.skipped} left for later"
               + (f"; could not read {', '.join(run.errors)}" if run.errors else ""))
    if run.quarantined or run.errors:
        sys.exit(1)


@orders_cli.command("sync")
@click.option("--since", help="ISO time to start from (default: the last good run, minus the "
              "overlap; the first run reads one day).")
def orders_sync(since: str | None) -> None:
    """Read orders from each channel's API and take in those webhooks missed (hourly timer)."""
    from datetime import datetime

    from app.reconcile import sync_orders, sync_since

    services = hub()
    if not services.sync_targets:
        click.echo("error: no channel has an API configured (e.g. SHOPIFY_ACCESS_TOKEN)",
                   err=True)
        sys.exit(2)
    start: datetime | None = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            click.echo(f"error: --since {since!r} is not an ISO 8601 time", err=True)
            sys.exit(2)
        if start.tzinfo is None:
            click.echo("error: --since needs a time zone (e.g. 2026-11-20T00:00:00Z)", err=True)
            sys.exit(2)
    failed = 0
    for name, target in services.sync_targets.items():
        now = utcnow()
        begin = start or sync_since(services.db, name, now=now, overlap=timedelta(
            hours=services.settings.orders_sync_overlap_hours))
        run = sync_orders(services.db, target, purchasing=services.purchasing, since=begin,
                          now=now)
        click.echo(f"{name}: since {begin.isoformat(timespec='seconds')}: {run.fetched} read, "
                   f"{run.created} new, {run.updated} updated, {run.unchanged} unchanged, "
                   f"{run.quarantined} quarantined" + (f"; FAILED: {run.error}"
                                                       if run.error else ""))
        failed += run.status != "ok"
    if failed:
        sys.exit(1)


stock_cli = AppGroup("stock", help="Stock from suppliers' feeds to every channel.")


@stock_cli.command("sync")
@click.option("--dry-run", is_flag=True, help="Read and compute, push nothing; print the diff.")
@click.option("--supplier", "only", help="Only this supplier's feed.")
@click.option("--accept-feed", "accept", metavar="NAME",
              help="Apply NAME's feed even though a guard held it (after checking it).")
def stock_sync(dry_run: bool, only: str | None, accept: str | None) -> None:
    """Read suppliers' stock feeds and push changed quantities (the timer runs this)."""
    from stock.sync import sync_stock

    services = hub()
    book = services.purchasing.book
    for name in (only, accept):
        if name is not None and book.get(name) is None:
            click.echo(f"error: no supplier {name!r}", err=True)
            sys.exit(2)
    steps = [s.key for s in book.suppliers if s.stock_feed and only in (None, s.key)]
    steps += list(services.inventory)
    interactive = sys.stdout.isatty()   # a progress bar in a terminal, one line otherwise
    with open(os.devnull, "w") as quiet, click.progressbar(
            length=len(steps), label="stock sync", file=sys.stdout if interactive else quiet,
            show_pos=True) as bar:
        run = sync_stock(db=services.db, book=book,
                         folders=folder_transports(services.env,
                                                   shadow_dir=services.settings.shadow_dir),
                         apis=services.inventory, rules=services.stock_rules,
                         alerts=services.alerts, now=utcnow, dry_run=dry_run, only=only,
                         accept_feed=accept, progress=lambda _step: bar.update(1))
    for feed in run.feeds:
        if feed.status not in ("ok", "dry-run"):
            click.echo(f"{feed.supplier}: {feed.status}: {feed.reason}")
        for problem in feed.problems:
            click.echo(f"{feed.supplier}: {problem}")
    if dry_run:
        for push in run.pushes:
            for line in push.diff:
                click.echo(f"{push.channel} {line}")
    click.echo(run.summary())
    if run.failed:
        sys.exit(1)
