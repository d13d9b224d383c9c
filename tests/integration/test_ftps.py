"""FtpsTransport against a real FTPS server on 127.0.0.1 (pyftpdlib, explicit TLS required on
control and data connections, TLS session reuse required on data connections)."""

from __future__ import annotations

import ftplib
import io
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from OpenSSL import SSL

from app.suppliers import Supplier, load_suppliers
from app.transports import FtpsTransport, TransportError, transport_for
from tests.ftps_server import (
    PASSWORD,
    USER,
    FtpsServer,
    _ControlHandler,
    serve_ftps,
)
from tests.tls_certs import write_self_signed

PO = b'<?xml version="1.0" encoding="UTF-8"?>\n<Order><ID>PO-1001</ID></Order>\n'


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[FtpsServer]:
    with serve_ftps(tmp_path) as server:
        yield server


@pytest.fixture
def inbound(ftps_server: FtpsServer) -> Path:
    return ftps_server.root / "inbound"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _closed_port() -> tuple[socket.socket, int]:
    bound = socket.socket()         # bound, never listening: connections are refused
    bound.bind(("127.0.0.1", 0))
    return bound, bound.getsockname()[1]


# ---------------------------------------------------------------- uploads

def test_upload_lands_complete_with_no_temp_file(ftps_server: FtpsServer, inbound: Path):
    with ftps_server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1001_v1.xml"]
    assert _files(inbound) == {"PO-1001_v1.xml": PO}
    # Every data connection was TLS and resumed the control connection's session.
    assert ftps_server.data_sessions_reused
    assert all(ftps_server.data_sessions_reused)


def test_same_name_same_bytes_is_already_present(ftps_server: FtpsServer, inbound: Path):
    with ftps_server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        # A crash after the rename left a temp file from a retry that started over.
        (inbound / "PO-1001_v1.xml.tmp").write_bytes(PO[:10])
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "already_present"
    assert _files(inbound) == {"PO-1001_v1.xml": PO}


@pytest.mark.parametrize("theirs", [b"<Order><ID>PO-1001</ID><Note>edited</Note></Order>",
                                    bytes(reversed(PO))], ids=["other-size", "same-size"])
def test_different_bytes_are_never_overwritten(ftps_server: FtpsServer, inbound: Path,
                                               theirs: bytes):
    (inbound / "PO-1001_v1.xml").write_bytes(theirs)
    with ftps_server.transport() as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "PO-1001_v1.xml" in str(caught.value)
    assert "refusing to overwrite a supplier's file" in str(caught.value)
    assert _files(inbound) == {"PO-1001_v1.xml": theirs}


class _SupplierWritesFirst(_ControlHandler):
    """The supplier's own file appears under the final name while our temp file is uploading."""

    def on_file_received(self, file: str) -> None:
        if file.endswith(".tmp"):
            Path(file.removesuffix(".tmp")).write_bytes(b"the supplier's own file")


def test_file_appearing_before_the_rename_is_not_overwritten(tmp_path: Path):
    with serve_ftps(tmp_path, handler_base=_SupplierWritesFirst) as server, \
            server.transport() as transport:
        with pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
        assert caught.value.retryable is False
        assert "refusing to overwrite" in str(caught.value)
        assert _files(server.root / "inbound") == {"PO-1001_v1.xml": b"the supplier's own file"}


def test_leftover_temp_file_is_replaced(ftps_server: FtpsServer, inbound: Path):
    (inbound / "PO-1002_v1.xml.part").write_bytes(b"half a file from a crash, longer than PO" * 9)
    with ftps_server.transport(temp_suffix=".part") as transport:
        assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1002_v1.xml"]
    assert _files(inbound) == {"PO-1002_v1.xml": PO}


def test_list_names_leaves_out_temp_files_and_folders(ftps_server: FtpsServer, inbound: Path):
    (inbound / "PO-2_v1.xml").write_bytes(PO)
    (inbound / "PO-1_v1.xml").write_bytes(PO)
    (inbound / "PO-3_v1.xml.tmp").write_bytes(PO[:5])
    (inbound / "archive").mkdir()
    with ftps_server.transport() as transport:
        assert transport.list_names() == ["PO-1_v1.xml", "PO-2_v1.xml"]


class _NoMlsd(_ControlHandler):
    """A server without MLSD (vsftpd has none): names come from NLST."""

    def ftp_MLSD(self, path: str) -> None:
        self.respond("502 Command MLSD not implemented.")


