"""Trusting `X-Forwarded-*` from the reverse proxy in front of OrderHub, and from nobody else.

Behind nginx (deploy/nginx/orderhub.conf) every request reaches gunicorn from nginx, which sets
X-Forwarded-For/-Proto/-Host; the client's address and scheme are then the ones nginx saw.
Without a proxy those headers come from the client and mean nothing: honouring them would let
anyone claim any address (rate limits, logs) or pretend to be on https. So they are ignored
unless TRUST_PROXY says how many proxies stand in front.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import ConfigError

SETTING = "TRUST_PROXY"
MAX_HOPS = 5  # more proxies than this in a row is a typo, not a deployment
_FALSE = ("0", "false", "no", "off")
_TRUE = ("true", "yes", "on")


def proxy_hops_from_env(env: Mapping[str, str]) -> int:
    """How many proxies' X-Forwarded-* values to trust: 0 (unset, the default) trusts none;
    `TRUST_PROXY=1` (or true) the one nginx in front; a number for a chain of proxies."""
    raw = env.get(SETTING, "").strip().lower()
    if not raw or raw in _FALSE:
        return 0
    if raw in _TRUE:
        return 1
    if not raw.isdigit():
        raise ConfigError(SETTING, f"{raw!r} is not a number of proxies (0, 1, 2, ...) "
                          "or true/false")
    hops = int(raw)
    if hops > MAX_HOPS:
        raise ConfigError(SETTING, f"{hops} proxies in a row is more than {MAX_HOPS}; "
                          "use 1 for nginx in front of gunicorn")
    return hops


def apply_proxy_fix(app: Flask, trusted_hops: int) -> None:
    """Make `request.remote_addr`, the URL scheme and host come from the last `trusted_hops`
    proxies' X-Forwarded-For/-Proto/-Host; with 0, leave the app as it is (headers ignored)."""
    if trusted_hops <= 0:
        return
    # X-Forwarded-Port and -Prefix stay untrusted: nginx does not set them, so a client could.
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=trusted_hops, x_proto=trusted_hops, x_host=trusted_hops,
        x_port=0, x_prefix=0,
    )
