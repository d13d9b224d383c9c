"""`make run`: the whole of OrderHub on this machine, with a demo shop and two demo suppliers.

    python deploy/demo.py [--port 8000] [--interval 5] [--duration SECONDS] [--demo-dir var/demo]
    (or python -m deploy.demo; PORT, DEMO_INTERVAL, DEMO_DURATION, DEMO_DIR, DEMO_SFTP_PORT
    in the environment do the same)

Starts, each as a process of its own and on the same code paths as production: a real SFTP
server (asyncssh) with one account per demo supplier; `flask db upgrade`; gunicorn
(deploy/gunicorn.conf.py) on 127.0.0.1:PORT; the dispatcher (`flask dispatch`); the timers'
work (`flask shipments poll`, `flask orders sync`) every few seconds; the demo suppliers, who
answer each purchase order on their SFTP folders with a shipment notice; and the demo shop,
which sends a signed `orders/create` webhook to /webhooks/demo every few seconds. Everything
lives in the demo folder (default var/demo: database, SFTP root, logs). On Ctrl-C or SIGTERM
(or after --duration) every process is stopped, group by group, and it exits 0.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # `python deploy/demo.py`
    sys.path.insert(0, str(REPO))

from deploy.demo_catalog import DemoPaths, say  # noqa: E402
from deploy.demo_procs import Child, Children  # noqa: E402
from deploy.demo_setup import (  # noqa: E402
    banner,
    demo_environment,
    make_folders,
    read_secrets,
    settings,
    supplier_passwords,
    write_env_file,
    write_suppliers_toml,
)

PY = sys.executable


class Stop(Exception):
    """Ctrl-C, SIGTERM or the end of --duration: stop everything and exit 0."""


class Failed(Exception):
    """Something the demo needs did not start or stopped; the message says what."""


@dataclass(frozen=True)
class Options:
    port: int
    interval: float
    duration: float          # 0: until stopped
    demo_dir: Path
    sftp_port: int


@dataclass(frozen=True)
class SftpInfo:
    port: int
    host_key: str            # "ssh-ed25519 AAAA...", pinned in the demo's suppliers.toml


def parse_args(argv: list[str] | None, environ: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(description="OrderHub's demo: `make run`.")
    parser.add_argument("--port", type=int, default=int(environ.get("PORT") or 8000),
                        help="OrderHub's HTTP port on 127.0.0.1 (PORT, default 8000)")
    parser.add_argument("--interval", type=float,
                        default=float(environ.get("DEMO_INTERVAL") or 5),
                        help="seconds between orders, and between timer runs (default 5)")
    parser.add_argument("--duration", type=float,
                        default=float(environ.get("DEMO_DURATION") or 0),
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--demo-dir", type=Path,
                        default=Path(environ.get("DEMO_DIR") or "var/demo"),
                        help="the demo's folder (DEMO_DIR, default var/demo)")
    parser.add_argument("--sftp-port", type=int, default=int(environ.get("DEMO_SFTP_PORT") or 0),
                        help="the demo SFTP server's port (default: any free one)")
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.duration < 0:
        parser.error("--interval must be above 0 and --duration 0 or more")
    return Options(args.port, args.interval, args.duration, args.demo_dir.resolve(),
                   args.sftp_port)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv, os.environ)
    paths = DemoPaths(opts.demo_dir)
    make_folders(paths)
    lock = open(paths.lock, "w")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"demo: another demo is running on {paths.root}; stop it first", file=sys.stderr)
        return 1
    children = Children(paths.pids, paths.logs, REPO)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        run(opts, paths, children)
    except Stop:
        pass
    except Failed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short (the children ignore it: they are
        # in sessions of their own).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if children.children:
            say("demo", "stopping " + ", ".join(c.name for c in reversed(children.children)))
            children.stop_all()
            say("demo", "stopped")
        lock.close()
    return code


def run(opts: Options, paths: DemoPaths, children: Children) -> None:
    if not port_free(opts.port):
        raise Failed(f"127.0.0.1:{opts.port} is in use (another OrderHub?); "
                     "choose another with PORT=8001 make run")
    given, made = read_secrets(os.environ, Path.cwd())
    passwords = supplier_passwords()
    env = demo_environment(paths, given, passwords, interval=opts.interval, repo=REPO,
                           environ=os.environ)
    url = f"http://127.0.0.1:{opts.port}"

    say("demo", f"starting in {paths.root}")
    paths.sftp_info.unlink(missing_ok=True)
    sftp = children.start("sftp", [PY, "-m", "deploy.demo_sftp", "--demo-dir", str(paths.root),
                                   "--port", str(opts.sftp_port)], env)
    info = wait_for_sftp(paths, sftp)
    write_suppliers_toml(paths, port=info.port, host_key=info.host_key)
    write_env_file(paths, settings(paths, given, passwords, interval=opts.interval))

    migrate = subprocess.run([PY, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=REPO,
                             env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=120)
    (paths.logs / "migrate.log").write_text(migrate.stdout + migrate.stderr)
    if migrate.returncode != 0:
        raise Failed(f"flask db upgrade failed:\n{migrate.stdout}{migrate.stderr}")

    web = children.start("web", [PY, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                                 "--bind", f"127.0.0.1:{opts.port}", "wsgi:app"], env)
    wait_for_web(url, web)
    children.start("dispatch", [PY, "-m", "flask", "--app", "wsgi", "dispatch"], env)
    interval = str(opts.interval)
    children.start("timers", [PY, "-m", "deploy.demo_timers", "--log",
                              str(paths.logs / "timers.log"), "--interval", interval], env,
                   to_terminal=True)
    children.start("supplier", [PY, "-m", "deploy.demo_supplier", "--demo-dir", str(paths.root),
                                "--interval", interval], env, to_terminal=True)
    with contextlib.suppress(OSError):   # a terminal gone away is no reason to stop
        print(banner(url=url, token=given["ORDERHUB_API_TOKEN"], sftp_port=info.port,
                     paths=paths, cwd=Path.cwd(), interval=opts.interval, made=made), flush=True)
    children.start("shop", [PY, "-m", "deploy.demo_shop", "--demo-dir", str(paths.root),
                            "--url", url, "--interval", interval], env, to_terminal=True)
    watch(opts, children, url, given["ORDERHUB_API_TOKEN"])


def watch(opts: Options, children: Children, url: str, token: str) -> None:
    """Until stopped: a child that dies stops the demo; now and then a line of order counts."""
    deadline = time.monotonic() + opts.duration if opts.duration else None
    every = max(10.0, 3 * opts.interval)
    next_status = time.monotonic() + every
    last = ""
    while True:
        dead = children.exited()
        if dead is not None:
            raise Failed(f"{dead.name} stopped (exit {dead.proc.returncode})"
                         + (f"; the end of {dead.log}:\n{dead.log_tail()}" if dead.log else ""))
        if deadline is not None and time.monotonic() >= deadline:
            raise Stop("duration")
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + every
            line = order_counts(url, token)
            if line and line != last:
                say("orderhub", line)
                last = line
        time.sleep(0.5)


def order_counts(url: str, token: str) -> str | None:
    """"orders: 12 (5 shipped, ...)" from GET /api/orders, as a script would ask."""
    request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
        f"{url}/api/orders?limit=200", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    counts = collections.Counter(str(o.get("status")) for o in body.get("orders", []))
    total = sum(counts.values())
    more = "+" if body.get("next_cursor") else ""
    parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    return f"orders: {total}{more} ({parts})" if total else None


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gunicorn binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_sftp(paths: DemoPaths, sftp: Child, timeout_s: float = 30) -> SftpInfo:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sftp.proc.poll() is not None:
            raise Failed(f"the SFTP server stopped (exit {sftp.proc.returncode}):\n"
                         f"{sftp.log_tail()}")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info = json.loads(paths.sftp_info.read_text())
            return SftpInfo(port=int(info["port"]), host_key=str(info["host_key"]))
        time.sleep(0.1)
    raise Failed(f"the SFTP server did not start within {timeout_s:.0f} s:\n{sftp.log_tail()}")


def wait_for_web(url: str, web: Child, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if web.proc.poll() is not None:
            raise Failed(f"gunicorn stopped (exit {web.proc.returncode}):\n{web.log_tail()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise Failed(f"gunicorn did not answer within {timeout_s:.0f} s:\n{web.log_tail()}")


if __name__ == "__main__":
    sys.exit(main())