def test_server_without_mlsd_lists_with_nlst(tmp_path: Path):
    with serve_ftps(tmp_path, handler_base=_NoMlsd) as server, server.transport() as transport:
        inbound = server.root / "inbound"
        (inbound / "PO-9_v1.xml.tmp").write_bytes(PO[:5])
        assert transport.list_names() == []
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "already_present"
        (inbound / "PO-1002_v1.xml").write_bytes(b"theirs")
        with pytest.raises(TransportError, match="refusing to overwrite"):
            transport.upload_atomic("PO-1002_v1.xml", PO)
        assert transport.list_names() == ["PO-1001_v1.xml", "PO-1002_v1.xml"]
        assert _files(inbound) == {"PO-1001_v1.xml": PO, "PO-1002_v1.xml": b"theirs",
                                   "PO-9_v1.xml.tmp": PO[:5]}


# ---------------------------------------------------------------- the connection

def test_one_connection_serves_several_uploads(ftps_server: FtpsServer, inbound: Path):
    transport = ftps_server.transport()
    assert ftps_server.connections == []        # nothing opened before the first use
    for n in range(1, 6):
        assert transport.upload_atomic(f"PO-{n:04d}_v1.xml", PO) == "uploaded"
    assert transport.list_names() == [f"PO-{n:04d}_v1.xml" for n in range(1, 6)]
    assert len(ftps_server.connections) == 1
    transport.close()
    assert transport.upload_atomic("PO-0006_v1.xml", PO) == "uploaded"
    transport.close()
    assert len(ftps_server.connections) == 2
    assert len(_files(inbound)) == 6


