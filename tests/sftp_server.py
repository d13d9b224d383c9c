"""A real SFTP server for tests: asyncssh in-process, its own event loop in a background thread,
rooted in a tmp folder, password auth for one user."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh

from app.transports import SftpTransport

USER = "orders"
PASSWORD = "s3cret-sftp-password"
PO = b'<?xml version="1.0" encoding="UTF-8"?>\n<Order><ID>PO-1001</ID></Order>\n'


class SftpServer:
    """A real SFTP server: password auth for one user, files under `root`."""

    def __init__(self, root: Path, *, sftp_class: type[asyncssh.SFTPServer] | None = None,
                 port: int = 0, host_key: asyncssh.SSHKey | None = None) -> None:
        self.root = root
        self.requested_port = port
        self.sftp_class = sftp_class or asyncssh.SFTPServer
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.connections: list[asyncssh.SSHServerConnection] = []
        self.passwords_seen: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sftp-server",
                                        daemon=True)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0

    @property
    def public_key(self) -> str:
        return bytes(self.host_key.export_public_key("openssh")).decode().strip()

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def start(self) -> None:
        self._thread.start()
        self._acceptor = self._run(self._listen())
        self.port = self._acceptor.get_port()

    def stop(self) -> None:
        try:
            if self._acceptor is not None:
                self._run(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def transport(self, **kwargs: Any) -> SftpTransport:
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": USER, "folder": "/inbound",
            "host_key": self.public_key, "password": PASSWORD, "connect_timeout": 3,
            "banner_timeout": 3, "auth_timeout": 3, "operation_timeout": 5,
        }
        options.update(kwargs)
        return SftpTransport(**options)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> asyncssh.SSHAcceptor:
        root = os.fsencode(self.root)
        return await asyncssh.listen(
            "127.0.0.1", self.requested_port, server_host_keys=[self.host_key],
            server_factory=lambda: _PasswordServer(self),
            sftp_factory=lambda chan: self.sftp_class(chan, chroot=root),
            login_timeout=5, allow_scp=False)

    async def _close(self) -> None:
        assert self._acceptor is not None
        self._acceptor.close()
        await self._acceptor.wait_closed()
        for conn in self.connections:
            conn.close()
        for conn in self.connections:
            await conn.wait_closed()


class _PasswordServer(asyncssh.SSHServer):
    def __init__(self, server: SftpServer) -> None:
        self.server = server

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.server.connections.append(conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self.server.passwords_seen.append(password)
        return username == USER and password == PASSWORD


class _NoPosixRename(asyncssh.SFTPServer):
    """A server without posix-rename@openssh.com, like paramiko's own or many appliances."""

    renames: list[bytes] = []

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        type(self).renames.append(newpath)
        super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("posix-rename not supported")


class _ReadOnly(asyncssh.SFTPServer):
    """Denies every write, as a supplier does when our account lost its upload right."""

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & asyncssh.FXF_WRITE:
            raise asyncssh.SFTPPermissionDenied("write access denied")
        return super().open(path, pflags, attrs)


def _serve(tmp_path: Path, sftp_class: type[asyncssh.SFTPServer] | None = None
           ) -> Iterator[SftpServer]:
    root = tmp_path / "sftp-root"
    (root / "inbound").mkdir(parents=True)
    server = SftpServer(root, sftp_class=sftp_class)
    server.start()
    try:
        yield server
    finally:
        server.stop()
