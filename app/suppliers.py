"""Suppliers from `suppliers.toml`, checked at start: pure data for routing and dispatch.

Every problem stops the start with a message naming the supplier and the key, e.g.
`suppliers.agriest.host_key: required for sftp:// (pin the server's key ...)`.
"""

from __future__ import annotations

import csv
import os
import re
import ssl
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import ConfigError

FORMATS = ("orderhub", "cxml", "ubl")
SCHEMES = ("sftp", "ftps", "file")
KEYS = frozenset({
    "name", "transport", "password_env", "key_file", "host_key", "format", "shipments_path",
    "stock_feed", "sku_prefixes", "vendors", "skus", "sku_file", "default", "ca_file",
    "temp_suffix", "direct_upload", "acks_path", "ack_timeout", "shipment_columns", "mode",
    "samples", "stock_columns", "max_feed_age", "stale_action", "max_total_drop",
    "max_zero_flip",
})
# The columns of a CSV shipment notice, which a supplier may name differently.
SHIPMENT_COLUMNS = frozenset({"po_number", "sku", "quantity", "carrier", "tracking_number",
                              "tracking_url", "shipped_at", "line_number", "supplier_sku",
                              "shipment_id"})
STOCK_COLUMNS = frozenset({"sku", "quantity", "warehouse", "eta", "as_of"})
HOST_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521", "rsa-sha2-256", "rsa-sha2-512")


def normalize_sku(sku: str | None) -> str | None:
    """SKUs compare after trimming and Unicode NFC (so "é" typed two ways is one SKU)."""
    if sku is None:
        return None
    text = unicodedata.normalize("NFC", sku).strip()
    return text or None


@dataclass(frozen=True)
class Supplier:
    key: str
    name: str
    transport: str
    format: str
    password_env: str | None = None
    key_file: str | None = None
    host_key: str | None = None
    ca_file: str | None = None             # ftps:// only; resolved against the suppliers file
    shipments_path: str | None = None
    stock_feed: str | None = None
    temp_suffix: str = ".tmp"              # uploads go to NAME + temp_suffix, then are renamed
    direct_upload: bool = False            # write NAME directly (servers that refuse renames)
    acks_path: str | None = None           # where the supplier puts PO acknowledgements
    ack_timeout_seconds: float | None = None   # alert when a sent PO is not acknowledged by then
    shipment_columns: tuple[tuple[str, str], ...] = ()  # (our name, the supplier's CSV column)
    mode: str = "live"                     # live | shadow (files to a local folder) | paused
    samples: str | None = None             # the supplier's sample files, for `suppliers diff`
    stock_columns: tuple[tuple[str, str], ...] = ()   # (our name, the supplier's feed column)
    max_feed_age_seconds: float | None = None   # an older feed is not trusted (default 48 h)
    stale_action: str = "hold"             # hold (keep last good values) | zero
    max_total_drop: float = 0.5            # a feed dropping total stock more is held
    max_zero_flip: float = 0.25            # a feed sending more SKUs to zero is held
    sku_prefixes: tuple[str, ...] = ()
    vendors: tuple[str, ...] = ()          # casefolded
    skus: frozenset[str] = frozenset()     # from `skus` and `sku_file`, normalized
    default: bool = False

    @property
    def scheme(self) -> str:
        return urlsplit(self.transport).scheme


@dataclass(frozen=True)
class SupplierBook:
    """All suppliers, in the order the file lists them (the order breaks routing ties)."""

    suppliers: tuple[Supplier, ...] = ()
    by_key: Mapping[str, Supplier] = field(default_factory=dict)

    @classmethod
    def of(cls, suppliers: list[Supplier]) -> SupplierBook:
        return cls(tuple(suppliers), {s.key: s for s in suppliers})

    def get(self, key: str) -> Supplier | None:
        return self.by_key.get(key)

    @property
    def default(self) -> Supplier | None:
        return next((s for s in self.suppliers if s.default), None)


