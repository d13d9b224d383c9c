"""X-Forwarded-* is honoured only when TRUST_PROXY says a proxy (nginx) stands in front."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, Response, jsonify, request

from app import create_app
from app.errors import ConfigError
from app.proxy import apply_proxy_fix, proxy_hops_from_env
from tests.conftest import base_config

SPOOFED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
           "X-Forwarded-Host": "evil.example"}


def seen_by(app: Flask, headers: dict[str, str]) -> dict[str, str]:
    """What a view sees of the client: its address, the scheme and the host of the URL."""

    @app.get("/whoami")
    def whoami() -> Response:
        return jsonify(addr=request.remote_addr, scheme=request.scheme, url=request.url)

    response = app.test_client().get("/whoami", headers=headers,
                                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200
    data: dict[str, str] = response.get_json()
    return data


def app_with(tmp_path: Path, **extra: str) -> Flask:
    config = base_config(f"sqlite:///{tmp_path / 'orderhub.db'}")
    config.update(extra)
    return create_app(config)


def test_without_trust_proxy_a_client_cannot_claim_an_address_or_https(tmp_path: Path) -> None:
    seen = seen_by(app_with(tmp_path), SPOOFED)
    assert seen == {"addr": "127.0.0.1", "scheme": "http", "url": "http://localhost/whoami"}


def test_with_trust_proxy_one_hop_is_honoured(tmp_path: Path) -> None:
    # nginx appends the address it saw to whatever the client sent; only that last one counts.
    headers = {**SPOOFED, "X-Forwarded-For": "10.6.6.6, 198.51.100.7",
               "X-Forwarded-Host": "shop.example.com"}
    seen = seen_by(app_with(tmp_path, TRUST_PROXY="1"), headers)
    assert seen == {"addr": "198.51.100.7", "scheme": "https",
                    "url": "https://shop.example.com/whoami"}


def test_two_hops_trust_the_last_two_addresses() -> None:
    app = Flask(__name__)
    apply_proxy_fix(app, 2)
    seen = seen_by(app, {"X-Forwarded-For": "10.6.6.6, 198.51.100.7, 192.0.2.1"})
    assert seen["addr"] == "198.51.100.7"


def test_zero_hops_leaves_the_app_alone() -> None:
    app = Flask(__name__)
    before = app.wsgi_app
    apply_proxy_fix(app, 0)
    assert app.wsgi_app == before
    assert seen_by(app, SPOOFED)["addr"] == "127.0.0.1"


@pytest.mark.parametrize(("raw", "hops"), [
    (None, 0), ("", 0), ("0", 0), ("false", 0), ("off", 0),
    ("1", 1), ("true", 1), ("Yes", 1), (" 2 ", 2),
])
def test_trust_proxy_values(raw: str | None, hops: int) -> None:
    env = {} if raw is None else {"TRUST_PROXY": raw}
    assert proxy_hops_from_env(env) == hops


@pytest.mark.parametrize("raw", ["nginx", "-1", "1.5", "99"])
def test_a_bad_trust_proxy_stops_the_start_naming_it(raw: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        proxy_hops_from_env({"TRUST_PROXY": raw})
    assert caught.value.name == "TRUST_PROXY"
    with pytest.raises(ConfigError, match="TRUST_PROXY"):
        app_with(tmp_path, TRUST_PROXY=raw)
