"""Settings from the environment (and `.env`), checked once at start.

A bad setting stops the start with a message naming it: a service that starts with a typo in its
database URL or an empty API token fails later, at a worse time, with a worse message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.alerts import AlertSettings, alert_settings_from_env
from app.db import normalize_url
from app.errors import ConfigError
from app.logs import LOG_FORMATS
from app.metrics import check_multiprocess, count_in_shared_folder

DEFAULT_DATABASE_URL = "sqlite:///var/orderhub.db"
MIN_SECRET_LENGTH = 16
MIN_DASHBOARD_PASSWORD_LENGTH = 12  # typed by a person; the login is throttled (app/dashboard)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SUPPORTED_DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    database_url: str
    secret_key: str
    api_token: str
    dashboard_password: str | None = None   # unset: no dashboard (its pages answer 404)
    max_body_bytes: int = 2 * 1024 * 1024
    sqlite_busy_timeout_ms: int = 15_000
    db_pool_size: int = 10
    log_level: str = "INFO"
    log_format: str = "text"                # LOG_FORMAT: text or json (one object a line)
    metrics_token: str | None = None        # unset: /metrics answers loopback clients only
    shopify_webhook_secrets: tuple[str, ...] = ()
    shopify_shop_domain: str | None = None
    suppliers_file: str = "suppliers.toml"
    suppliers_file_required: bool = False   # True when SUPPLIERS_FILE was set explicitly
    dispatch_on: str = "paid"
    accept_test_orders: bool = False
    seller_id: str = "orderhub"
    seller_name: str = "OrderHub seller"
    dispatch_threads: int = 4               # suppliers served at once by one dispatcher
    dispatch_batch: int = 50                # jobs claimed at a time for one supplier
    dispatch_poll_seconds: float = 0.5      # how soon an idle dispatcher sees new work
    intake_lock_share: float = 0.02         # SQLite: the dispatcher's share of the write lock
    intake_max_delay_seconds: float = 300.0  # ... growing to all of it as deliveries wait this long
    retry_base_seconds: float = 60.0
    retry_cap_seconds: float = 3600.0
    give_up_hours: float = 24.0
    lease_seconds: float = 300.0
    breaker_failures: int = 3
    breaker_cooldown_seconds: float = 30.0
    ack_poll_seconds: float = 60.0
    shipments_settle_seconds: float = 2.0
    orders_sync_overlap_hours: float = 2.0
    shadow_dir: str = "var/shadow"
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # The demo channel (`make run`): off unless DEMO_MODE is true, and then it needs a secret.
    demo_mode: bool = False
    demo_webhook_secret: str | None = None
    demo_dir: str = "var/demo"              # the demo shop's files (orders, fulfillments)

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        url = make_url(self.database_url).render_as_string(hide_password=True)
        return f"Settings(database_url={url!r}, ...)"


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build `Settings` from an environment mapping, raising `ConfigError` on the first bad one."""
    database_url = _database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    secrets = tuple(
        s for s in (_optional(env, "SHOPIFY_WEBHOOK_SECRET"),
                    _optional(env, "SHOPIFY_WEBHOOK_SECRET_PREVIOUS")) if s
    )
    if _optional(env, "SHOPIFY_WEBHOOK_SECRET_PREVIOUS") and not _optional(
        env, "SHOPIFY_WEBHOOK_SECRET"
    ):
        raise ConfigError(
            "SHOPIFY_WEBHOOK_SECRET",
            "missing, while SHOPIFY_WEBHOOK_SECRET_PREVIOUS is set (the previous secret is only "
            "accepted beside the current one during a rotation)",
        )
    log_level = (env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    log_format = (env.get("LOG_FORMAT") or "text").strip().lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError("LOG_FORMAT", f"{log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    check_multiprocess(env)
    dispatch_on = (env.get("DISPATCH_ON") or "paid").strip().lower()
    if dispatch_on not in ("paid", "created"):
        raise ConfigError("DISPATCH_ON", f"{dispatch_on!r} is not 'paid' or 'created'")
    demo_mode = _bool(env, "DEMO_MODE", False)
    return Settings(
        suppliers_file=_optional(env, "SUPPLIERS_FILE") or "suppliers.toml",
        suppliers_file_required=_optional(env, "SUPPLIERS_FILE") is not None,
        dispatch_on=dispatch_on,
        accept_test_orders=_bool(env, "ACCEPT_TEST_ORDERS", False),
        seller_id=_optional(env, "SELLER_ID") or "orderhub",
        seller_name=_optional(env, "SELLER_NAME") or "OrderHub seller",
        database_url=database_url,
        secret_key=_secret(env, "SECRET_KEY"),
        api_token=_secret(env, "ORDERHUB_API_TOKEN"),
        dashboard_password=_dashboard_password(env),
        max_body_bytes=_positive_int(env, "MAX_BODY_BYTES", 2 * 1024 * 1024),
        sqlite_busy_timeout_ms=_positive_int(env, "SQLITE_BUSY_TIMEOUT_MS", 15_000),
        db_pool_size=_positive_int(env, "DB_POOL_SIZE", 10),
        log_level=log_level,
        log_format=log_format,
        metrics_token=_secret(env, "METRICS_TOKEN") if _optional(env, "METRICS_TOKEN") else None,
        shopify_webhook_secrets=secrets,
        shopify_shop_domain=_optional(env, "SHOPIFY_SHOP_DOMAIN"),
        dispatch_threads=_positive_int(env, "DISPATCH_THREADS", 4),
        dispatch_batch=_positive_int(env, "DISPATCH_BATCH", 50),
        dispatch_poll_seconds=_positive_float(env, "DISPATCH_POLL_SECONDS", 0.5),
        intake_lock_share=_fraction(env, "DISPATCH_INTAKE_LOCK_SHARE", 0.02),
        intake_max_delay_seconds=_positive_float(env, "DISPATCH_INTAKE_MAX_DELAY_SECONDS", 300.0),
        retry_base_seconds=_positive_float(env, "DISPATCH_RETRY_BASE_SECONDS", 60.0),
        retry_cap_seconds=_positive_float(env, "DISPATCH_RETRY_CAP_SECONDS", 3600.0),
        give_up_hours=_positive_float(env, "DISPATCH_GIVE_UP_HOURS", 24.0),
        lease_seconds=_positive_float(env, "DISPATCH_LEASE_SECONDS", 300.0),
        breaker_failures=_positive_int(env, "DISPATCH_BREAKER_FAILURES", 3),
        breaker_cooldown_seconds=_positive_float(env, "DISPATCH_BREAKER_COOLDOWN_SECONDS", 30.0),
        ack_poll_seconds=_positive_float(env, "DISPATCH_ACK_POLL_SECONDS", 60.0),
        shipments_settle_seconds=_non_negative_float(env, "SHIPMENTS_SETTLE_SECONDS", 2.0),
        orders_sync_overlap_hours=_positive_float(env, "ORDERS_SYNC_OVERLAP_HOURS", 2.0),
        shadow_dir=_optional(env, "SHADOW_DIR") or "var/shadow",
        alerts=alert_settings_from_env(env),
        demo_mode=demo_mode,
        demo_webhook_secret=_secret(env, "DEMO_WEBHOOK_SECRET") if demo_mode else None,
        demo_dir=_optional(env, "DEMO_DIR") or "var/demo",
    )


def load_settings_from_environment() -> Settings:
    """Read `.env` (without overriding the real environment), then the environment."""
    from dotenv import load_dotenv

    env_file = os.environ.get("ORDERHUB_ENV_FILE") or os.path.join(os.getcwd(), ".env")
    load_dotenv(env_file, override=False)
    settings = load_settings(os.environ)
    count_in_shared_folder()  # PROMETHEUS_MULTIPROC_DIR may have come from the file just now
    return settings


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise ConfigError(name, "missing (set it in the environment or in .env)")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(name, f"too short: use at least {MIN_SECRET_LENGTH} random characters")
    return value


def _dashboard_password(env: Mapping[str, str]) -> str | None:
    value = _optional(env, "DASHBOARD_PASSWORD")
    if value is not None and len(value) < MIN_DASHBOARD_PASSWORD_LENGTH:
        raise ConfigError("DASHBOARD_PASSWORD", f"too short: use at least "
                          f"{MIN_DASHBOARD_PASSWORD_LENGTH} characters (or leave it unset: "
                          "no dashboard)")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _optional(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"{raw!r} is not true or false")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(name, f"must be greater than zero, got {value}")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _float(env, name, default, zero_allowed=False)


def _non_negative_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _float(env, name, default, zero_allowed=True)


def _float(env: Mapping[str, str], name: str, default: float, *, zero_allowed: bool) -> float:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not a number") from None
    if not (value >= 0 if zero_allowed else value > 0) or value == float("inf"):
        wanted = "of zero or more" if zero_allowed else "greater than zero"
        raise ConfigError(name, f"must be a number {wanted}, got {raw}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _positive_float(env, name, default)
    if value > 1:
        raise ConfigError(name, f"must be a fraction greater than 0 and at most 1, got {value:g}")
    return value


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("DATABASE_URL", "is not a database URL (e.g. sqlite:///var/orderhub.db "
                          "or postgresql://user@host/db)") from None
    backend = url.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in SUPPORTED_DATABASES:
        raise ConfigError("DATABASE_URL", f"{backend!r} is not supported: use sqlite or postgresql")
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        raise ConfigError("DATABASE_URL", "SQLite needs a file path (sqlite:///var/orderhub.db)")
    return normalize_url(raw)
