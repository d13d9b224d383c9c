"""Transports against real servers: an asyncssh SFTP server on 127.0.0.1 (in-process, its own
event loop in a background thread, rooted in a tmp folder) and local folders."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from app.suppliers import Supplier
from app.transports import (
    LocalFolderTransport,
    SftpTransport,
    TransportError,
    transport_for,
)
from tests.sftp_server import (  # noqa: E402
    PASSWORD,
    PO,
    USER,
    SftpServer,
    _NoPosixRename,
    _ReadOnly,
    _serve,
)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpServer]:
    yield from _serve(tmp_path)


@pytest.fixture
def inbound(sftp_server: SftpServer) -> Path:
    return sftp_server.root / "inbound"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- SFTP

def test_sftp_upload_lands_complete_with_no_temp_file(sftp_server: SftpServer, inbound: Path):
    with sftp_server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1001_v1.xml"]
    assert _files(inbound) == {"PO-1001_v1.xml": PO}


def test_sftp_same_name_same_bytes_is_already_present(sftp_server: SftpServer, inbound: Path):
    with sftp_server.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        # A crash after the rename left a temp file from a retry that started over.
        (inbound / "PO-1001_v1.xml.tmp").write_bytes(PO[:10])
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "already_present"
    assert _files(inbound) == {"PO-1001_v1.xml": PO}


def test_sftp_never_overwrites_different_bytes(sftp_server: SftpServer, inbound: Path):
    theirs = b"<Order><ID>PO-1001</ID><Note>supplier edited</Note></Order>"
    (inbound / "PO-1001_v1.xml").write_bytes(theirs)
    with sftp_server.transport() as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "PO-1001_v1.xml" in str(caught.value)
    assert "refusing to overwrite a supplier's file" in str(caught.value)
    assert _files(inbound) == {"PO-1001_v1.xml": theirs}


def test_sftp_same_size_different_bytes_is_refused(sftp_server: SftpServer, inbound: Path):
    theirs = bytes(reversed(PO))
    (inbound / "PO-1001_v1.xml").write_bytes(theirs)
    with sftp_server.transport() as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert _files(inbound) == {"PO-1001_v1.xml": theirs}


def test_sftp_leftover_temp_file_is_replaced(sftp_server: SftpServer, inbound: Path):
    (inbound / "PO-1002_v1.xml.part").write_bytes(b"half a file from a crash")
    with sftp_server.transport(temp_suffix=".part") as transport:
        assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1002_v1.xml"]
    assert _files(inbound) == {"PO-1002_v1.xml": PO}


def test_sftp_wrong_password_is_not_retryable(sftp_server: SftpServer, inbound: Path):
    with sftp_server.transport(password="wrong") as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "authentication" in str(caught.value)
    assert "wrong" not in str(caught.value)
    assert _files(inbound) == {}


def test_sftp_unexpected_host_key_is_refused_before_any_password(sftp_server: SftpServer,
                                                                 inbound: Path):
    other = asyncssh.generate_private_key("ssh-ed25519")
    pinned = bytes(other.export_public_key("openssh")).decode().strip()
    with sftp_server.transport(host_key=pinned) as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert sftp_server.fingerprint in str(caught.value)
    assert sftp_server.passwords_seen == []
    assert _files(inbound) == {}


def test_sftp_host_key_of_another_type_is_refused(sftp_server: SftpServer, inbound: Path):
    other = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    pinned = bytes(other.export_public_key("openssh")).decode().strip()
    with sftp_server.transport(host_key=pinned) as transport, \
            pytest.raises(TransportError) as caught:
        transport.list_names()
    assert caught.value.retryable is False
    assert sftp_server.fingerprint in str(caught.value)
    assert sftp_server.passwords_seen == []


def test_sftp_server_not_listening_is_retryable():
    with socket.socket() as bound:      # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        transport = SftpTransport(host="127.0.0.1", port=port, username=USER,
                                  host_key="ssh-ed25519 " + _any_ed25519_blob(),
                                  password=PASSWORD, connect_timeout=2)
        started = time.monotonic()
        with transport, pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is True
    assert time.monotonic() - started < 3


def test_sftp_silent_server_times_out_retryably():
    with socket.socket() as silent:     # accepts TCP, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        transport = SftpTransport(host="127.0.0.1", port=port, username=USER,
                                  host_key="ssh-ed25519 " + _any_ed25519_blob(),
                                  password=PASSWORD, connect_timeout=1, banner_timeout=0.5)
        started = time.monotonic()
        with transport, pytest.raises(TransportError) as caught:
            transport.list_names()
    assert caught.value.retryable is True
    assert time.monotonic() - started < 3


def test_sftp_one_connection_serves_several_uploads(sftp_server: SftpServer, inbound: Path):
    transport = sftp_server.transport()
    assert sftp_server.connections == []        # nothing opened before the first use
    for n in range(1, 6):
        assert transport.upload_atomic(f"PO-{n:04d}_v1.xml", PO) == "uploaded"
    assert transport.list_names() == [f"PO-{n:04d}_v1.xml" for n in range(1, 6)]
    assert len(sftp_server.connections) == 1
    transport.close()
    assert transport.upload_atomic("PO-0006_v1.xml", PO) == "uploaded"
    transport.close()
    assert len(sftp_server.connections) == 2
    assert len(_files(inbound)) == 6


def test_sftp_without_posix_rename_falls_back_to_rename(tmp_path: Path):
    _NoPosixRename.renames.clear()
    for server in _serve(tmp_path, _NoPosixRename):
        inbound = server.root / "inbound"
        with server.transport() as transport:
            assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
            assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
            assert transport.upload_atomic("PO-1002_v1.xml", PO) == "already_present"
        assert _files(inbound) == {"PO-1001_v1.xml": PO, "PO-1002_v1.xml": PO}
        assert [os.path.basename(p) for p in _NoPosixRename.renames] == [
            b"PO-1001_v1.xml", b"PO-1002_v1.xml"]


def test_sftp_permission_denied_is_not_retryable(tmp_path: Path):
    for server in _serve(tmp_path, _ReadOnly):
        with server.transport() as transport, pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1001_v1.xml", PO)
        assert caught.value.retryable is False
        assert "permission denied" in str(caught.value)
        assert _files(server.root / "inbound") == {}


def test_transport_for_builds_sftp_from_supplier(sftp_server: SftpServer, inbound: Path):
    supplier = Supplier(key="agriest", name="Agriest", format="cxml",
                        transport=f"sftp://{USER}@127.0.0.1:{sftp_server.port}/inbound",
                        password_env="AGRIEST_SFTP_PASSWORD", host_key=sftp_server.public_key)
    with transport_for(supplier, password=PASSWORD) as transport:
        assert isinstance(transport, SftpTransport)
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
    assert _files(inbound) == {"PO-1001_v1.xml": PO}


def _any_ed25519_blob() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return bytes(key.export_public_key("openssh")).decode().split()[1]


# ---------------------------------------------------------------- local folder

def test_local_upload_creates_folder_and_leaves_no_temp(tmp_path: Path):
    folder = tmp_path / "outbox" / "agriest"
    with LocalFolderTransport(folder) as transport:
        assert not folder.exists()      # constructing touches nothing
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1001_v1.xml"]
    assert _files(folder) == {"PO-1001_v1.xml": PO}


def test_local_same_name_same_bytes_is_already_present(tmp_path: Path):
    transport = LocalFolderTransport(tmp_path)
    assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
    (tmp_path / "PO-1001_v1.xml.tmp").write_bytes(PO[:5])
    assert transport.list_names() == ["PO-1001_v1.xml"]
    assert transport.upload_atomic("PO-1001_v1.xml", PO) == "already_present"
    assert _files(tmp_path) == {"PO-1001_v1.xml": PO}


def test_local_never_overwrites_different_bytes(tmp_path: Path):
    theirs = b"the supplier's own file"
    (tmp_path / "PO-1001_v1.xml").write_bytes(theirs)
    with pytest.raises(TransportError) as caught:
        LocalFolderTransport(tmp_path).upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "PO-1001_v1.xml" in str(caught.value)
    assert "refusing to overwrite a supplier's file" in str(caught.value)
    assert _files(tmp_path) == {"PO-1001_v1.xml": theirs}


def test_local_folder_that_is_a_file_is_not_retryable(tmp_path: Path):
    (tmp_path / "blocked").write_bytes(b"")
    with pytest.raises(TransportError) as caught:
        LocalFolderTransport(tmp_path / "blocked" / "inbound").upload_atomic("a.xml", PO)
    assert caught.value.retryable is False


@pytest.mark.parametrize("name", ["", "..", "../escape.xml", "sub/a.xml", "a.xml.tmp"])
def test_names_that_are_not_plain_file_names_are_rejected(tmp_path: Path, name: str):
    with pytest.raises(ValueError):
        LocalFolderTransport(tmp_path).upload_atomic(name, PO)
    assert list(tmp_path.iterdir()) == []


def test_transport_for_file(tmp_path: Path):
    local = Supplier(key="demo", name="Demo", format="orderhub",
                     transport=f"file://{tmp_path}/demo")
    transport = transport_for(local, password=None)
    assert isinstance(transport, LocalFolderTransport)
    assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
    assert _files(tmp_path / "demo") == {"PO-1001_v1.xml": PO}
