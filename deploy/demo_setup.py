"""The demo's folder and settings: secrets (from `.env` where it has them), the environment every
demo process gets, the demo's suppliers.toml (the SFTP server's host key pinned), and the
banner `make run` prints."""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

from deploy.demo_catalog import SFTP_USER_FOLDERS, STOCK_FEED, SUPPLIERS, DemoPaths

# From the developer's .env (or environment): who they are to the API and the dashboard, and the
# Shopify secret so `make send-test-webhook` works against the demo too. Nothing else: no real
# channel tokens, alert targets or databases leak into the demo.
FROM_DOTENV = ("SECRET_KEY", "ORDERHUB_API_TOKEN", "DASHBOARD_PASSWORD",
               "SHOPIFY_WEBHOOK_SECRET", "DEMO_WEBHOOK_SECRET", "LOG_LEVEL")
GENERATED = ("SECRET_KEY", "ORDERHUB_API_TOKEN", "DASHBOARD_PASSWORD", "DEMO_WEBHOOK_SECRET")
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV", "TERM")


def make_folders(paths: DemoPaths) -> None:
    """var/demo/ with each supplier's SFTP folders (inbound/, shipments/, stock/)."""
    for folder in (paths.root, paths.logs, paths.orders, paths.pids.parent):
        folder.mkdir(parents=True, exist_ok=True)
    paths.root.chmod(0o700)   # the demo's secrets and host key live here
    for supplier in SUPPLIERS:
        for name in SFTP_USER_FOLDERS:
            paths.supplier_dir(supplier.key, name).mkdir(parents=True, exist_ok=True)


def read_secrets(environ: Mapping[str, str], cwd: Path) -> tuple[dict[str, str], list[str]]:
    """The settings in FROM_DOTENV from the environment, else `.env` (or ORDERHUB_ENV_FILE);
    those in GENERATED made up when missing. Returns them and the names of those made up that
    .env normally has."""
    from dotenv import dotenv_values

    env_file = Path(environ.get("ORDERHUB_ENV_FILE") or cwd / ".env")
    from_file = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.is_file() \
        else {}
    found = {k: (environ.get(k) or from_file.get(k) or "").strip() for k in FROM_DOTENV}
    values = {k: v for k, v in found.items() if v}
    made = [k for k in GENERATED if k not in values]
    for name in made:
        values[name] = secrets.token_urlsafe(24)
    # The demo's own webhook secret is normally made up; only a missing .env is worth a word.
    return values, [k for k in made if k != "DEMO_WEBHOOK_SECRET"]


def demo_environment(paths: DemoPaths, given: Mapping[str, str], passwords: Mapping[str, str],
                     *, interval: float, repo: Path,
                     environ: Mapping[str, str]) -> dict[str, str]:
    """Everything OrderHub's processes need for the demo (and nothing from the developer's
    shell beyond PATH, HOME, locale and the like)."""
    env = {k: environ[k] for k in INHERITED if k in environ}
    env.update(settings(paths, given, passwords, interval=interval))
    env.update(PYTHONPATH=str(repo), PYTHONUNBUFFERED="1", FLASK_SKIP_DOTENV="1",
               FLASK_APP="wsgi", ORDERHUB_ENV_FILE=str(paths.env_file), GUNICORN_WORKERS="2")
    return env


def settings(paths: DemoPaths, given: Mapping[str, str], passwords: Mapping[str, str], *,
             interval: float) -> dict[str, str]:
    """OrderHub's settings for the demo: the ones written to demo.env too."""
    values = dict(given)
    values.setdefault("LOG_LEVEL", "INFO")
    values.update({
        "DATABASE_URL": f"sqlite:///{paths.database}",
        "SUPPLIERS_FILE": str(paths.suppliers_toml),
        "DEMO_MODE": "true",
        "DEMO_DIR": str(paths.root),
        "SHADOW_DIR": str(paths.root / "shadow"),
        "SELLER_ID": "demo-garden",
        "SELLER_NAME": "Demo Garden Shop",
        # Demo orders are not all paid yet: they go to suppliers anyway.
        "DISPATCH_ON": "created",
        "DISPATCH_POLL_SECONDS": "0.5",
        # A hiccup while everything starts is retried in seconds, not minutes.
        "DISPATCH_RETRY_BASE_SECONDS": str(max(2.0, interval)),
        "DISPATCH_BREAKER_COOLDOWN_SECONDS": str(max(5.0, interval)),
        "SHIPMENTS_SETTLE_SECONDS": "0.5",
        "ORDERS_SYNC_OVERLAP_HOURS": "0.1",
    })
    values.update(passwords)
    return values


