"""Settings of the Shopify Admin API client, read from the environment and checked at start.

Read by `shopify_api_settings_from_env(env)` (re-exported by `app.channels.shopify_api`):

- SHOPIFY_ACCESS_TOKEN   the Admin API access token of the custom app (secret). Unset: the API
                         client is not configured and the function returns None.
- SHOPIFY_SHOP_DOMAIN    your-shop.myshopify.com; required with the token.
- SHOPIFY_API_VERSION    YYYY-MM, one of Shopify's quarterly versions (-01, -04, -07, -10);
                         default 2026-10. Shopify answers an unknown version with the oldest
                         supported one, silently, so a typo is refused here.
- SHOPIFY_API_BASE_URL   optional: the Admin API base including the version path, for a dev
                         store proxy or a local stand-in (default https://{shop}/admin/api/{version}).
                         https://, or http:// to a loopback address only: the token travels in a
                         header.
- SHOPIFY_NOTIFY_CUSTOMER  true/false (default true): whether Shopify e-mails the customer the
                         tracking details of each fulfillment.
- SHOPIFY_LOCATION_ID    optional: the Shopify location whose `available` quantities stock sync
                         sets, as gid://shopify/Location/123 or 123 (kept as the gid). Unset: the
                         shop's only active location; with several, stock sync refuses to guess.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.errors import ConfigError

DEFAULT_API_VERSION = "2026-10"
_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
_MYSHOPIFY = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: it goes into a header
LOCATION_GID = "gid://shopify/Location/"
_LOCATION = re.compile(r"^(?:gid://shopify/Location/)?([1-9][0-9]{0,19})$")


@dataclass(frozen=True)
class ShopifyApiSettings:
    """How to reach one shop's Admin API."""

    shop_domain: str
    access_token: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    base_url: str | None = None          # override of https://{shop}/admin/api/{version}
    notify_customer: bool = True
    location_id: str | None = None       # gid://shopify/Location/...; None: the only active one

    @property
    def api_base_url(self) -> str:
        return self.base_url or default_base_url(self.shop_domain, self.api_version)


def default_base_url(shop_domain: str, api_version: str) -> str:
    return f"https://{shop_domain}/admin/api/{api_version}"


def shopify_api_settings_from_env(env: Mapping[str, str]) -> ShopifyApiSettings | None:
    """`ShopifyApiSettings` from an environment mapping, or None when no access token is set;
    `ConfigError` naming the setting on a bad value (never repeating a secret)."""
    version = _api_version(env)
    base_url = _base_url(env)
    notify = _bool(env, "SHOPIFY_NOTIFY_CUSTOMER", True)
    location = _location_id(env)
    token = env.get("SHOPIFY_ACCESS_TOKEN", "").strip()
    if not token:
        return None
    if not _TOKEN.match(token):
        raise ConfigError("SHOPIFY_ACCESS_TOKEN", "contains spaces, control or non-ASCII "
                          "characters: copy the Admin API access token again")
    return ShopifyApiSettings(
        shop_domain=_shop_domain(env, overridden=base_url is not None),
        access_token=token,
        api_version=version,
        base_url=base_url,
        notify_customer=notify,
        location_id=location,
    )


def _api_version(env: Mapping[str, str]) -> str:
    raw = env.get("SHOPIFY_API_VERSION", "").strip()
    if not raw:
        return DEFAULT_API_VERSION
    if not _VERSION.match(raw):
        raise ConfigError("SHOPIFY_API_VERSION", f"{raw!r} is not a Shopify API version: use "
                          f"YYYY-MM with a release month 01, 04, 07 or 10 (e.g. "
                          f"{DEFAULT_API_VERSION})")
    return raw


def _shop_domain(env: Mapping[str, str], *, overridden: bool) -> str:
    name = "SHOPIFY_SHOP_DOMAIN"
    raw = env.get(name, "").strip().lower()
    if not raw:
        raise ConfigError(name, "missing, while SHOPIFY_ACCESS_TOKEN is set (the shop the token "
                          "belongs to, e.g. your-shop.myshopify.com)")
    if "/" in raw or ":" in raw:
        raise ConfigError(name, f"{raw!r} is not a bare domain: give it without https:// and "
                          "without a path, e.g. your-shop.myshopify.com")
    if overridden:
        if not _HOSTNAME.match(raw):
            raise ConfigError(name, f"{raw!r} is not a domain name")
    elif not _MYSHOPIFY.match(raw):
        raise ConfigError(name, f"{raw!r} is not a *.myshopify.com domain (the Admin API is only "
                          "reached there; set SHOPIFY_API_BASE_URL to use another host)")
    return raw


def _location_id(env: Mapping[str, str]) -> str | None:
    name = "SHOPIFY_LOCATION_ID"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    match = _LOCATION.match(raw)
    if not match:
        raise ConfigError(name, f"{raw!r} is not a Shopify location id: give the number from the "
                          "location's admin URL (Settings > Locations) or its "
                          "gid://shopify/Location/... id")
    return LOCATION_GID + match[1]


def _base_url(env: Mapping[str, str]) -> str | None:
    name = "SHOPIFY_API_BASE_URL"
    raw = env.get(name, "").strip()
    if not raw:
        return None
    url = urlsplit(raw)
    # The value is not repeated in messages: a URL with credentials in it would leak them.
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(name, "is not an http(s) URL with a host (e.g. "
                          "https://your-shop.myshopify.com/admin/api/2026-10)")
    if url.username or url.password:
        raise ConfigError(name, "must not hold a user or password; the token comes from "
                          "SHOPIFY_ACCESS_TOKEN")
    if url.query or url.fragment:
        raise ConfigError(name, "must not have a query string or fragment")
    if url.scheme == "http" and not _is_loopback(url.hostname):
        raise ConfigError(name, "http:// is only allowed to a loopback address (localhost, "
                          "127.0.0.1, ::1): the access token would cross the network in clear")
    try:
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(name, "has an invalid port") from None
    return raw.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"{raw!r} is not true or false")
