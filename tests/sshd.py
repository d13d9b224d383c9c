"""A real OpenSSH `sshd` for tests: the system's binary on a free port of 127.0.0.1, with its
own config, host keys, authorized_keys, pid file and log in temporary folders; SFTP only
(internal-sftp), key authentication only.

Run as root (as CI does), sshd logs in the unprivileged account `nobody`, as a supplier's server
logs us into an account of our own: folder permissions then mean what they mean for us. Run as
anyone else, sshd can only log in that same user, so it does.

Password authentication is not exercised: with UsePAM off sshd checks passwords against
/etc/shadow, and no account here has a password a test may know without changing one.

ORDERHUB_TEST_SSHD names another sshd binary (absolute path; a missing one shows the skip).
TEST_REQUIRE_SSHD turns "skipped" into a failure, so CI cannot pass without these tests.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from app.transports import SftpTransport

SSHD_ENV = "ORDERHUB_TEST_SSHD"
DEFAULT_SSHD = "/usr/sbin/sshd"
KEY_TYPES = ("ed25519", "ecdsa", "rsa")
ROOT_LOGIN_ACCOUNT = "nobody"


def sshd_unavailable(reason: str) -> NoReturn:
    if os.environ.get("TEST_REQUIRE_SSHD"):
        pytest.fail(f"OpenSSH sshd required (TEST_REQUIRE_SSHD is set) but {reason}")
    pytest.skip(f"OpenSSH sshd tests skipped: {reason}")


def find_sshd() -> str:
    """The sshd binary to run, or a skip saying why there is none."""
    path = os.environ.get(SSHD_ENV) or DEFAULT_SSHD
    if not os.path.isabs(path):
        sshd_unavailable(f"{SSHD_ENV}={path!r} is not an absolute path (sshd re-executes "
                         "itself and refuses to start without one)")
    if not os.access(path, os.X_OK):
        sshd_unavailable(f"no sshd at {path} (install openssh-server, or set {SSHD_ENV})")
    return path


def sshd_version(binary: str) -> tuple[int, int]:
    """(major, minor) of OpenSSH, from `sshd -V`; (0, 0) if it does not say."""
    result = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10,
                            check=False)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def login_account() -> pwd.struct_passwd:
    """The account sshd will log us in as, or a skip saying why sshd cannot serve one."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("sshd")
        except KeyError:
            sshd_unavailable("the privilege-separation user 'sshd' does not exist (it comes "
                             "with the openssh-server package)")
        try:
            account = pwd.getpwnam(ROOT_LOGIN_ACCOUNT)
        except KeyError:
            sshd_unavailable(f"running as root, and there is no unprivileged account "
                             f"{ROOT_LOGIN_ACCOUNT!r} for sshd to log in")
    else:
        try:
            account = pwd.getpwuid(os.geteuid())
        except KeyError:
            sshd_unavailable(f"uid {os.geteuid()} has no passwd entry: a non-root sshd can "
                             "only log in the user it runs as, and cannot look this one up")
    _check_not_locked(account.pw_name)
    shell = account.pw_shell or "/bin/sh"
    if not os.access(shell, os.X_OK):
        sshd_unavailable(f"the shell of {account.pw_name!r}, {shell}, is not executable; sshd "
                         "refuses such accounts")
    return account


def _check_not_locked(name: str) -> None:
    # Without PAM, sshd refuses an account whose shadow password starts with "!", keys or not.
    # `getent` sees what sshd sees as this user: as non-root, systemd's NSS module answers for
    # "nobody" with a locked "!*".
    getent = shutil.which("getent")
    if getent is None:
        return
    entry = subprocess.run([getent, "shadow", name], capture_output=True, text=True,
                           timeout=10, check=False).stdout.split(":")
    if len(entry) > 1 and entry[1].startswith("!"):
        sshd_unavailable(f"account {name!r} is locked ('!' in its shadow entry as this user "
                         "sees it); sshd without PAM refuses locked accounts even with a key")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class SshKeys:
    """Host keys of every common type (a stock OpenSSH server has all three), the client keys
    the server accepts, and a client key it has never seen."""

    folder: Path

    @classmethod
    def generate(cls, folder: Path) -> SshKeys:
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            sshd_unavailable("ssh-keygen not found (install openssh-client)")
        names = [f"host_{t}" for t in KEY_TYPES] + [f"client_{t}" for t in KEY_TYPES]
        for name in [*names, "client_stranger"]:
            kind = name.rpartition("_")[2]
            subprocess.run([keygen, "-q", "-t", "ed25519" if kind == "stranger" else kind,
                            "-N", "", "-C", f"orderhub-test-{name}", "-f", str(folder / name)],
                           check=True, capture_output=True, timeout=60)
        return cls(folder)

    def host_key_file(self, kind: str) -> Path:
        return self.folder / f"host_{kind}"

    def host_public_key(self, kind: str = "ed25519") -> str:
        """As a supplier sends it, or `ssh-keyscan` prints it: "ssh-ed25519 AAAA... comment"."""
        return (self.folder / f"host_{kind}.pub").read_text().strip()

    def host_fingerprint(self, kind: str = "ed25519") -> str:
        """As `ssh-keygen -lf` prints it: "SHA256:..."."""
        out = subprocess.run(["ssh-keygen", "-lf", str(self.folder / f"host_{kind}.pub")],
                             check=True, capture_output=True, text=True, timeout=10).stdout
        return out.split()[1]

    def client_key_file(self, kind: str = "ed25519") -> Path:
        """A private key file; kind "stranger" is one the server does not accept."""
        return self.folder / f"client_{kind}"

    def client_public_key(self, kind: str = "ed25519") -> str:
        return (self.folder / f"client_{kind}.pub").read_text().strip()