def supplier_passwords() -> dict[str, str]:
    """A fresh SFTP password per demo supplier, for this run."""
    return {s.password_env: secrets.token_urlsafe(18) for s in SUPPLIERS}


def write_suppliers_toml(paths: DemoPaths, *, port: int, host_key: str) -> None:
    lines = ["# Written by deploy/demo.py for this run: the demo suppliers, on the demo's SFTP",
             "# server (127.0.0.1), its host key pinned. Rewritten at every start."]
    for s in SUPPLIERS:
        lines += [
            "",
            f"[suppliers.{s.key}]",
            f'name = "{s.name}"',
            f'transport = "sftp://{s.key}@127.0.0.1:{port}/inbound"',
            f'password_env = "{s.password_env}"',
            f'host_key = "{host_key}"',
            f'format = "{s.format}"',
            'shipments_path = "/shipments"',
            f'stock_feed = "/stock/{STOCK_FEED}"',
            f'sku_prefixes = ["{s.sku_prefix}"]',
            f'vendors = ["{s.name}"]',
        ]
        if s.default:
            lines.append("default = true")
    _write_private(paths.suppliers_toml, "\n".join(lines) + "\n")


def write_env_file(paths: DemoPaths, values: Mapping[str, str]) -> None:
    """demo.env: the demo's settings, for OrderHub commands run by hand against the demo."""
    body = ["# Written by deploy/demo.py for this run. To use OrderHub's commands on the demo:",
            f"#   FLASK_SKIP_DOTENV=1 ORDERHUB_ENV_FILE={paths.env_file} "
            ".venv/bin/flask --app wsgi po show PO_ID"]
    body += [f"{k}={v}" for k, v in sorted(values.items())]
    _write_private(paths.env_file, "\n".join(body) + "\n")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def shown(path: Path, cwd: Path) -> str:
    """`path` relative to where the user is, when it is below it."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def banner(*, url: str, token: str, sftp_port: int, paths: DemoPaths, cwd: Path,
           interval: float, made: list[str]) -> str:
    root = shown(paths.root, cwd)
    users = " / ".join(f"{s.key} ({s.format} POs, {s.notice_format.upper()} notices)"
                       for s in SUPPLIERS)
    auth = f"-H \"Authorization: Bearer $TOKEN\" {url}"
    others = [name for name in made if name != "DASHBOARD_PASSWORD"]
    note = (f"\n  ({', '.join(others)} not in .env: made up for this run)" if others else "")
    password = (f"DASHBOARD_PASSWORD from {root}/demo.env (not in .env: made up for this run)"
                if "DASHBOARD_PASSWORD" in made else "DASHBOARD_PASSWORD from .env")
    return f"""
OrderHub demo is running: a demo shop sends an order about every {interval:g} s, the two demo
suppliers answer each purchase order with a shipment notice. Ctrl-C stops everything.

  OrderHub    {url}
  dashboard   {url}/   login with the password {password}
  API token   {token}   (for the JSON API below){note}
  SFTP        127.0.0.1:{sftp_port}, users {users};
              passwords in {root}/demo.env, e.g. sftp -P {sftp_port} greenleaf@127.0.0.1
  files       {root}/sftp/<supplier>/inbound/     purchase orders OrderHub uploaded
              {root}/sftp/<supplier>/shipments/   notices (OrderHub moves them to processed/)
              {root}/sftp/<supplier>/stock/       the suppliers' stock feeds
              {root}/orders/, {root}/fulfillments.jsonl   the demo shop's orders and fulfillments
  logs        {root}/logs/ (web, dispatch, timers, sftp)

  TOKEN={shlex.quote(token)}
  curl {auth}/api/orders
  curl {auth}/api/purchase-orders
  curl {auth}/api/outbox
  curl {url}/healthz ; curl {url}/metrics
  make send-test-webhook          # a signed sample Shopify order, into the same demo
"""