def test_server_restart_between_files_reconnects(ftps_server: FtpsServer, inbound: Path,
                                                  caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with ftps_server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        ftps_server.drop_connections()
        assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
    assert len(ftps_server.connections) == 2
    assert _files(inbound) == {"PO-1001_v1.xml": PO, "PO-1002_v1.xml": PO}
    assert "reconnecting" in caplog.text
    assert PASSWORD not in caplog.text


def test_idle_timeout_421_between_files_reconnects(tmp_path: Path):
    with serve_ftps(tmp_path, idle_timeout=0.6) as server, server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        time.sleep(1.2)      # the server says "421 Control connection timed out." and hangs up
        assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
        assert len(server.connections) == 2
        assert _files(server.root / "inbound") == {"PO-1001_v1.xml": PO, "PO-1002_v1.xml": PO}


@pytest.mark.parametrize("max_tls", [SSL.TLS1_2_VERSION, None], ids=["tls1.2", "tls1.3"])
def test_data_connections_resume_the_tls_session(tmp_path: Path, max_tls: int | None):
    with serve_ftps(tmp_path, max_tls=max_tls) as server:
        # The standard library's FTP_TLS starts a fresh session: this server refuses it ...
        context = ssl.create_default_context(cafile=str(server.cert_file))
        stock = ftplib.FTP_TLS(context=context, timeout=3)  # noqa: S321 - the stock client
        stock.connect("127.0.0.1", server.port)
        stock.login(USER, PASSWORD)
        stock.prot_p()
        with pytest.raises(ftplib.all_errors):
            stock.storbinary("STOR /inbound/stock.xml", io.BytesIO(PO))
        stock.close()
        assert server.data_sessions_reused == [False]
        # ... and accepts ours.
        with server.transport() as transport:
            assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert server.data_sessions_reused[0] is False
        assert server.data_sessions_reused[1:] and all(server.data_sessions_reused[1:])
        assert (server.root / "inbound" / "PO-1001_v1.xml").read_bytes() == PO


# ---------------------------------------------------------------- errors

def test_wrong_password_is_not_retryable(ftps_server: FtpsServer, inbound: Path,
                                         caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with ftps_server.transport(password="wrong-pass-123") as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    message = str(caught.value)
    assert caught.value.retryable is False
    assert f"login as {USER} on 127.0.0.1:{ftps_server.port} failed" in message
    assert "530" in message
    assert "wrong-pass-123" not in message and "wrong-pass-123" not in caplog.text
    assert ftps_server.passwords_seen == ["wrong-pass-123"]     # sent, but only over TLS
    assert _files(inbound) == {}


@pytest.mark.parametrize("trusted", ["system", "another-certificate"])
def test_untrusted_certificate_is_refused_before_the_password(
        ftps_server: FtpsServer, inbound: Path, tmp_path: Path, trusted: str):
    ca_file = None
    if trusted == "another-certificate":
        other = tmp_path / "other"
        other.mkdir()
        ca_file = str(write_self_signed(other)[0])
    with ftps_server.transport(ca_file=ca_file) as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    message = str(caught.value)
    assert caught.value.retryable is False
    assert f"TLS certificate of 127.0.0.1:{ftps_server.port} is not trusted" in message
    assert "ca_file" in message
    assert ftps_server.passwords_seen == []
    assert _files(inbound) == {}


class _PlainFtpOnly(_ControlHandler):
    """A plain FTP server: no AUTH TLS, and it would take a password in clear."""

    tls_control_required = False

    def ftp_AUTH(self, line: str) -> None:
        self.respond('500 Command "AUTH" not understood.')


def test_server_without_tls_never_gets_the_password(tmp_path: Path):
    with serve_ftps(tmp_path, handler_base=_PlainFtpOnly) as server, \
            server.transport() as transport:
        with pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
        assert caught.value.retryable is False
        assert f"127.0.0.1:{server.port} refused AUTH TLS" in str(caught.value)
        assert server.passwords_seen == []


def test_server_not_listening_is_retryable():
    bound, port = _closed_port()
    with bound:
        transport = FtpsTransport(host="127.0.0.1", port=port, username=USER,
                                  password=PASSWORD, connect_timeout=2)
        started = time.monotonic()
        with transport, pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is True
    assert "ConnectionRefusedError" in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert time.monotonic() - started < 3


def test_silent_server_times_out_retryably():
    with socket.socket() as silent:     # accepts TCP, never sends the welcome line
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        transport = FtpsTransport(host="127.0.0.1", port=silent.getsockname()[1],
                                  username=USER, password=PASSWORD, connect_timeout=0.5)
        started = time.monotonic()
        with transport, pytest.raises(TransportError) as caught:
            transport.list_names()
    assert caught.value.retryable is True
    assert "TimeoutError" in str(caught.value)
    assert time.monotonic() - started < 2


def test_folder_without_write_permission_is_not_retryable(tmp_path: Path):
    with serve_ftps(tmp_path, perm="elr") as server, server.transport() as transport:
        with pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
        assert caught.value.retryable is False
        assert "550" in str(caught.value)
        assert f"ftps://{USER}@127.0.0.1:{server.port}/inbound" in str(caught.value)
        assert _files(server.root / "inbound") == {}


def test_missing_folder_is_not_retryable(ftps_server: FtpsServer):
    with ftps_server.transport(folder="/no-such-folder") as transport, \
            pytest.raises(TransportError) as caught:
        transport.list_names()
    assert caught.value.retryable is False
    assert "550" in str(caught.value)
    assert "no-such-folder" in str(caught.value)


class _DiskFull(_ControlHandler):
    def ftp_STOR(self, file: str, mode: str = "w") -> None:
        self.respond("452 Insufficient storage space.")


def test_transient_4xx_reply_is_retryable(tmp_path: Path):
    with serve_ftps(tmp_path, handler_base=_DiskFull) as server, \
            server.transport() as transport:
        with pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
        assert caught.value.retryable is True
        assert "452 Insufficient storage space." in str(caught.value)


# ---------------------------------------------------------------- from suppliers.toml

def test_supplier_with_relative_ca_file_uploads(ftps_server: FtpsServer, inbound: Path,
                                                tmp_path: Path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "acme-ftps.pem").write_bytes(ftps_server.cert_file.read_bytes())
    (config / "suppliers.toml").write_text(
        "[suppliers.acme]\n"
        f'transport = "ftps://{USER}@127.0.0.1:{ftps_server.port}/inbound"\n'
        'password_env = "ACME_FTPS_PASSWORD"\n'
        'ca_file = "acme-ftps.pem"\n')
    book = load_suppliers(str(config / "suppliers.toml"), {"ACME_FTPS_PASSWORD": PASSWORD},
                          required=True)
    supplier = book.by_key["acme"]
    assert supplier.ca_file == str(config / "acme-ftps.pem")
    with transport_for(supplier, password=PASSWORD) as transport:
        assert isinstance(transport, FtpsTransport)
        assert transport.where == f"ftps://{USER}@127.0.0.1:{ftps_server.port}/inbound"
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
    assert _files(inbound) == {"PO-1001_v1.xml": PO}


def test_transport_for_ftps_defaults_to_port_21() -> None:
    supplier = Supplier(key="ftp", name="Ftp", format="orderhub",
                        transport="ftps://orders@ftp.example/in%20box", password_env="FTP_PW")
    transport = transport_for(supplier, password="pw-secret-9")
    assert isinstance(transport, FtpsTransport)
    assert (transport.host, transport.port, transport.folder) == ("ftp.example", 21, "/in box")
    assert repr(transport) == "FtpsTransport(ftps://orders@ftp.example:21/in box)"
    with pytest.raises(ValueError, match="password_env"):
        transport_for(supplier, password=None)
