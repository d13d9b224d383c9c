"""SftpTransport against a real OpenSSH sshd on 127.0.0.1 (tests/sshd.py): key authentication,
the host's real keys pinned, uploads through internal-sftp, the server stopped and restarted.

Skipped with a reason when sshd is not installed or cannot serve the user running the tests.
Password authentication is covered against the asyncssh server in test_transports.py only: here
it would need a real account's password (see tests/sshd.py)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.transports import TransportError, UploadResult
from tests.sshd import KEY_TYPES, Sshd, SshKeys, find_sshd, login_account, serve_sshd

PO = b'<?xml version="1.0" encoding="UTF-8"?>\n<Order><ID>PO-1001</ID></Order>\n'


@pytest.fixture(scope="session")
def sshd_keys(tmp_path_factory: pytest.TempPathFactory) -> SshKeys:
    find_sshd()     # skip before spending time on keys
    login_account()
    return SshKeys.generate(tmp_path_factory.mktemp("sshd-keys"))


@pytest.fixture
def sshd(sshd_keys: SshKeys) -> Iterator[Sshd]:
    with serve_sshd(sshd_keys) as server:
        yield server


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


# ---------------------------------------------------------------- uploads

@pytest.mark.parametrize("key", KEY_TYPES)
def test_upload_lands_complete_with_no_temp_file(sshd: Sshd, key: str,
                                                 caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="app.transports.sftp")
    with sshd.transport(key=key) as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        assert transport.list_names() == ["PO-1001_v1.xml"]
    assert _files(sshd.folder) == {"PO-1001_v1.xml": PO}
    assert (sshd.folder / "PO-1001_v1.xml").stat().st_uid == sshd.account.pw_uid
    # OpenSSH offers posix-rename@openssh.com; the transport never fell back to plain rename.
    assert not [r for r in caplog.records if "posix-rename failed" in r.getMessage()]


@pytest.mark.parametrize("host_key", KEY_TYPES)
def test_any_of_the_servers_host_keys_can_be_pinned(sshd: Sshd, sshd_keys: SshKeys,
                                                    host_key: str):
    # A supplier may send any line of `ssh-keyscan`; the server has all three types, as a stock
    # OpenSSH install does, and OpenSSH 8.8+ signs with RSA only as rsa-sha2-256/512.
    with sshd.transport(host_key=sshd_keys.host_public_key(host_key)) as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
    assert _files(sshd.folder) == {"PO-1001_v1.xml": PO}


def test_one_connection_serves_several_uploads(sshd: Sshd):
    transport = sshd.transport()
    assert sshd.logins() == 0           # nothing opened before the first use
    for n in range(1, 6):
        assert transport.upload_atomic(f"PO-{n:04d}_v1.xml", PO) == "uploaded"
    assert transport.list_names() == [f"PO-{n:04d}_v1.xml" for n in range(1, 6)]
    assert sshd.logins() == 1
    transport.close()
    assert transport.upload_atomic("PO-0006_v1.xml", PO) == "uploaded"
    transport.close()
    assert sshd.logins() == 2
    assert _files(sshd.folder) == {f"PO-{n:04d}_v1.xml": PO for n in range(1, 7)}


def test_same_name_same_bytes_is_already_present(sshd: Sshd):
    with sshd.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        # A crash after the rename left a temp file from a retry that started over.
        (sshd.folder / "PO-1001_v1.xml.tmp").write_bytes(PO[:10])
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "already_present"
    assert _files(sshd.folder) == {"PO-1001_v1.xml": PO}


def test_supplier_file_with_other_bytes_is_never_overwritten(sshd: Sshd):
    theirs = bytes(reversed(PO))        # same size, other content
    target = sshd.folder / "PO-1001_v1.xml"
    target.write_bytes(theirs)
    before = target.stat()
    with sshd.transport() as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "refusing to overwrite a supplier's file" in str(caught.value)
    assert _files(sshd.folder) == {"PO-1001_v1.xml": theirs}
    assert target.stat().st_mtime_ns == before.st_mtime_ns


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_wrong_pinned_host_key_names_the_servers_fingerprint(sshd: Sshd, sshd_keys: SshKeys,
                                                             kind: str):
    # Pinned: some other key of that type (our own client key will do).
    wrong = sshd_keys.client_public_key(kind)
    with sshd.transport(host_key=wrong) as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    # What an operator compares with `ssh-keygen -lf` output the supplier sends.
    assert sshd_keys.host_fingerprint(kind) in str(caught.value)
    assert sshd.logins() == 0           # refused before logging in
    assert _files(sshd.folder) == {}


def test_client_key_the_server_does_not_know_is_not_retryable(sshd: Sshd):
    with sshd.transport(key="stranger") as transport, pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "authentication" in str(caught.value)
    assert sshd.logins() == 0
    assert _files(sshd.folder) == {}


def test_folder_without_write_permission_is_not_retryable(sshd: Sshd):
    folder = sshd.read_only_folder()
    with sshd.transport(folder=str(folder)) as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "permission denied" in str(caught.value)
    assert list(folder.iterdir()) == []


def test_missing_folder_is_not_retryable(sshd: Sshd):
    folder = sshd.workdir / "removed-by-the-supplier"
    with sshd.transport(folder=str(folder)) as transport, \
            pytest.raises(TransportError) as caught:
        transport.upload_atomic("PO-1001_v1.xml", PO)
    assert caught.value.retryable is False
    assert "no such file or folder" in str(caught.value)
    assert not folder.exists()


# ---------------------------------------------------------------- the server goes away

def test_server_down_is_retryable_and_the_same_transport_recovers(sshd: Sshd):
    with sshd.transport() as transport:
        assert transport.upload_atomic("PO-1001_v1.xml", PO) == "uploaded"
        sshd.stop()
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            transport.upload_atomic("PO-1002_v1.xml", PO)
        assert caught.value.retryable is True
        assert time.monotonic() - started < 5
        sshd.start()
        assert transport.upload_atomic("PO-1002_v1.xml", PO) == "uploaded"
    assert _files(sshd.folder) == {"PO-1001_v1.xml": PO, "PO-1002_v1.xml": PO}
    assert sshd.logins() == 2


def test_connection_lost_mid_upload_never_exposes_a_partial_file(sshd: Sshd):
    big = PO * ((64 << 20) // len(PO))     # 64 MiB: long enough to be cut off in the middle
    name = "PO-2001_v1.xml"
    final, temp = sshd.folder / name, sshd.folder / f"{name}.tmp"
    transport = sshd.transport()
    outcome: list[UploadResult | Exception] = []

    def upload() -> None:
        try:
            outcome.append(transport.upload_atomic(name, big))
        except Exception as exc:    # anything but a TransportError fails the test below
            outcome.append(exc)

    worker = threading.Thread(target=upload, name="upload")
    worker.start()
    try:
        _wait_for(lambda: temp.exists() and temp.stat().st_size >= 1 << 20,
                  "the first MiB to arrive")
        assert not final.exists()
        sshd.stop()                     # sessions killed mid-write, then the listener
    finally:
        worker.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], TransportError), outcome
    assert outcome[0].retryable is True
    assert not final.exists()
    assert 0 < temp.stat().st_size < len(big)   # the partial file kept its temporary name

    sshd.start()
    try:
        assert transport.upload_atomic(name, big) == "uploaded"
        assert transport.list_names() == [name]
    finally:
        transport.close()
    assert not temp.exists()
    assert hashlib.sha256(final.read_bytes()).digest() == hashlib.sha256(big).digest()
