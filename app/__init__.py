"""OrderHub: `create_app()` builds the web app; importing this package touches nothing."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask, Response, jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app import logs
from app.alerts import Alerter
from app.channels.base import Channel, ChannelApi
from app.config import Settings, load_settings, load_settings_from_environment
from app.db import Database
from app.documents.model import Party
from app.hub import EXTENSION_KEY, Hub
from app.proxy import apply_proxy_fix, proxy_hops_from_env
from app.purchasing import Purchasing
from app.reconcile import SyncTarget
from app.suppliers import load_suppliers
from stock.rules import stock_rules_from_env

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `config` (a mapping of settings, for tests) or the environment."""
    settings = load_settings(config) if config is not None else load_settings_from_environment()
    env = config if config is not None else os.environ
    configure_logging(settings.log_level, settings.log_format)
    book = load_suppliers(settings.suppliers_file, env, required=settings.suppliers_file_required)
    if not book.suppliers:
        log.warning("no suppliers configured (%s): every line will need a mapping",
                    settings.suppliers_file)

    app = Flask(__name__)
    apply_proxy_fix(app, proxy_hops_from_env(env))  # TRUST_PROXY: nginx in front
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    database = Database(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.db_pool_size,
    )
    channels = build_channels(settings)
    apis, sync_targets = build_apis(env, channels)
    # Channels whose stock OrderHub keeps: those whose API can set quantities.
    inventory = {name: api for name, api in apis.items() if hasattr(api, "set_quantities")}
    purchasing = Purchasing(
        book=book,
        buyer=Party(id=settings.seller_id, name=settings.seller_name),
        dispatch_on=settings.dispatch_on,
        accept_test_orders=settings.accept_test_orders,
        inventory_channels=tuple(sorted(inventory)),
    )
    app.extensions[EXTENSION_KEY] = Hub(
        settings=settings, db=database, channels=channels, purchasing=purchasing,
        env=env, alerts=Alerter(settings.alerts), apis=apis, sync_targets=sync_targets,
        inventory=inventory,  # type: ignore[arg-type]
        stock_rules=stock_rules_from_env(env, sorted(inventory)),
    )

    from app import api, cli, dashboard, health, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(dashboard.bp)
    cli.register(app)
    _register_error_handlers(app)
    return app


def build_apis(env: Mapping[str, str], channels: dict[str, Channel]
               ) -> tuple[dict[str, ChannelApi], dict[str, SyncTarget]]:
    """The channels' API clients this installation has credentials for (none are called
    here), and which of them `orders sync` reads."""
    from app.channels.shopify_api import ShopifyAdmin, shopify_api_settings_from_env

    apis: dict[str, ChannelApi] = {}
    targets: dict[str, SyncTarget] = {}
    shopify = shopify_api_settings_from_env(env)
    if shopify is not None:
        apis["shopify"] = ShopifyAdmin.from_settings(shopify)
        if "shopify" in channels:
            targets["shopify"] = SyncTarget(channel=channels["shopify"], api=apis["shopify"],
                                            account=shopify.shop_domain)
    if "demo" in channels:   # only with DEMO_MODE=true (build_channels)
        from app.channels.demo import SHOP_DOMAIN, DemoChannel

        demo = channels["demo"]
        if isinstance(demo, DemoChannel):
            apis["demo"] = demo.api()
            targets["demo"] = SyncTarget(channel=demo, api=apis["demo"], account=SHOP_DOMAIN)
    return apis, targets


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this installation has secrets for; others answer 404."""
    channels: dict[str, Channel] = {}
    if settings.shopify_webhook_secrets:
        from app.channels.shopify import ShopifyChannel

        channels["shopify"] = ShopifyChannel(settings.shopify_webhook_secrets,
                                             settings.shopify_shop_domain)
    if settings.demo_mode and settings.demo_webhook_secret:
        from app.channels.demo import DemoChannel

        channels["demo"] = DemoChannel(settings.demo_webhook_secret, settings.demo_dir)
    return channels


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stdout (journald picks it up) as text or JSON lines, each with the ids of the
    work it belongs to (app/logs.py); leave a root configured by someone else alone."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, logs.StdoutHandler)), None)
    if handler is None and not root.handlers:
        handler = logs.StdoutHandler()
        root.addHandler(handler)
    if handler is not None:  # ours, maybe from an earlier create_app: follow the settings
        handler.setFormatter(logs.formatter(log_format))
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> tuple[Response, int]:
        # The sender retries a 503; nothing it sent was stored, so nothing is lost.
        log.error("database unavailable: %s", exc.orig)
        return jsonify(error="database unavailable, retry later"), 503
