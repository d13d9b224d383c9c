"""The demo's timers: what systemd's timers run in production (`flask --app wsgi shipments poll`,
`flask --app wsgi orders sync`), every few seconds instead of every few minutes. Run by
`deploy/demo.py` with the demo's environment:

    python -m deploy.demo_timers --log var/demo/logs/timers.log [--interval 5]

Each command's whole output goes to the log; a line that says something happened (a notice
applied, an order found by `orders sync`) is also printed. Stops on SIGTERM or SIGINT, after
the command that is running (it gets the signal too: it is in the same process group).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # `python deploy/demo_timers.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.demo_catalog import say  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (("shipments", "poll"), ("orders", "sync"))
# Output lines worth showing in the terminal: something was applied or found.
NEWS = re.compile(r"(?:[1-9]\d* applied|[1-9]\d* new|[1-9]\d* updated|[1-9]\d* quarantined"
                  r"|FAILED|could not read|error)")


def run(command: tuple[str, ...], log: Path, timeout: float) -> None:
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *command], cwd=REPO,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        partial = (exc.stdout or b"") + (exc.stderr or b"")   # bytes, even with text=True
        output = (partial.decode(errors="replace") if isinstance(partial, bytes) else partial)
        output, code = output + "\ntimed out", -1
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"--- {datetime.now().isoformat(timespec='seconds')} flask "
                f"{' '.join(command)} (exit {code}, {time.monotonic() - started:.1f} s)\n")
        f.write(output if output.endswith("\n") or not output else output + "\n")
    for line in output.splitlines():
        summary = line.startswith(("shipments:", "demo:", "shopify:", "error"))
        if summary and NEWS.search(line):
            say("orderhub", f"{' '.join(command)}: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's timers (shipments poll, orders sync).")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        began = time.monotonic()
        for command in COMMANDS:
            if stop.is_set():
                break
            run(command, args.log, timeout=max(60.0, 10 * args.interval))
        stop.wait(max(0.0, args.interval - (time.monotonic() - began)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
