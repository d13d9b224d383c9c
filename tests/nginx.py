"""The system's nginx for tests: the site in deploy/nginx/orderhub.conf inside a minimal
nginx.conf of our own (temporary folder as prefix, its own pid, logs and temp paths), with a
self-signed test certificate in place of certbot's.

TEST_REQUIRE_NGINX turns "skipped" into a failure, so CI cannot pass without these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from tests.tls_certs import write_self_signed

SITE = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "orderhub.conf"
DOMAIN = "orderhub.example.com"
LETSENCRYPT = f"/etc/letsencrypt/live/{DOMAIN}"


def nginx_unavailable(reason: str) -> NoReturn:
    if os.environ.get("TEST_REQUIRE_NGINX"):
        pytest.fail(f"nginx required (TEST_REQUIRE_NGINX is set) but {reason}")
    pytest.skip(f"nginx tests skipped: {reason}")


def find_nginx() -> str:
    """The nginx binary, or a skip saying there is none."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found is None:
        nginx_unavailable("nginx is not installed (apt-get install nginx)")
    return found


def site_with_test_certificate(folder: Path, replacements: dict[str, str] | None = None) -> str:
    """The site's text with certbot's certificate paths pointing at a fresh self-signed one,
    plus any other `replacements` (old text: new text), each required to be found."""
    cert, key = write_self_signed(folder, "nginx")
    text = SITE.read_text()
    swaps = {f"{LETSENCRYPT}/fullchain.pem": str(cert), f"{LETSENCRYPT}/privkey.pem": str(key),
             **(replacements or {})}
    for old, new in swaps.items():
        assert old in text, f"{old!r} is not in {SITE}"
        text = text.replace(old, new)
    return text


def write_nginx_conf(folder: Path, site_text: str) -> Path:
    """A main nginx.conf in `folder` that includes the site the way Debian's includes
    sites-enabled/*: inside http {}. Everything nginx writes stays in `folder`."""
    (folder / "orderhub.conf").write_text(site_text)
    for sub in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / sub).mkdir(exist_ok=True)
    # As root, workers would switch to `nobody`, who cannot read a test's temporary folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # Debian's nginx.conf gives every site the system's MIME types; without them a stylesheet
    # goes out as text/plain and browsers (nosniff) refuse it.
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.is_file() else "types { text/css css; }"
    conf = folder / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    {types}
    default_type application/octet-stream;
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/orderhub.conf;
}}
""")
    return conf


def nginx_test(binary: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `conf`, with the conf's folder as prefix."""
    return subprocess.run([binary, "-t", "-c", str(conf), "-p", f"{conf.parent}/"],
                          capture_output=True, text=True, timeout=30, check=False)
