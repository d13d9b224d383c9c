"""Reading from a supplier's folder (what acknowledgements, shipment notices and stock feeds
need), checking it is writable, and who the server is: the same behaviour from every transport,
each against its real server on 127.0.0.1 (a local folder, asyncssh SFTP, pyftpdlib FTPS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from app.suppliers import Supplier
from app.transports import Transport, TransportError, transport_for
from app.transports.local import LocalFolderTransport
from tests.ftps_server import serve_ftps
from tests.sftp_server import PASSWORD, USER, SftpServer, _serve

NOTICE = b"po_number,sku,quantity\nshopify-1042-agriest,AG-BED-CED-L,2\n"


class Folder:
    """A transport and the real folder behind it."""

    def __init__(self, transport: Transport, path: Path, identity: str | None) -> None:
        self.transport, self.path, self.identity = transport, path, identity


@pytest.fixture(params=["local", "sftp", "ftps"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Folder]:
    if request.param == "local":
        path = tmp_path / "acks"
        yield Folder(LocalFolderTransport(path), path, None)
        return
    if request.param == "sftp":
        for server in _serve(tmp_path):
            assert isinstance(server, SftpServer)
            with server.transport() as transport:
                yield Folder(transport, server.root / "inbound",
                             f"ssh-ed25519 {server.fingerprint}")
        return
    with serve_ftps(tmp_path) as ftps, ftps.transport() as transport:
        yield Folder(transport, ftps.root / "inbound", "certificate SHA256")


def test_download_returns_the_exact_bytes(folder: Folder) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    (folder.path / "notice-1.csv").write_bytes(NOTICE)
    assert folder.transport.list_names() == ["notice-1.csv"]
    assert folder.transport.download("notice-1.csv") == NOTICE


def test_download_of_a_missing_or_oversized_file_is_refused(folder: Folder) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    (folder.path / "big.csv").write_bytes(NOTICE * 100)
    with pytest.raises(TransportError) as missing:
        folder.transport.download("nope.csv")
    assert not missing.value.retryable and missing.value.file_specific
    with pytest.raises(TransportError) as big:
        folder.transport.download("big.csv", max_bytes=1000)
    assert "more than the 1000 accepted" in str(big.value) and big.value.file_specific


def test_archive_moves_into_a_subfolder_and_keeps_earlier_files(folder: Folder) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    (folder.path / "notice-1.csv").write_bytes(NOTICE)
    assert folder.transport.archive("notice-1.csv", "processed") == "processed/notice-1.csv"
    (folder.path / "notice-1.csv").write_bytes(b"a second file with the same name\n")
    assert folder.transport.archive("notice-1.csv", "processed") == "processed/notice-1.1.csv"
    assert folder.transport.list_names() == []
    assert (folder.path / "processed" / "notice-1.csv").read_bytes() == NOTICE
    assert (folder.path / "processed" / "notice-1.1.csv").read_bytes().startswith(b"a second")


def test_check_write_leaves_nothing_behind(folder: Folder) -> None:
    folder.transport.check_write()
    assert sorted(p.name for p in folder.path.iterdir()) == []


def test_identity_names_the_server(folder: Folder) -> None:
    identity = folder.transport.identity()
    if folder.identity is None:
        assert identity is None
    else:
        assert identity is not None and folder.identity in identity


def test_check_write_in_a_read_only_folder_fails_clearly(tmp_path: Path) -> None:
    from tests.sftp_server import _ReadOnly

    for server in _serve(tmp_path, _ReadOnly):
        with server.transport() as transport, pytest.raises(TransportError) as refused:
            transport.check_write()
    assert "permission denied" in str(refused.value) and not refused.value.retryable


# ---------------------------------------------------------------- per-supplier upload settings

class _NoRenames(asyncssh.SFTPServer):
    """A server that refuses renames (some gateways do) and notes what was opened to write."""

    opened: list[str] = []

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & asyncssh.FXF_WRITE:
            type(self).opened.append(path.decode().rsplit("/", 1)[-1])
        return super().open(path, pflags, attrs)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("renames are not allowed here")

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("renames are not allowed here")


def _supplier(server: SftpServer, **options: object) -> Supplier:
    return Supplier(key="agriest", name="Agriest", format="ubl",
                    transport=f"sftp://{USER}@127.0.0.1:{server.port}/inbound",
                    password_env="X", host_key=server.public_key, **options)  # type: ignore[arg-type]


def test_temp_suffix_is_per_supplier(tmp_path: Path) -> None:
    _NoRenames.opened = []
    for server in _serve(tmp_path, _CountingOpens):
        with transport_for(_supplier(server, temp_suffix=".part"), password=PASSWORD) as t:
            assert t.upload_atomic("PO-1.xml", NOTICE) == "uploaded"
        assert _CountingOpens.opened == ["PO-1.xml.part"]
        assert sorted(p.name for p in (server.root / "inbound").iterdir()) == ["PO-1.xml"]


class _CountingOpens(_NoRenames):
    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        asyncssh.SFTPServer.rename(self, oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        asyncssh.SFTPServer.posix_rename(self, oldpath, newpath)


def test_direct_upload_for_servers_that_refuse_renames(tmp_path: Path) -> None:
    for server in _serve(tmp_path, _NoRenames):
        inbound = server.root / "inbound"
        with (transport_for(_supplier(server), password=PASSWORD) as renaming,
              pytest.raises(TransportError, match="permission denied")):
            renaming.upload_atomic("PO-1.xml", NOTICE)
        _NoRenames.opened = []
        (inbound / "PO-1.xml.tmp").unlink()
        with transport_for(_supplier(server, direct_upload=True), password=PASSWORD) as direct:
            assert direct.upload_atomic("PO-1.xml", NOTICE) == "uploaded"
            assert direct.upload_atomic("PO-1.xml", NOTICE) == "already_present"
            (inbound / "PO-2.xml").write_bytes(NOTICE[:10])  # our own upload, cut short
            assert direct.upload_atomic("PO-2.xml", NOTICE) == "uploaded"
            (inbound / "PO-3.xml").write_bytes(b"the supplier's own file")
            with pytest.raises(TransportError, match="refusing to overwrite"):
                direct.upload_atomic("PO-3.xml", NOTICE)
        assert _NoRenames.opened == ["PO-1.xml", "PO-2.xml"]
        assert (inbound / "PO-2.xml").read_bytes() == NOTICE
        assert (inbound / "PO-3.xml").read_bytes() == b"the supplier's own file"


def test_another_folder_on_the_same_server(tmp_path: Path) -> None:
    for server in _serve(tmp_path):
        (server.root / "acks").mkdir()
        (server.root / "acks" / "ack-1.xml").write_bytes(NOTICE)
        acks = transport_for(_supplier(server), password=PASSWORD, folder="/acks")
        with acks:
            assert acks.list_names() == ["ack-1.xml"]
            assert acks.download("ack-1.xml") == NOTICE
    local = Supplier(key="demo", name="Demo", format="ubl",
                     transport=f"file://{tmp_path / 'demo' / 'inbound'}")
    assert transport_for(local, password=None, folder="acks").where == (
        f"folder {tmp_path / 'demo' / 'inbound' / 'acks'}")


def test_download_to_streams_into_a_file_and_modified_is_the_files_time(
        folder: Folder, tmp_path: Path) -> None:
    import io
    import os
    from datetime import UTC, datetime

    folder.path.mkdir(parents=True, exist_ok=True)
    feed = folder.path / "stock.csv"
    feed.write_bytes(b"sku,quantity\n" + b"AG-TRWL,5\n" * 50_000)
    os.utime(feed, (1_764_000_000, 1_764_000_000))
    sink = io.BytesIO()
    assert folder.transport.download_to("stock.csv", sink) == feed.stat().st_size
    assert sink.getvalue() == feed.read_bytes()
    assert folder.transport.modified("stock.csv") == datetime.fromtimestamp(1_764_000_000, UTC)
    assert folder.transport.modified("nope.csv") is None
