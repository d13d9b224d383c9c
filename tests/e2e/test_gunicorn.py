"""The production web process: gunicorn on a free port, real HTTP requests, and the refusal to
start with a bad setting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import (
    API_TOKEN,
    SHOPIFY_SECRET,
    base_config,
    encode,
    shopify_headers,
    shopify_payload,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(base_config(f"sqlite:///{tmp_path / 'orderhub.db'}"))
    # A developer's own .env (from `make run`) must not leak into the test.
    env.update(ORDERHUB_ENV_FILE=str(tmp_path / "no.env"), FLASK_SKIP_DOTENV="1")
    env["LOG_LEVEL"] = "INFO"
    return env


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    with running_gunicorn(tmp_path, service_env(tmp_path)) as url:
        yield url


def dispatch_once(tmp_path: Path) -> str:
    """`flask --app wsgi dispatch --once`, as the dispatcher service would do it; its output."""
    result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "dispatch", "--once"],
                            cwd=ROOT, env=service_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def running_gunicorn(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`db upgrade`, then gunicorn with two workers on a free port of 127.0.0.1 until the
    block ends; yields its URL. Its output goes to tmp_path/gunicorn.log."""
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    env = {**env, "GUNICORN_WORKERS": "2"}
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not start:\n" + (tmp_path / "gunicorn.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_gunicorn_takes_signed_webhooks_over_http(gunicorn: str, tmp_path: Path) -> None:
    body = encode(shopify_payload())
    headers = shopify_headers(body, webhook_id="over-real-http")

    first = requests.post(f"{gunicorn}/webhooks/shopify", data=body, headers=headers, timeout=10)
    again = requests.post(f"{gunicorn}/webhooks/shopify", data=body, headers=headers, timeout=10)
    forged = requests.post(f"{gunicorn}/webhooks/shopify", data=body + b" ", headers=headers,
                           timeout=10)
    too_big = requests.post(f"{gunicorn}/webhooks/shopify", data=b"x" * (3 * 1024 * 1024),
                            headers=shopify_headers(b"x" * (3 * 1024 * 1024)), timeout=10)

    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert forged.status_code == 401
    assert too_big.status_code == 413
    assert "1 delivery(ies) applied" in dispatch_once(tmp_path)
    orders = requests.get(f"{gunicorn}/api/orders",
                          headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10).json()
    assert [o["number"] for o in orders["orders"]] == ["#1042"]
    assert requests.get(f"{gunicorn}/readyz", timeout=10).json() == {"status": "ready"}
    assert SHOPIFY_SECRET not in requests.get(f"{gunicorn}/healthz", timeout=10).text


@pytest.mark.slow
def test_a_missing_setting_stops_the_start_with_its_name(tmp_path: Path) -> None:
    env = service_env(tmp_path)
    del env["ORDERHUB_API_TOKEN"]
    result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ORDERHUB_API_TOKEN: missing" in result.stderr

    port = free_port()
    proc = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "ORDERHUB_API_TOKEN: missing" in proc.stderr + proc.stdout
