"""Dispatch benchmark: purchase orders to a supplier's SFTP server, and webhook-to-file latency.

    .venv/bin/python bench/dispatch.py [--count 1000] [--rate 20] [--duration 30]

Part 1 (throughput): `--count` paid orders go through the real intake (in process), each becomes
one purchase order for the one supplier, and one dispatcher (`Dispatcher.run(once=True)`, one
lane) sends them all to an SFTP server on 127.0.0.1 that runs in a process of its own
(asyncssh). Timed twice: with the connection reused for every file (as the dispatcher does), and
with a new SSH connection per file. Prints POs/s for each and the ratio.

Part 2 (latency): gunicorn (deploy/gunicorn.conf.py) and `flask --app wsgi dispatch` run as in
production on one SQLite file; signed `orders/create` webhooks arrive at a steady `--rate` per
second for `--duration` seconds; the SFTP server notes when each file is renamed into place.
Prints p50/p95/p99 from the webhook being sent to its file being renamed, and checks that every
order's file arrived.

Targets: >= 200 POs/s with a reused connection; webhook -> file p95 < 2 s. Exit status 0 when
both are met, 1 when one is missed, 2 when the bench itself fails.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.ingest import (  # noqa: E402
    INHERITED_ENV,
    OrderFactory,
    Server,
    SignedDelivery,
    stop_process_group,
)

USER = "orders"
PASSWORD = secrets.token_urlsafe(16)
TARGET_POS_PER_S = 200.0
TARGET_P95_S = 2.0

SUPPLIER = """\
# Written by bench/dispatch.py for one run: every line goes to one supplier over SFTP.
[suppliers.bench]
name = "Bench Supplies"
transport = "sftp://{user}@127.0.0.1:{port}/inbound"
password_env = "BENCH_SFTP_PASSWORD"
host_key = "{host_key}"
format = "orderhub"
default = true
"""


# ---------------------------------------------------------------- the SFTP server process

def serve_sftp(root: Path, info_file: Path, renames_file: Path) -> None:
    """Run an asyncssh SFTP server (the child process); note every rename with its time."""
    import asyncssh

    log = renames_file.open("a", buffering=1)

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == USER and password == os.environ["BENCH_SFTP_PASSWORD"]

    class Sftp(asyncssh.SFTPServer):
        def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
            super().posix_rename(oldpath, newpath)
            log.write(f"{time.time():.6f}\t{os.path.basename(newpath).decode()}\n")

        def rename(self, oldpath: bytes, newpath: bytes) -> None:
            super().rename(oldpath, newpath)
            log.write(f"{time.time():.6f}\t{os.path.basename(newpath).decode()}\n")

    async def main() -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        acceptor = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[key], server_factory=Server,
            sftp_factory=lambda chan: Sftp(chan, chroot=os.fsencode(root)), allow_scp=False)
        public = bytes(key.export_public_key("openssh")).decode().strip()
        info_file.write_text(json.dumps({"port": acceptor.get_port(), "host_key": public}))
        await asyncio.Event().wait()

    asyncio.run(main())


class SftpProcess:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.root = tmp / "sftp-root"
        (self.root / "inbound").mkdir(parents=True)
        self.inbound = self.root / "inbound"
        self.renames = tmp / "renames.tsv"
        self.renames.touch()
        info = tmp / "sftp.json"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-sftp", str(self.root), str(info),
             str(self.renames)], env=env, start_new_session=True)
        deadline = time.monotonic() + 30
        while not info.exists() or not info.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the SFTP server did not start")
            time.sleep(0.05)
        data = json.loads(info.read_text())
        self.port: int = data["port"]
        self.host_key: str = data["host_key"]

    def stop(self) -> None:
        stop_process_group(self.proc, grace_s=5)

    def rename_times(self) -> dict[str, float]:
        times: dict[str, float] = {}
        for line in self.renames.read_text().splitlines():
            at, name = line.split("\t")
            times.setdefault(name, float(at))
        return times


# ---------------------------------------------------------------- part 1: throughput

def throughput(tmp: Path, count: int, factory: OrderFactory, env: dict[str, str]
               ) -> dict[str, Any]:
    from sqlalchemy import text

    from app import create_app
    from app.db import upgrade
    from app.dispatch import Dispatcher, default_transports
    from app.hub import Hub
    from app.outbox import RetryPolicy
    from app.suppliers import Supplier
    from app.transports import Transport, UploadResult

    sftp = SftpProcess(tmp, env)
    try:
        suppliers = tmp / "suppliers.toml"
        suppliers.write_text(SUPPLIER.format(user=USER, port=sftp.port, host_key=sftp.host_key))
        config = {**env, "DATABASE_URL": f"sqlite:///{tmp / 'throughput.db'}",
                  "SUPPLIERS_FILE": str(suppliers)}
        upgrade(config["DATABASE_URL"])
        app = create_app(config)
        hub: Hub = app.extensions["orderhub"]
        client = app.test_client()
        for delivery in factory.make(count):
            response = client.post("/webhooks/shopify", data=delivery.body,
                                   headers=delivery.headers())
            assert response.status_code == 200, response.data
        with hub.db.read_session() as s:
            jobs = s.execute(text("SELECT count(*) FROM outbox")).scalar_one()
        assert jobs == count, f"{jobs} jobs for {count} orders"

        class NewConnectionPerFile:
            """The same transport, closed after every file (what a naive sender does)."""

            def __init__(self, inner: Transport) -> None:
                self.inner = inner

            def upload_atomic(self, name: str, data: bytes) -> UploadResult:
                try:
                    return self.inner.upload_atomic(name, data)
                finally:
                    self.inner.close()

            def list_names(self) -> list[str]:
                return self.inner.list_names()

            def close(self) -> None:
                self.inner.close()

        real = default_transports(config)

        def per_file(supplier: Supplier) -> Transport:
            return NewConnectionPerFile(real(supplier))  # type: ignore[return-value]

        results: dict[str, Any] = {}
        for label, transports in (("reused", real), ("per_file", per_file)):
            reset(hub, sftp.inbound)
            dispatcher = Dispatcher(db=hub.db, purchasing=hub.purchasing, policy=RetryPolicy(),
                                    transports=transports, threads=1, batch=50)
            started = time.perf_counter()
            stats = dispatcher.run(once=True)
            elapsed = time.perf_counter() - started
            files = len(list(sftp.inbound.iterdir()))
            results[label] = {"pos": stats.sent, "seconds": round(elapsed, 3),
                              "pos_per_s": round(stats.sent / elapsed, 1),
                              "files_on_server": files, "failed": stats.failed}
            print(f"  {label:9s} {stats.sent} POs in {elapsed:6.2f} s = "
                  f"{stats.sent / elapsed:7.1f} POs/s  ({files} files on the server, "
                  f"{stats.failed} failed)", flush=True)
        hub.db.dispose()
        return results
    finally:
        sftp.stop()


def reset(hub: Any, inbound: Path) -> None:
    """Every purchase order unsent again and the server folder empty (between the two runs)."""
    from sqlalchemy import text

    for path in inbound.iterdir():
        path.unlink()
    with hub.db.session() as s:
        s.execute(text("UPDATE purchase_orders SET status = 'pending', sent_at = NULL"))
        s.execute(text("UPDATE outbox SET status = 'pending', attempts = 0, lease_owner = NULL,"
                       " lease_until = NULL, first_attempt_at = NULL, finished_at = NULL,"
                       " last_error = NULL"))
        s.commit()


# ---------------------------------------------------------------- part 2: latency

def latency(tmp: Path, rate: float, duration: float, factory: OrderFactory,
            env: dict[str, str]) -> dict[str, Any]:
    from app.db import upgrade

    (tmp / "e2e").mkdir()
    sftp = SftpProcess(tmp / "e2e", env)
    dispatcher: subprocess.Popen[bytes] | None = None
    try:
        suppliers = tmp / "e2e" / "suppliers.toml"
        suppliers.write_text(SUPPLIER.format(user=USER, port=sftp.port, host_key=sftp.host_key))
        server_env = {**env, "DATABASE_URL": f"sqlite:///{tmp / 'e2e' / 'orderhub.db'}",
                      "SUPPLIERS_FILE": str(suppliers), "XDG_RUNTIME_DIR": str(tmp)}
        upgrade(server_env["DATABASE_URL"])
        with Server("wsgi:app", server_env, REPO, tmp / "gunicorn.log") as server:
            dispatcher = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "dispatch"], cwd=REPO,
                env=server_env, stdout=(tmp / "dispatch.log").open("ab"),
                stderr=subprocess.STDOUT, start_new_session=True)
            deliveries = factory.make(int(rate * duration))
            sent_at = send_steadily(server.port, deliveries, rate)
            expected = {file_name(d): at for d, at in zip(deliveries, sent_at, strict=True)}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if len(set(expected) & set(sftp.rename_times())) == len(expected):
                    break
                time.sleep(0.2)
        renamed = sftp.rename_times()
        waits = sorted(renamed[name] - at for name, at in expected.items() if name in renamed)
        missing = len(expected) - len(waits)
        result = {"orders": len(expected), "files": len(waits), "missing": missing,
                  "p50_s": pct(waits, 50), "p95_s": pct(waits, 95), "p99_s": pct(waits, 99),
                  "max_s": round(waits[-1], 3) if waits else None}
        print(f"  {len(expected)} orders at {rate:g}/s for {duration:g} s: {len(waits)} files, "
              f"{missing} missing; webhook -> file p50 {result['p50_s']} s, "
              f"p95 {result['p95_s']} s, p99 {result['p99_s']} s, max {result['max_s']} s",
              flush=True)
        return result
    finally:
        if dispatcher is not None:
            stop_process_group(dispatcher, grace_s=10)
        sftp.stop()


def send_steadily(port: int, deliveries: list[SignedDelivery], rate: float) -> list[float]:
    """Post each delivery at its slot of a steady schedule; returns when each was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.monotonic() + 0.5
    sent: list[float] = []
    for i, delivery in enumerate(deliveries):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sent.append(time.time())
        conn.request("POST", "/webhooks/shopify", body=delivery.body,
                     headers=delivery.headers())
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"webhook answered {response.status}")
    conn.close()
    return sent


