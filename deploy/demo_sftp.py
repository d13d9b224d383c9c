"""The demo's SFTP server: a real one (asyncssh), one account per demo supplier, each shut in its
own folder, on 127.0.0.1. Run by `deploy/demo.py` as a process of its own:

    python -m deploy.demo_sftp --demo-dir var/demo [--port 0]

Passwords come from each supplier's `password_env` variable. The host key is kept in the demo
folder (created on first start), so the key pinned in the demo's suppliers.toml stays the same
from run to run. Once listening it writes `{"port": ..., "host_key": "ssh-ed25519 ..."}` to
`run/sftp.json`. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import sys
from pathlib import Path

import asyncssh

if __package__ in (None, ""):  # `python deploy/demo_sftp.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.demo_catalog import SUPPLIERS, DemoPaths  # noqa: E402

log = logging.getLogger("demo.sftp")


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The demo's host key, made (ed25519, private to this user) the first time."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key("openssh"))
    os.replace(tmp, path)
    return key


class _Accounts(asyncssh.SSHServer):
    """Password login for the demo suppliers' accounts, nothing else."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        expected = self.passwords.get(username)
        ok = expected is not None and hmac.compare_digest(expected.encode(), password.encode())
        if not ok:
            log.warning("login refused for %r", username)
        return ok


async def serve(paths: DemoPaths, port: int) -> None:
    passwords = {s.key: os.environ[s.password_env] for s in SUPPLIERS}
    key = load_host_key(paths.host_key)

    def sftp_for(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        user = str(chan.get_extra_info("username"))
        return asyncssh.SFTPServer(chan, chroot=os.fsencode(paths.supplier_dir(user)))

    acceptor = await asyncssh.listen(
        "127.0.0.1", port, server_host_keys=[key],
        server_factory=lambda: _Accounts(passwords), sftp_factory=sftp_for,
        allow_scp=False, login_timeout=10)
    public = bytes(key.export_public_key("openssh")).decode().strip()
    info = {"port": acceptor.get_port(), "host_key": public,
            "fingerprint": key.get_fingerprint("sha256")}
    paths.sftp_info.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.sftp_info.with_name(paths.sftp_info.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, paths.sftp_info)
    log.info("SFTP server on 127.0.0.1:%d, host key %s, accounts %s", info["port"],
             info["fingerprint"], ", ".join(sorted(passwords)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    acceptor.close()
    await acceptor.wait_closed()
    log.info("SFTP server stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's SFTP server.")
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)   # one line per packet otherwise
    missing = [s.password_env for s in SUPPLIERS if not os.environ.get(s.password_env)]
    if missing:
        print(f"demo_sftp: set {', '.join(missing)}", file=sys.stderr)
        return 2
    asyncio.run(serve(DemoPaths(args.demo_dir.resolve()), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
