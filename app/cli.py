"""`flask --app wsgi ...` commands. Each parses its arguments, calls one service, and exits
non-zero when that service failed."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from app.errors import NotFound
from app.hub import hub
from app.intake import Outcome, replay_event

db_cli = AppGroup("db", help="Create, migrate and inspect the database schema.")
orders_cli = AppGroup("orders", help="Repair tools for orders.")


def register(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(orders_cli)


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
            result = replay_event(session, channels=services.channels, ref=event_ref)
            session.commit()
    except NotFound as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"event {result.event_id}: {result.outcome.value}"
               + (f" (order {result.order_id})" if result.order_id else "")
               + (f": {result.reason}" if result.reason else ""))
    if result.outcome is Outcome.QUARANTINED:
        sys.exit(1)