def file_name(delivery: SignedDelivery) -> str:
    number = str(json.loads(delivery.body)["name"]).lstrip("#")
    return f"PO_bench_shopify-{number}_v1.xml"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return round(values[index], 3)


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--serve-sftp", nargs=3, metavar=("ROOT", "INFO", "RENAMES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sftp:
        serve_sftp(*(Path(p) for p in args.serve_sftp))
        return 0

    secret = secrets.token_urlsafe(32)
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update({"SECRET_KEY": secrets.token_urlsafe(32),
                "ORDERHUB_API_TOKEN": secrets.token_urlsafe(32),
                "SHOPIFY_WEBHOOK_SECRET": secret, "LOG_LEVEL": "WARNING",
                "ORDERHUB_ENV_FILE": os.devnull, "PYTHONPATH": str(REPO),
                "BENCH_SFTP_PASSWORD": PASSWORD, "DISPATCH_ON": "created"})
    os.environ.update({k: v for k, v in env.items() if k == "BENCH_SFTP_PASSWORD"})
    factory = OrderFactory(secret)
    with tempfile.TemporaryDirectory(prefix="orderhub-dispatch-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"part 1: {args.count} purchase orders to one SFTP supplier (one dispatcher)",
              flush=True)
        part1 = throughput(tmp, args.count, factory, env)
        ratio = part1["reused"]["pos_per_s"] / part1["per_file"]["pos_per_s"]
        print(f"  ratio reused / per-file connection: {ratio:.1f}x")
        print(f"part 2: webhooks at {args.rate:g}/s for {args.duration:g} s, gunicorn + "
              "dispatcher + SFTP server", flush=True)
        part2 = latency(tmp, args.rate, args.duration, factory, env)

    ok_throughput = part1["reused"]["pos_per_s"] >= TARGET_POS_PER_S
    ok_latency = (part2["p95_s"] is not None and part2["p95_s"] < TARGET_P95_S
                  and part2["missing"] == 0)
    print(f"targets: >= {TARGET_POS_PER_S:g} POs/s reused: "
          f"{'met' if ok_throughput else 'MISSED'}; webhook -> file p95 < {TARGET_P95_S:g} s, "
          f"none missing: {'met' if ok_latency else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"throughput": part1, "ratio": round(ratio, 2),
                                         "latency": part2}, indent=2) + "\n")
    return 0 if ok_throughput and ok_latency else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, AssertionError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
