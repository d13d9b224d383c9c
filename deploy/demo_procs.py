"""The processes `deploy/demo.py` starts: each in a session (and so a process group) of its own,
recorded in `<demo dir>/run/pids`, and stopped group by group, so nothing is left running."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _prepare_child() -> None:
    """In the child, before exec: take the stop signals again (blocked in the parent while it
    starts us), and get SIGTERM if the demo itself dies (even by SIGKILL), so a killed
    orchestrator does not leave its servers behind (Linux only)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None:
            return ""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    """Start, watch and stop the demo's processes."""

    def __init__(self, pids_file: Path, logs: Path, cwd: Path) -> None:
        self.pids_file = pids_file
        self.logs = logs
        self.cwd = cwd
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], *,
              to_terminal: bool = False) -> Child:
        """Start `argv` as a session leader; its output goes to logs/<name>.log unless
        `to_terminal` (the demo shop, suppliers and timers print what they do)."""
        log: Path | None = None
        out: int | IO[bytes] | None = None
        if not to_terminal:
            log = self.logs / f"{name}.log"
            out = open(log, "ab")  # noqa: SIM115 (handed to the child, closed below)
        # No Ctrl-C between the start and the record of it: a child must never go unrecorded.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = subprocess.Popen(
                list(argv), cwd=self.cwd, env=dict(env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True, preexec_fn=_prepare_child)  # noqa: PLW1509
            child = Child(name, proc, log)
            self.children.append(child)
            self._write_pids()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            if out is not None and not isinstance(out, int):
                out.close()
        return child

    def exited(self) -> Child | None:
        """The first child that has stopped on its own, if any."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop_all(self, grace_s: float = 15.0) -> None:
        """Stop the children, last started first (the shop before OrderHub, the SFTP server
        last, so the dispatcher can finish a file in flight)."""
        for child in reversed(self.children):
            stop_group(child.proc, grace_s=grace_s)

    def _write_pids(self) -> None:
        self.pids_file.parent.mkdir(parents=True, exist_ok=True)
        self.pids_file.write_text("".join(f"{c.name} {c.pid}\n" for c in self.children))


def stop_group(proc: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM the process group `proc` leads, wait, then SIGKILL whatever is left of it (a
    worker or command it started may outlive it)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether any process is still in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
