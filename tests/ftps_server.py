"""A real FTPS server for tests: pyftpdlib's TLS handler on 127.0.0.1 in a background thread,
rooted in a tmp folder, one user with a password, a self-signed certificate made for it.

Strict like a hardened vsftpd: TLS is required on the control and the data connection, and (as
vsftpd's `require_ssl_reuse`) a data connection that does not resume the control connection's
TLS session is refused with 522. Every data connection records whether it resumed the session.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import lib as _openssl  # SSL_session_reused has no public pyOpenSSL wrapper

from app.transports import FtpsTransport
from tests.tls_certs import write_self_signed

with warnings.catch_warnings():
    # pyftpdlib is built on asyncore/asynchat, which Python 3.11 marks deprecated on import.
    warnings.filterwarnings("ignore", message=r"The asyn(core|chat) module is deprecated",
                            category=DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer  # type: ignore[import-untyped]
    from pyftpdlib.handlers import (  # type: ignore[import-untyped]
        TLS_DTPHandler,
        TLS_FTPHandler,
    )
    from pyftpdlib.ioloop import IOLoop  # type: ignore[import-untyped]
    from pyftpdlib.log import logger as ftpd_log  # type: ignore[import-untyped]
    from pyftpdlib.servers import FTPServer  # type: ignore[import-untyped]

USER = "orders"
PASSWORD = "s3cret-ftps-password"
FULL_PERMS = "elradfmwMT"


class _RecordingAuthorizer(DummyAuthorizer):  # type: ignore[misc]
    def __init__(self, state: FtpsServer) -> None:
        super().__init__()
        self.state = state

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        self.state.passwords_seen.append(password)
        super().validate_authentication(username, password, handler)


class _DataHandler(TLS_DTPHandler):  # type: ignore[misc]
    def handle_ssl_established(self) -> None:
        state: FtpsServer = self.cmd_channel.state
        reused = bool(_openssl.SSL_session_reused(self.socket._ssl))
        state.data_sessions_reused.append(reused)
        if not reused and state.require_session_reuse:
            # vsftpd's answer, word for word.
            self._resp = ("522 SSL connection failed: session reuse required", ftpd_log.info)
            self.close()


class _ControlHandler(TLS_FTPHandler):  # type: ignore[misc]
    tls_control_required = True
    tls_data_required = True
    auth_failed_timeout = 0     # pyftpdlib waits 3 s before answering a wrong password
    dtp_handler = _DataHandler
    state: FtpsServer           # set on the subclass each server makes

    def on_connect(self) -> None:
        self.state.connections.append(self)


class FtpsServer:
    """A real FTPS server (explicit TLS): one user, files under `root`."""

    def __init__(self, root: Path, certs: Path, *, perm: str = FULL_PERMS,
                 require_session_reuse: bool = True, max_tls: int | None = None,
                 idle_timeout: float = 60, handler_base: type[Any] = _ControlHandler) -> None:
        self.root = root
        self.cert_file, self.key_file = write_self_signed(certs)
        self.require_session_reuse = require_session_reuse
        self.connections: list[Any] = []
        self.passwords_seen: list[str] = []
        self.data_sessions_reused: list[bool] = []
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate_chain_file(str(self.cert_file))
        context.use_privatekey_file(str(self.key_file))
        context.set_options(SSL.OP_NO_COMPRESSION)
        if max_tls is not None:
            context.set_max_proto_version(max_tls)
        authorizer = _RecordingAuthorizer(self)
        authorizer.add_user(USER, PASSWORD, str(root), perm=perm)
        handler = type("Handler", (handler_base,), {
            "state": self, "authorizer": authorizer, "ssl_context": context,
            "timeout": idle_timeout})
        self._server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
        self.port: int = self._server.address[1]
        self._stop = threading.Event()
        self._drop = threading.Event()
        self._dropped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ftps-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drop_connections(self) -> None:
        """Close every control connection from the server side, as a restart would."""
        self._dropped.clear()
        self._drop.set()
        assert self._dropped.wait(timeout=5)

    def transport(self, **kwargs: Any) -> FtpsTransport:
        options: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "username": USER, "password": PASSWORD,
            "folder": "/inbound", "ca_file": str(self.cert_file), "connect_timeout": 3,
            "operation_timeout": 5,
        }
        options.update(kwargs)
        return FtpsTransport(**options)

    def _serve(self) -> None:
        # pyftpdlib's loop is not thread-safe: everything touching it happens on this thread.
        try:
            while not self._stop.is_set():
                self._server.ioloop.loop(timeout=0.01, blocking=False)
                if self._drop.is_set():
                    for handler in self.connections:
                        handler.close()
                    self._drop.clear()
                    self._dropped.set()
        finally:
            self._server.close_all()


@contextmanager
def serve_ftps(tmp_path: Path, **options: Any) -> Iterator[FtpsServer]:
    """An FTPS server whose user sees `tmp_path/ftps-root` as "/", with "/inbound" in it."""
    root = tmp_path / "ftps-root"
    (root / "inbound").mkdir(parents=True)
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    server = FtpsServer(root, certs, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
