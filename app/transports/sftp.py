"""A supplier's SFTP server through paramiko: host key pinned, explicit timeouts, one reused
connection, uploads to a temporary name renamed into place."""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import logging
import posixpath
import socket
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, BinaryIO, NoReturn

import paramiko

from app.transports.base import (
    DEFAULT_TEMP_SUFFIX,
    AtomicFolderTransport,
    TransportError,
    UploadResult,
)

log = logging.getLogger(__name__)

# known_hosts lines may name the signature algorithm; the key blob itself is "ssh-rsa".
_KEY_BLOB_TYPES = {"rsa-sha2-256": "ssh-rsa", "rsa-sha2-512": "ssh-rsa"}
# The host-key algorithms an RSA key can sign with, best first.
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint as OpenSSH prints it: "SHA256:" + unpadded base64."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_host_key(host_key: str) -> paramiko.PKey:
    """A pinned key written like a known_hosts entry: "ssh-ed25519 AAAA... [comment]"."""
    parts = host_key.split()
    if len(parts) < 2:
        raise ValueError("host_key must look like 'ssh-ed25519 AAAA...' (key type, then base64)")
    key_type = _KEY_BLOB_TYPES.get(parts[0], parts[0])
    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(parts[1],
                                                                          validate=True))
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"host_key {parts[0]} {parts[1][:12]}... is not a valid public key: "
                         f"{exc}") from None


def _pinned_algorithms_first(host_key: paramiko.PKey) -> Callable[..., paramiko.Transport]:
    """A transport factory that asks the server to prove itself with the pinned key's type.

    SSHClient.connect moves only the pinned key's *type* to the front, and an RSA key's type is
    "ssh-rsa" (SHA-1 signatures), which OpenSSH 8.8 and later no longer offer: the server then
    signs with its ed25519 key and a correct RSA pin is reported as not matching. So RSA pins
    put rsa-sha2-512 and rsa-sha2-256 first as well (ssh-rsa still goes first, for old servers).
    """
    first = _RSA_ALGORITHMS if isinstance(host_key, paramiko.RSAKey) else (host_key.get_name(),)

    def new_transport(sock: Any, **options: Any) -> paramiko.Transport:
        transport = paramiko.Transport(sock, **options)
        security = transport.get_security_options()
        security.key_types = [*first, *(t for t in security.key_types if t not in first)]
        return transport

    return new_transport


class _RejectUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy, with the presented key's fingerprint in the error so an operator can
    compare it with what the supplier says its key is."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> NoReturn:
        raise TransportError(
            f"host key for {hostname} is not the pinned one: the server presented "
            f"{key.get_name()} {fingerprint(key)}; check it with the supplier, then update "
            "host_key", retryable=False)