class Sshd:
    """One sshd process (restartable on the same port) serving `account` on 127.0.0.1.

    `workdir` is world-traversable (sshd reads authorized_keys as the logged-in user);
    `folder` is an empty folder the account owns, the supplier's inbound folder."""

    def __init__(self, binary: str, keys: SshKeys, account: pwd.struct_passwd,
                 workdir: Path) -> None:
        self.binary = binary
        self.keys = keys
        self.account = account
        self.workdir = workdir
        self.port = free_port()
        self.folder = workdir / "inbound"
        self.folder.mkdir()
        os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.log_file = workdir / "sshd.log"
        self.config_file = workdir / "sshd_config"
        authorized = workdir / "authorized_keys"
        authorized.write_text("".join(keys.client_public_key(t) + "\n" for t in KEY_TYPES))
        authorized.chmod(0o644)
        self.config_file.write_text(self._config())
        self._proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        host_keys = "".join(f"HostKey {self.keys.host_key_file(t)}\n" for t in KEY_TYPES)
        # OpenSSH 9.8 penalises addresses whose sessions crash or fail to log in; these tests
        # kill sessions and fail logins on purpose, all from 127.0.0.1.
        penalties = ("PerSourcePenalties no\n" if sshd_version(self.binary) >= (9, 8) else "")
        return f"""\
Port {self.port}
ListenAddress 127.0.0.1
AddressFamily inet
{host_keys}PidFile {self.workdir / "sshd.pid"}
AuthorizedKeysFile {self.workdir / "authorized_keys"}
AllowUsers {self.account.pw_name}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
LoginGraceTime 10
DisableForwarding yes
PermitTTY no
Subsystem sftp internal-sftp
ForceCommand internal-sftp
LogLevel VERBOSE
{penalties}"""

    # ------------------------------------------------------------ process

    def start(self) -> None:
        """Start sshd and wait until it listens (at most 10 s)."""
        assert self._proc is None, "already running"
        if os.geteuid() == 0:
            # Its privilege-separation chroot; systemd's unit creates it, we are not systemd.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-D", "-e", "-f", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ready = f"Server listening on 127.0.0.1 port {self.port}."
        deadline = time.monotonic() + 10
        while ready not in self.log(offset):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"sshd did not start:\n{self.log(offset)}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop sshd the hard way a server goes down: its sessions killed, then the listener."""
        if self._proc is None:
            return
        for pid in self.sessions():
            _kill(pid, signal.SIGKILL)
        proc, self._proc = self._proc, None
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def sessions(self) -> list[int]:
        """Process ids of sshd's connection processes (and theirs), deepest first."""
        if self._proc is None:
            return []
        children: dict[int, list[int]] = defaultdict(list)
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue    # gone meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            children[int(stat.rpartition(")")[2].split()[1])].append(int(entry.name))
        found: list[int] = []
        todo = list(children[self._proc.pid])
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children[pid])
        return found[::-1]

    def log(self, offset: int = 0) -> str:
        with self.log_file.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def logins(self) -> int:
        """How many SSH logins sshd has accepted so far (each is one connection)."""
        return self.log().count(f"Accepted publickey for {self.account.pw_name} ")

    # ------------------------------------------------------------ what tests use

    def transport(self, *, key: str = "ed25519", host_key: str | None = None,
                  **kwargs: Any) -> SftpTransport:
        """An SftpTransport for `folder`, logging in with client key `key` and pinning the
        server's ed25519 host key (or `host_key`, a public key line)."""
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": self.account.pw_name,
            "folder": str(self.folder),
            "host_key": host_key or self.keys.host_public_key("ed25519"),
            "key_file": str(self.keys.client_key_file(key)), "connect_timeout": 3,
            "banner_timeout": 3, "auth_timeout": 3, "operation_timeout": 10,
        }
        options.update(kwargs)
        return SftpTransport(**options)

    def read_only_folder(self) -> Path:
        """An existing folder the account may read but not write."""
        folder = self.workdir / "read-only"
        folder.mkdir()
        if self.account.pw_uid == os.geteuid():
            folder.chmod(0o555)
        # else: owned by us (root), mode 0755, and the account is someone else
        return folder


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return      # exited meanwhile


@contextmanager
def serve_sshd(keys: SshKeys) -> Iterator[Sshd]:
    """A started sshd in a fresh working folder, stopped and removed afterwards."""
    binary = find_sshd()
    account = login_account()
    workdir = Path(tempfile.mkdtemp(prefix="orderhub-sshd-"))
    try:
        workdir.chmod(0o711)
        server = Sshd(binary, keys, account, workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        for folder in workdir.rglob("*"):
            if folder.is_dir() and not folder.is_symlink():
                folder.chmod(0o755)     # a read-only folder could not be emptied
        shutil.rmtree(workdir)
