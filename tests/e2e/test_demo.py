"""`make run`'s demo, end to end: the orchestrator (deploy/demo.py) with a 1-second interval, in
a folder of the test's own. An order goes out to a demo supplier's SFTP folder, its shipment
notice comes back and is applied, the order shows shipped through the API and its fulfillment
reaches the demo shop; then Ctrl-C (SIGINT) stops everything, with nothing left running. And
without DEMO_MODE there is no demo channel at all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app import create_app
from app.db import upgrade
from tests.conftest import base_config, encode, hub_of, shopify_headers, shopify_payload

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "demo-e2e-api-token-0123456789"
DEMO_SECRET = "demo-e2e-webhook-secret-0123456789"
PROCESSES = {"sftp", "web", "dispatch", "timers", "supplier", "shop"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def processes_of(demo_dir: Path, groups: set[int]) -> list[str]:
    """Every live process in one of `groups`, or started with this demo's environment."""
    marker = f"DEMO_DIR={demo_dir}".encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            state, _ppid, pgid = stat.rsplit(")", 1)[1].split()[:3]
            if state == "Z":
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue   # gone meanwhile, or not ours to read
        if int(pgid) in groups or marker in environ:
            found.append(f"{entry} (group {pgid}): {cmdline.decode(errors='replace')}")
    return found


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(ORDERHUB_API_TOKEN=TOKEN, SECRET_KEY="demo-e2e-secret-key-0123456789",
               DEMO_WEBHOOK_SECRET=DEMO_SECRET, DEMO_DIR=str(demo_dir),
               ORDERHUB_ENV_FILE=str(tmp_path / "no.env"))   # not the developer's .env
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    # In a session of its own, as a terminal's foreground job is: the SIGINT below reaches the
    # orchestrator only, which then stops its children itself.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy" / "demo.py"), "--port", str(port),
         "--interval", "1", "--duration", "120"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    info = {"proc": proc, "url": f"http://127.0.0.1:{port}", "dir": demo_dir,
            "log": tmp_path / "demo.log"}
    try:
        yield info
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for line in (demo_dir / "run" / "pids").read_text().splitlines() \
                if (demo_dir / "run" / "pids").exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(line.split()[1]), signal.SIGKILL)
        log.close()


def shipped_order(url: str) -> dict[str, Any] | None:
    try:
        response = requests.get(f"{url}/api/orders", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}"})
    except requests.ConnectionError:
        return None
    if response.status_code != 200:
        return None
    return next((o for o in response.json()["orders"]
                 if o["channel"] == "demo" and o["status"] in ("shipped", "partially_shipped")),
                None)


def fulfilled(demo_dir: Path) -> set[str]:
    """The demo shop's order ids that got a fulfillment back."""
    path = demo_dir / "fulfillments.jsonl"
    if not path.exists():
        return set()
    return {str(json.loads(line)["order_id"]) for line in path.read_text().splitlines()
            if line.strip()}


@pytest.mark.slow
def test_demo_runs_the_whole_flow_and_ctrl_c_stops_everything(demo: dict[str, Any]) -> None:
    proc, url, demo_dir = demo["proc"], demo["url"], demo["dir"]
    started = time.monotonic()
    sftp = demo_dir / "sftp"
    purchase_orders: list[Path] = []
    processed: list[Path] = []
    order: dict[str, Any] | None = None
    while time.monotonic() - started < 60:
        if proc.poll() is not None:
            pytest.fail(f"the demo stopped (exit {proc.returncode}):\n"
                        f"{demo['log'].read_text(errors='replace')[-3000:]}")
        purchase_orders = sorted(sftp.glob("*/inbound/PO_*_demo-*_v1.xml"))
        processed = sorted(sftp.glob("*/shipments/processed/SHIP_*"))
        order = shipped_order(url)
        if purchase_orders and processed and order and order["external_id"] in fulfilled(
                demo_dir):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no complete flow within 60 s: {len(purchase_orders)} purchase order(s), "
                    f"{len(processed)} notice(s) processed, shipped order: {order}\n"
                    f"{demo['log'].read_text(errors='replace')[-3000:]}")
    # Both suppliers, each in its own format: our XML to greenleaf, UBL to terra.
    suppliers = {p.parent.parent.name for p in purchase_orders}
    assert suppliers <= {"greenleaf", "terra"} and suppliers
    first = purchase_orders[0].read_text()
    assert ("urn:orderhub:purchase-order:1" in first if "greenleaf" in purchase_orders[0].name
            else "urn:oasis:names:specification:ubl:schema:xsd:Order-2" in first)
    assert (demo_dir / "orders" / f"{order['external_id']}.json").exists()   # the shop's order

    pids = dict(line.split()[::-1] for line in
                (demo_dir / "run" / "pids").read_text().splitlines())
    assert set(pids.values()) == PROCESSES
    groups = {int(pid) for pid in pids}
    running = processes_of(demo_dir, groups)
    assert len(running) > len(PROCESSES)   # the check below sees them (+ gunicorn's workers)

    proc.send_signal(signal.SIGINT)   # Ctrl-C
    assert proc.wait(timeout=40) == 0, demo["log"].read_text(errors="replace")[-3000:]
    left = processes_of(demo_dir, groups)
    assert not left, "still running after Ctrl-C:\n" + "\n".join(left)
    assert time.monotonic() - started < 45


def test_no_demo_channel_without_demo_mode(tmp_path: Path) -> None:
    config = base_config(f"sqlite:///{tmp_path / 'orderhub.db'}")
    upgrade(config["DATABASE_URL"])
    app = create_app(config)
    try:
        body = encode(shopify_payload())
        headers = shopify_headers(body, secret=DEMO_SECRET, shop="demo-garden.myshopify.com")
        response = app.test_client().post("/webhooks/demo", data=body, headers=headers)
        assert response.status_code == 404
        assert "demo" not in hub_of(app).channels and "demo" not in hub_of(app).apis
    finally:
        hub_of(app).db.dispose()
