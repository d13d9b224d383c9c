"""The services one app instance owns (settings, database, channels), kept on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.channels.base import Channel
from app.config import Settings
from app.db import Database
from app.purchasing import Purchasing

EXTENSION_KEY = "orderhub"


@dataclass
class Hub:
    settings: Settings
    db: Database
    channels: dict[str, Channel]
    purchasing: Purchasing


def hub() -> Hub:
    """The running app's `Hub` (inside a request or CLI command)."""
    services: Hub = current_app.extensions[EXTENSION_KEY]
    return services
