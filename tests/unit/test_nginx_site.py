"""deploy/nginx/orderhub.conf passes `nginx -t` with a test certificate (skipped with a reason
when nginx is not installed; CI installs it and sets TEST_REQUIRE_NGINX) and agrees with the
app on what it promises."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings
from tests.nginx import (
    DOMAIN,
    LETSENCRYPT,
    SITE,
    find_nginx,
    nginx_test,
    site_with_test_certificate,
    write_nginx_conf,
)


def location_block(text: str, match: str) -> str:
    """The body of `location MATCH { ... }` (the site's locations hold no nested blocks)."""
    found = re.search(r"location\s+" + re.escape(match) + r"\s*\{([^}]*)\}", text)
    assert found, f"no location {match} in {SITE}"
    return found[1]


def test_the_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = find_nginx()
    conf = write_nginx_conf(tmp_path, site_with_test_certificate(tmp_path))
    result = nginx_test(nginx, conf)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_a_broken_site_fails_nginx_t(tmp_path: Path) -> None:
    # The check above can fail: a certificate that is not there stops nginx.
    nginx = find_nginx()
    site = site_with_test_certificate(tmp_path).replace(str(tmp_path / "nginx-cert.pem"),
                                                        str(tmp_path / "missing.pem"))
    result = nginx_test(nginx, write_nginx_conf(tmp_path, site))
    assert result.returncode != 0
    assert "missing.pem" in result.stderr


def test_the_webhook_body_limit_matches_max_body_bytes() -> None:
    text = SITE.read_text()
    limit = re.search(r"client_max_body_size\s+(\d+)m;", location_block(text, "/webhooks/"))
    assert limit, "no client_max_body_size in location /webhooks/"
    assert int(limit[1]) * 1024 * 1024 == Settings.max_body_bytes


def test_login_and_api_are_rate_limited_and_webhooks_are_not() -> None:
    text = SITE.read_text()
    assert "limit_req zone=orderhub_login" in location_block(text, "= /login")
    assert "limit_req zone=orderhub_api" in location_block(text, "/api/")
    assert "limit_req" not in location_block(text, "/webhooks/")


def test_the_placeholder_domain_is_everywhere_install_sh_replaces_it() -> None:
    text = SITE.read_text()
    assert text.count(f"server_name {DOMAIN};") == 2
    assert f"return 301 https://{DOMAIN}$request_uri;" in text
    assert f"ssl_certificate {LETSENCRYPT}/fullchain.pem;" in text
    assert f"ssl_certificate_key {LETSENCRYPT}/privkey.pem;" in text
