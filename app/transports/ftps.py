"""A supplier's FTPS server through ftplib: explicit TLS (AUTH TLS) with the certificate checked,
a private data channel that resumes the control connection's TLS session, passive mode,
explicit timeouts, one reused control connection, uploads to a temporary name renamed into place.

Implicit FTPS (TLS from the first byte, usually port 990) is not supported; servers that offer
it nearly always offer explicit TLS on port 21 too.
"""

from __future__ import annotations

import errno
import ftplib
import hashlib
import io
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import BinaryIO

from app.transports.base import (
    DEFAULT_TEMP_SUFFIX,
    AtomicFolderTransport,
    TransportError,
    UploadResult,
)

log = logging.getLogger(__name__)

# Replies meaning "this server does not have that command", as opposed to "not allowed".
_NOT_IMPLEMENTED = ("500", "502", "504")


class _SessionReusingFtpTls(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    vsftpd (require_ssl_reuse, on by default), FileZilla Server and others refuse a data
    connection that starts a fresh TLS session, because otherwise anyone who guessed the passive
    port could connect to it first; the standard library does not offer the session.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None
                     ) -> tuple[socket.socket, int | None]:
        # FTP's own method opens the plain connection; FTP_TLS's would wrap it without the session.
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 - wrapped just below
        # Our data channel is always private (prot_p() right after login).
        if not isinstance(self.sock, ssl.SSLSocket):
            conn.close()
            raise ValueError("data connection requested before AUTH TLS")
        try:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        except BaseException:
            conn.close()
            raise
        return conn, size


