"""The services one app instance owns (settings, database, channels), kept on the Flask app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import current_app

from app.alerts import Alerter, AlertSettings, AlertSink
from app.channels.base import Channel, ChannelApi, InventoryApi
from app.config import Settings
from app.db import Database
from app.purchasing import Purchasing
from app.reconcile import SyncTarget
from stock.levels import StockRules

EXTENSION_KEY = "orderhub"


@dataclass
class Hub:
    settings: Settings
    db: Database
    channels: dict[str, Channel]
    purchasing: Purchasing
    alerts: AlertSink = field(default_factory=lambda: Alerter(AlertSettings()))
    env: Mapping[str, str] = field(default_factory=dict)  # where secrets are read from
    apis: dict[str, ChannelApi] = field(default_factory=dict)  # channels with an API client
    sync_targets: dict[str, SyncTarget] = field(default_factory=dict)
    inventory: dict[str, InventoryApi] = field(default_factory=dict)  # channels we keep stock on
    stock_rules: StockRules = field(default_factory=StockRules)


def hub() -> Hub:
    """The running app's `Hub` (inside a request or CLI command)."""
    services: Hub = current_app.extensions[EXTENSION_KEY]
    return services
