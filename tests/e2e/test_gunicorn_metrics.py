"""`/metrics` from real gunicorn workers with PROMETHEUS_MULTIPROC_DIR: whichever worker answers,
it counts what every worker did, and workers replaced by a reload lose nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import encode, shopify_headers, shopify_payload
from tests.e2e.test_gunicorn import free_port, service_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FOLDED = ["counter_folded.db", "histogram_folded.db"]   # counts and ingest latencies


def accepted(url: str) -> float:
    body = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if (sample.name == "orderhub_webhook_deliveries_total"
                    and sample.labels == {"channel": "shopify", "result": "accepted"}):
                return sample.value
    return 0.0


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.db"))


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("gunicorn did not start:\n" + log.read_text())
        time.sleep(0.1)


@pytest.mark.slow
def test_every_worker_answers_with_every_workers_counts(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = service_env(tmp_path)
    env.update(PROMETHEUS_MULTIPROC_DIR=str(folder), GUNICORN_WORKERS="3", LOG_LEVEL="WARNING")
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind",
             url.removeprefix("http://"), "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, proc, log_path)
            for i in range(6):   # new connections: the workers take turns
                body = encode(shopify_payload() | {"id": 5813441806523 + i})
                response = requests.post(f"{url}/webhooks/shopify", data=body, timeout=10,
                                         headers=shopify_headers(body))
                assert response.json()["status"] == "accepted"
            assert [accepted(url) for _ in range(6)] == [6.0] * 6

            proc.send_signal(signal.SIGHUP)   # a reload: every worker replaced
            deadline = time.monotonic() + 30
            while (files(folder) != FOLDED   # as the old workers exit,
                   and time.monotonic() < deadline):  # scrapes fold their files
                assert accepted(url) == 6.0
                time.sleep(0.2)
            assert accepted(url) == 6.0
            assert files(folder) == FOLDED
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