class SftpTransport(AtomicFolderTransport):
    """Files in one folder of an SFTP server. One SSH connection, opened on first use and
    reused until `close()`. Not thread-safe: one instance per worker thread."""

    def __init__(self, *, host: str, port: int = 22, username: str, folder: str = ".",
                 host_key: str, password: str | None = None, key_file: str | None = None,
                 connect_timeout: float = 10.0, banner_timeout: float = 10.0,
                 auth_timeout: float = 10.0, operation_timeout: float = 30.0,
                 keepalive_interval: int = 15,
                 temp_suffix: str = DEFAULT_TEMP_SUFFIX, direct: bool = False) -> None:
        super().__init__(temp_suffix=temp_suffix, direct=direct)
        if password is None and key_file is None:
            raise ValueError("SftpTransport needs a password or a key_file")
        self.host = host
        self.port = port
        self.username = username
        self.folder = folder or "."
        self.host_key = parse_host_key(host_key)
        self._password = password
        self.key_file = key_file
        self.connect_timeout = connect_timeout
        self.banner_timeout = banner_timeout
        self.auth_timeout = auth_timeout
        self.operation_timeout = operation_timeout
        self.keepalive_interval = keepalive_interval
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._posix_rename = True   # until the server proves otherwise

    def __repr__(self) -> str:
        return f"SftpTransport({self.where})"

    @property
    def where(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}/{self.folder.lstrip('/')}"

    # ------------------------------------------------------------ the protocol

    def upload_atomic(self, name: str, data: bytes) -> UploadResult:
        """Write `name + temp_suffix`, then rename it to `name` (posix-rename when offered)."""
        with self._errors(f"upload {name}"):
            return super().upload_atomic(name, data)

    def list_names(self) -> list[str]:
        """Regular files in the folder, sorted, without our temporary files."""
        with self._errors("list"):
            entries = self._session().listdir_attr(self.folder)
        return sorted(e.filename for e in entries
                      if e.st_mode is not None and stat.S_ISREG(e.st_mode)
                      and not e.filename.endswith(self.temp_suffix))

    def close(self) -> None:
        """Close the SSH connection; the next call opens a new one. Never fails."""
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            # Closing the channel sends a message, which fails if the server just dropped the
            # connection (and the transport has not noticed yet); there is nothing to close then.
            with suppress(EOFError, OSError, paramiko.SSHException):
                sftp.close()
        if client is not None:
            client.close()

    # ------------------------------------------------------------ connection

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._sftp
            self.close()    # dropped by the server while idle: reconnect
        client = paramiko.SSHClient()
        try:
            self._sftp = self._connect(client)
        except BaseException:
            client.close()
            raise
        self._client = client
        return self._sftp

    def _connect(self, client: paramiko.SSHClient) -> paramiko.SFTPClient:
        hosts = client.get_host_keys()
        entry = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        hosts.add(entry, self.host_key.get_name(), self.host_key)
        client.set_missing_host_key_policy(_RejectUnknownHost())
        # Our own socket, so Nagle can be switched off: ~85 ms less per handshake.
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            client.connect(
                self.host, port=self.port, username=self.username, password=self._password,
                key_filename=self.key_file, sock=sock, timeout=self.connect_timeout,
                banner_timeout=self.banner_timeout, auth_timeout=self.auth_timeout,
                channel_timeout=self.operation_timeout, allow_agent=False,
                look_for_keys=False, transport_factory=_pinned_algorithms_first(self.host_key))
        except BaseException:
            sock.close()
            raise
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(self.keepalive_interval)
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(self.operation_timeout)  # type: ignore[union-attr]
        log.info("connected to %s", self.where)
        return sftp

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Map paramiko and socket failures to TransportError, dropping a broken connection."""
        try:
            yield
        except TransportError:
            raise
        except paramiko.BadHostKeyException as exc:
            self.close()
            raise TransportError(
                f"host key for {self.host}:{self.port} does not match the pinned one: the "
                f"server presented {exc.key.get_name()} {fingerprint(exc.key)}, pinned is "
                f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}; check it with "
                "the supplier, then update host_key", retryable=False) from None
        except paramiko.AuthenticationException as exc:
            self.close()
            raise TransportError(f"authentication as {self.username} failed on {self.where} "
                                 f"({type(exc).__name__}: {exc})", retryable=False) from None
        except PermissionError as exc:
            raise TransportError(f"cannot {doing} in {self.where}: permission denied ({exc})",
                                 retryable=False) from None
        except FileNotFoundError as exc:
            raise TransportError(f"cannot {doing} in {self.where}: no such file or folder "
                                 f"({exc})", retryable=False) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # Refused, timed out, reset, closed, or an SFTP failure the server did not explain:
            # start over on a fresh connection next time.
            self.close()
            raise TransportError(f"cannot {doing} in {self.where}: "
                                 f"{type(exc).__name__}: {exc}", retryable=True) from None

    # ------------------------------------------------------------ file operations

    def _path(self, name: str) -> str:
        return posixpath.join(self.folder, name)

    def _size(self, name: str) -> int | None:
        try:
            return self._session().stat(self._path(name)).st_size
        except FileNotFoundError:
            return None

    def _read(self, name: str) -> bytes:
        buffer = io.BytesIO()
        self._session().getfo(self._path(name), buffer, max_concurrent_prefetch_requests=64)
        return buffer.getvalue()

    def _write(self, name: str, data: bytes) -> None:
        # putfo pipelines the writes and confirms the size the server reports afterwards.
        self._session().putfo(io.BytesIO(data), self._path(name), file_size=len(data),
                              confirm=True)

    def _rename_into_place(self, temp: str, name: str) -> None:
        sftp = self._session()
        source, target = self._path(temp), self._path(name)
        if self._posix_rename:
            try:
                sftp.posix_rename(source, target)
                return
            except OSError as exc:
                if exc.errno is not None:
                    raise   # permission denied, no such file: a real answer
                # A bare failure: most likely posix-rename@openssh.com is not offered.
                log.info("posix-rename failed on %s (%s); using plain rename", self.where, exc)
                self._posix_rename = False
        if self._size(name) is not None:
            raise FileExistsError(errno.EEXIST, "target exists", target)
        sftp.rename(source, target)

    def _remove(self, name: str) -> None:
        with suppress(FileNotFoundError):
            self._session().remove(self._path(name))

    def _modified(self, name: str) -> datetime | None:
        try:
            mtime = self._session().stat(self._path(name)).st_mtime
        except FileNotFoundError:
            return None
        return datetime.fromtimestamp(mtime, UTC) if mtime is not None else None

    def _read_into(self, name: str, sink: BinaryIO) -> None:
        self._session().getfo(self._path(name), sink, max_concurrent_prefetch_requests=64)

    def _make_folder(self, subfolder: str) -> None:
        sftp = self._session()
        try:
            sftp.stat(self._path(subfolder))
        except FileNotFoundError:
            sftp.mkdir(self._path(subfolder))

    def _move(self, name: str, target: str) -> None:
        # Plain SFTP rename: it refuses to replace an existing file, which is what we want.
        self._session().rename(self._path(name), self._path(target))

    def identity(self) -> str | None:
        """The server's host key, as OpenSSH prints it (connects if needed)."""
        with self._errors("connect"):
            self._session()
            assert self._client is not None
            transport = self._client.get_transport()
            key = transport.get_remote_server_key() if transport is not None else None
        return f"{key.get_name()} {fingerprint(key)}" if key is not None else None