def load_suppliers(path: str | None, env: Mapping[str, str], *, required: bool) -> SupplierBook:
    """Read and check the suppliers file; a missing file is an error only when `required`."""
    if path is None or not os.path.exists(path):
        if required:
            raise ConfigError("SUPPLIERS_FILE", f"{path!r} does not exist")
        return SupplierBook()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("SUPPLIERS_FILE", f"{path} is not valid TOML: {exc}") from None
    unknown_top = set(data) - {"suppliers"}
    if unknown_top:
        raise ConfigError("SUPPLIERS_FILE", f"unknown top-level table(s) {sorted(unknown_top)} "
                          "(each supplier is a [suppliers.NAME] table)")
    tables = data.get("suppliers", {})
    if not isinstance(tables, dict):
        raise ConfigError("SUPPLIERS_FILE", "[suppliers] must hold one table per supplier")
    base = Path(path).resolve().parent
    suppliers = [_supplier(key, table, env, base) for key, table in tables.items()]
    defaults = [s.key for s in suppliers if s.default]
    if len(defaults) > 1:
        raise ConfigError(f"suppliers.{defaults[1]}.default",
                          f"only one supplier may be the default; {', '.join(defaults)} all are")
    return SupplierBook.of(suppliers)


def _supplier(key: str, table: Any, env: Mapping[str, str], base: Path) -> Supplier:
    where = f"suppliers.{key}"
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a table of settings")
    if not key.replace("-", "").replace("_", "").isalnum() or not key.isascii():
        raise ConfigError(where, "supplier names may use only letters, digits, '-' and '_'")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}",
                          f"unknown key (known keys: {', '.join(sorted(KEYS))})")

    def text(name: str, *, required: bool = False) -> str | None:
        value = table.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{where}.{name}", "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{name}", "must be a non-empty string")
        return value.strip()

    def strings(name: str) -> tuple[str, ...]:
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip()
                                                  for v in value):
            raise ConfigError(f"{where}.{name}", "must be a list of non-empty strings")
        return tuple(v.strip() for v in value)

    transport = text("transport", required=True)
    assert transport is not None
    fmt = text("format") or "orderhub"
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    default = table.get("default", False)
    if not isinstance(default, bool):
        raise ConfigError(f"{where}.default", "must be true or false")
    direct_upload = table.get("direct_upload", False)
    if not isinstance(direct_upload, bool):
        raise ConfigError(f"{where}.direct_upload", "must be true or false")
    temp_suffix = text("temp_suffix") or ".tmp"
    if "/" in temp_suffix or "\\" in temp_suffix:
        raise ConfigError(f"{where}.temp_suffix", "must be a file-name suffix such as '.tmp'")
    acks_path = text("acks_path")
    ack_timeout = text("ack_timeout")
    if ack_timeout is not None and acks_path is None:
        raise ConfigError(f"{where}.ack_timeout", "needs acks_path (where acknowledgements arrive)")
    supplier = Supplier(
        key=key,
        name=text("name") or key,
        transport=transport,
        format=fmt,
        password_env=text("password_env"),
        key_file=text("key_file"),
        host_key=text("host_key"),
        ca_file=_ca_file(where, text("ca_file"), base),
        shipments_path=text("shipments_path"),
        stock_feed=text("stock_feed"),
        sku_prefixes=tuple(p for p in (normalize_sku(p) for p in strings("sku_prefixes")) if p),
        vendors=tuple(v.casefold() for v in strings("vendors")),
        skus=frozenset(_skus(where, strings("skus"), text("sku_file"), base)),
        default=default,
        temp_suffix=temp_suffix,
        direct_upload=direct_upload,
        acks_path=acks_path,
        ack_timeout_seconds=(parse_duration(f"{where}.ack_timeout", ack_timeout)
                             if ack_timeout else None),
        shipment_columns=_columns(where, "shipment_columns", table.get("shipment_columns", {}),
                                  SHIPMENT_COLUMNS),
        mode=_mode(where, text("mode")),
        stock_columns=_columns(where, "stock_columns", table.get("stock_columns", {}),
                               STOCK_COLUMNS),
        max_feed_age_seconds=(parse_duration(f"{where}.max_feed_age", age)
                              if (age := text("max_feed_age")) else None),
        stale_action=_choice(where, "stale_action", text("stale_action"), ("hold", "zero")),
        max_total_drop=_fraction(where, "max_total_drop", table.get("max_total_drop", 0.5)),
        max_zero_flip=_fraction(where, "max_zero_flip", table.get("max_zero_flip", 0.25)),
        samples=_relative(text("samples"), base),
    )
    _check_transport(where, supplier, env)
    return supplier


MODES = ("live", "shadow", "paused")