class FtpsTransport(AtomicFolderTransport):
    """Files in one folder of an FTPS server (explicit TLS). One control connection, opened on
    first use, checked with NOOP before each upload and reopened if the server dropped it; kept
    until `close()`. Not thread-safe: one instance per worker thread."""

    def __init__(self, *, host: str, port: int = 21, username: str, password: str,
                 folder: str = "", ca_file: str | None = None, connect_timeout: float = 10.0,
                 operation_timeout: float = 30.0,
                 temp_suffix: str = DEFAULT_TEMP_SUFFIX, direct: bool = False) -> None:
        super().__init__(temp_suffix=temp_suffix, direct=direct)
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.folder = folder        # "" is the login folder
        self.ca_file = ca_file
        self.connect_timeout = connect_timeout
        self.operation_timeout = operation_timeout
        self._context: ssl.SSLContext | None = None
        self._ftp: _SessionReusingFtpTls | None = None
        self._binary = False        # TYPE I in force (SIZE needs it; listings switch to TYPE A)
        self._mlsd = True           # until the server proves otherwise

    def __repr__(self) -> str:
        return f"FtpsTransport({self.where})"

    @property
    def where(self) -> str:
        return f"ftps://{self.username}@{self.host}:{self.port}/{self.folder.lstrip('/')}"

    # ------------------------------------------------------------ the protocol

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Write `name + temp_suffix`, then rename it to `name` unless `name` exists."""
        self._check_name(name)
        if "\r" in name or "\n" in name:
            raise ValueError(f"{name!r} is not a plain file name for {self.where}")
        with self._errors(f"upload {name}"):
            self._connect()
            return super().upload_atomic(name, data)

    def list_names(self) -> list[str]:
        """Files in the folder, sorted, without our temporary files (from a server without
        MLSD, folders cannot be told from files and are listed too)."""
        with self._errors("list"):
            self._connect()
            entries = self._entries()
        return sorted(name for name, kind in entries.items()
                      if kind in (None, "file") and not name.endswith(self.temp_suffix))

    def close(self) -> None:
        """Say QUIT and close the control connection; the next call opens a new one."""
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            with suppress(*ftplib.all_errors):
                ftp.quit()
            ftp.close()

    # ------------------------------------------------------------ connection

    def _connect(self) -> None:
        if self._ftp is not None:
            try:
                self._ftp.voidcmd("NOOP")
                return
            except ftplib.all_errors as exc:
                # 421 after an idle timeout, EOF or a reset: the server dropped us meanwhile.
                log.info("connection to %s lost (%s); reconnecting", self.where,
                         self._scrub(str(exc)) or type(exc).__name__)
                self._drop()
        ftp = _SessionReusingFtpTls(context=self._tls_context())
        try:
            ftp.connect(self.host, self.port, timeout=self.connect_timeout)
            assert ftp.sock is not None
            ftp.sock.settimeout(self.operation_timeout)
            ftp.timeout = self.operation_timeout     # data connections use it too
            try:
                ftp.auth()
            except ftplib.error_perm as exc:
                raise TransportError(
                    f"{self.host}:{self.port} refused AUTH TLS ({self._scrub(str(exc))}): it "
                    "does not offer explicit FTPS, and the password is never sent in clear",
                    retryable=False) from None
            ftp.login(self.username, self._password)
            ftp.prot_p()
            ftp.set_pasv(True)
            if self.folder:
                ftp.cwd(self.folder)
        except BaseException:
            ftp.close()
            raise
        self._ftp = ftp
        self._binary = False
        log.info("connected to %s", self.where)

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                # With a ca_file, only that certificate (or CA) is trusted, not the system's.
                self._context = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"cannot load ca_file {self.ca_file} for {self.where}: "
                                     f"{exc}", retryable=False) from None
        return self._context

    def _session(self) -> _SessionReusingFtpTls:
        assert self._ftp is not None, "_connect() first"
        return self._ftp

    def _drop(self) -> None:
        # The connection is broken: close it without waiting for an answer to QUIT.
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            ftp.close()

    def _scrub(self, text: str) -> str:
        # Server replies are quoted in messages; no server should echo the password, but if one
        # ever does it must not reach a log or the dashboard.
        return text.replace(self._password, "***") if self._password else text

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map ftplib, TLS and socket failures to TransportError, dropping a broken connection."""
        try:
            yield
        except TransportError:
            raise
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            hint = ("check ca_file" if self.ca_file else
                    "if the supplier uses a self-signed certificate, set ca_file to its PEM file")
            raise TransportError(
                f"the TLS certificate of {self.host}:{self.port} is not trusted "
                f"({exc.verify_message}); {hint}", retryable=False) from None
        except ftplib.error_perm as exc:
            reply = self._scrub(str(exc))
            if reply.startswith("530"):
                self._drop()
                raise TransportError(f"login as {self.username} on {self.host}:{self.port} "
                                     f"failed: the server replied {reply}",
                                     retryable=False) from None
            raise TransportError(f"cannot {doing} in {self.where}: the server replied {reply}",
                                 retryable=False) from None
        except ftplib.error_temp as exc:
            self._drop()
            raise TransportError(f"cannot {doing} in {self.where}: the server replied "
                                 f"{self._scrub(str(exc))}", retryable=True) from None
        except (ftplib.error_reply, ftplib.error_proto, EOFError, OSError) as exc:
            # Refused, timed out, reset, closed, a TLS failure other than the certificate, or a
            # reply out of sequence: start over on a fresh connection next time.
            self._drop()
            detail = self._scrub(str(exc)) or "connection closed"
            raise TransportError(f"cannot {doing} in {self.where}: {type(exc).__name__}: "
                                 f"{detail}", retryable=True) from None

    # ------------------------------------------------------------ file operations

    def _entries(self) -> dict[str, str | None]:
        """The folder's entries: name -> MLSD type ("file", "dir", ...), None from NLST."""
        ftp = self._session()
        self._binary = False
        if self._mlsd:
            try:
                return {name: facts.get("type", "").lower() or None
                        for name, facts in ftp.mlsd()
                        if name not in (".", "..")}
            except ftplib.error_perm as exc:
                if not str(exc).startswith(_NOT_IMPLEMENTED):
                    raise
                log.info("MLSD not offered by %s (%s); using NLST", self.where, exc)
                self._mlsd = False
        try:
            names = ftp.nlst()
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            # ProFTPD and others answer an empty folder with "450 No files found".
            if "no files found" in str(exc).lower():
                return {}
            raise
        # Some servers answer NLST with paths; only the last part is the name.
        basenames = (name.rsplit("/", 1)[-1] for name in names)
        return {name: None for name in basenames if name not in ("", ".", "..")}

    def _size(self, name: str) -> int | None:
        ftp = self._session()
        if not self._binary:
            ftp.voidcmd("TYPE I")     # SIZE of a file in ASCII mode is refused or meaningless
            self._binary = True
        try:
            return ftp.size(name)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None         # no such file
            if not str(exc).startswith(_NOT_IMPLEMENTED) or not self._mlsd:
                raise
        # SIZE is not offered: the listing's size fact tells.
        if name not in (entries := self._mlsd_sizes()):
            return None
        return entries[name]

    def _mlsd_sizes(self) -> dict[str, int]:
        self._binary = False
        return {name: int(facts.get("size", -1)) for name, facts in self._session().mlsd()
                if facts.get("type", "file").lower() == "file"}

    def _read(self, name: str) -> bytes:
        buffer = io.BytesIO()
        self._session().retrbinary(f"RETR {name}", buffer.write)
        self._binary = True
        return buffer.getvalue()

    def _write(self, name: str, data: bytes) -> None:
        self._session().storbinary(f"STOR {name}", io.BytesIO(data))
        self._binary = True
        # The 226 reply says the transfer ended, not that it was complete.
        stored = self._size(name)
        if stored != len(data):
            raise TransportError(f"{name} in {self.where} holds {stored} bytes after STOR, not "
                                 f"{len(data)}", retryable=True)

    def _rename_into_place(self, temp: str, name: str) -> None:
        # RNTO replaces an existing file on most servers, and FTP has no "rename unless it
        # exists": look in the listing (not SIZE, which a server may refuse for a file that is
        # there), then rename. A file created between the two is overwritten; nothing narrower
        # exists in FTP.
        if name in self._entries():
            raise FileExistsError(errno.EEXIST, "target exists", name)
        self._session().rename(temp, name)

    def _prepare(self) -> None:
        self._connect()

    def _modified(self, name: str) -> datetime | None:
        try:
            reply = self._session().voidcmd(f"MDTM {name}")   # "213 YYYYMMDDHHMMSS[.sss]"
        except ftplib.error_perm:
            return None
        stamp = reply.split()[-1][:14]
        try:
            return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None

    def _read_into(self, name: str, sink: BinaryIO) -> None:
        self._session().retrbinary(f"RETR {name}", sink.write)
        self._binary = True

    def _make_folder(self, subfolder: str) -> None:
        if self._entries().get(subfolder, "missing") in ("dir", None):
            return
        self._session().mkd(subfolder)

    def _move(self, name: str, target: str) -> None:
        self._session().rename(name, target)

    def identity(self) -> str | None:
        """The TLS version and the SHA-256 fingerprint of the server's certificate."""
        with self._errors("connect"):
            self._connect()
            sock = self._session().sock
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
        if der is None:
            return None
        digest = hashlib.sha256(der).hexdigest().upper()
        pairs = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
        return f"{version} certificate SHA256 {pairs}"

    def _remove(self, name: str) -> None:
        try:
            self._session().delete(name)
        except ftplib.error_perm as exc:
            if not str(exc).startswith("550"):
                raise
            log.debug("DELE %s in %s: %s", name, self.where, exc)   # missing is fine