def _mode(where: str, mode: str | None) -> str:
    if mode is None:
        return "live"
    if mode not in MODES:
        raise ConfigError(f"{where}.mode", f"{mode!r} is not one of {', '.join(MODES)}")
    return mode


def _relative(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    return path if os.path.isabs(path) else str(base / path)


def _columns(where: str, key: str, raw: Any, known: frozenset[str]
             ) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.{key}",
                          'must be a table, e.g. { sku = "Artikel", quantity = "Menge" }')
    pairs = []
    for ours, theirs in raw.items():
        if ours not in known:
            raise ConfigError(f"{where}.{key}.{ours}",
                              f"unknown column (known: {', '.join(sorted(known))})")
        if not isinstance(theirs, str) or not theirs.strip():
            raise ConfigError(f"{where}.{key}.{ours}", "must be the supplier's column name")
        pairs.append((ours, theirs.strip()))
    return tuple(pairs)


def _choice(where: str, key: str, value: str | None, allowed: tuple[str, ...]) -> str:
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise ConfigError(f"{where}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _fraction(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"{where}.{key}", "must be a fraction between 0 and 1, e.g. 0.5")
    return float(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, raw: str) -> float:
    """"90s", "30m", "4h", "2d" -> seconds."""
    match = _DURATION.match(raw)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(name, f"{raw!r} is not a duration like '30m', '4h' or '2d'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _skus(where: str, listed: tuple[str, ...], sku_file: str | None, base: Path) -> set[str]:
    skus = {s for s in (normalize_sku(v) for v in listed) if s}
    if sku_file:
        path = Path(sku_file) if os.path.isabs(sku_file) else base / sku_file
        if not path.exists():
            raise ConfigError(f"{where}.sku_file", f"{path} does not exist")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.reader(fh):
                sku = normalize_sku(row[0]) if row else None
                if sku and sku.lower() != "sku":
                    skus.add(sku)
    return skus


def _ca_file(where: str, ca_file: str | None, base: Path) -> str | None:
    if ca_file is None:
        return None
    path = Path(ca_file) if os.path.isabs(ca_file) else base / ca_file
    if not path.exists():
        raise ConfigError(f"{where}.ca_file", f"{path} does not exist")
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}.ca_file",
                          f"{path} is not a PEM certificate file ({exc})") from None
    return str(path)


def _check_transport(where: str, s: Supplier, env: Mapping[str, str]) -> None:
    url = urlsplit(s.transport)
    if url.scheme not in SCHEMES:
        raise ConfigError(f"{where}.transport",
                          f"{s.transport!r}: scheme must be one of sftp://, ftps://, file://")
    if s.ca_file and url.scheme != "ftps":
        raise ConfigError(f"{where}.ca_file", "only used by ftps:// (a certificate to trust)")
    if url.scheme == "file":
        if not url.path:
            raise ConfigError(f"{where}.transport", "file:// needs a folder path")
        return
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"{where}.transport", f"{s.transport!r} has a bad port") from None
    if not url.hostname or not url.username:
        raise ConfigError(f"{where}.transport",
                          f"{s.transport!r} needs user and host ({url.scheme}://user@host/folder)")
    if url.password:
        raise ConfigError(f"{where}.transport",
                          "no password in the URL: name an environment variable in password_env")
    del port
    if s.password_env and not env.get(s.password_env):
        raise ConfigError(f"{where}.password_env",
                          f"environment variable {s.password_env} is not set")
    if url.scheme == "sftp":
        if not s.password_env and not s.key_file:
            raise ConfigError(f"{where}.password_env", "sftp:// needs password_env or key_file")
        if s.key_file and not os.path.exists(s.key_file):
            raise ConfigError(f"{where}.key_file", f"{s.key_file} does not exist")
        if not s.host_key:
            raise ConfigError(f"{where}.host_key",
                              "required for sftp:// (pin the server's public key, e.g. the output "
                              "of `ssh-keyscan HOST`, 'ssh-ed25519 AAAA...')")
        if s.host_key.split()[0] not in HOST_KEY_TYPES or len(s.host_key.split()) < 2:
            raise ConfigError(f"{where}.host_key",
                              "must look like 'ssh-ed25519 AAAA...' (key type, then base64 key)")
    if url.scheme == "ftps" and not s.password_env:
        raise ConfigError(f"{where}.password_env",
                          "ftps:// needs password_env (FTPS logs in with a password)")
