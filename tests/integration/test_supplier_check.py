"""`flask --app wsgi suppliers check [NAME]` against real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from flask import Flask

from app import create_app
from tests.conftest import base_config, hub_of
from tests.sftp_server import PASSWORD, USER, SftpServer, _ReadOnly, _serve


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    yield from _serve(tmp_path)


def make_app(tmp_path: Path, server: SftpServer, host_key: str | None = None) -> Flask:
    (server.root / "outbound" / "shipments").mkdir(parents=True, exist_ok=True)
    (server.root / "outbound" / "shipments" / "ASN-77.csv").write_text("po_number,sku\n")
    (server.root / "inbound" / "PO_agriest_shopify-1001_v1.xml").write_text("<Order/>")
    suppliers = tmp_path / "suppliers.toml"
    suppliers.write_text(f"""
[suppliers.agriest]
transport = "sftp://{USER}@127.0.0.1:{server.port}/inbound"
password_env = "AGRIEST_SFTP_PASSWORD"
host_key = "{host_key or server.public_key}"
shipments_path = "/outbound/shipments"
acks_path = "/outbound/acks"

[suppliers.greensoil]
transport = "file://{tmp_path / 'greensoil'}"
""")
    config = {**base_config(f"sqlite:///{tmp_path / 'orderhub.db'}"),
              "SUPPLIERS_FILE": str(suppliers), "AGRIEST_SFTP_PASSWORD": PASSWORD}
    return create_app(config)


def run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["suppliers", "check", *args])
    hub_of(app).db.dispose()
    return result.exit_code, result.output


def test_a_healthy_supplier(tmp_path: Path, sftp: SftpServer) -> None:
    (sftp.root / "outbound" / "acks").mkdir(parents=True)
    code, output = run(make_app(tmp_path, sftp), "agriest")
    assert code == 0, output
    assert f"server: ssh-ed25519 {sftp.fingerprint}" in output
    assert "write: ok" in output
    assert "purchase orders (sftp://orders@127.0.0.1" in output
    assert "1 file(s): PO_agriest_shopify-1001_v1.xml" in output
    assert "shipments_path" in output and "ASN-77.csv" in output
    assert "acks_path (sftp://orders@127.0.0.1" in output and "0 file(s)" in output
    assert sorted(p.name for p in (sftp.root / "inbound").iterdir()) == [
        "PO_agriest_shopify-1001_v1.xml"]  # the test file is gone


def test_every_supplier_and_a_missing_folder(tmp_path: Path, sftp: SftpServer) -> None:
    code, output = run(make_app(tmp_path, sftp))
    assert code == 1, output
    assert "agriest:" in output and "greensoil: folder" in output
    assert "acks_path: FAILED" in output and "no such file or folder" in output
    assert "1 of 2 supplier(s) failed" in output


def test_a_changed_host_key_shows_the_fingerprint_seen(tmp_path: Path, sftp: SftpServer) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    pinned = bytes(other.export_public_key("openssh")).decode().strip()
    code, output = run(make_app(tmp_path, sftp, host_key=pinned), "agriest")
    assert code == 1
    assert "FAILED" in output and sftp.fingerprint in output
    assert sftp.passwords_seen == []


def test_no_write_permission_fails(tmp_path: Path) -> None:
    for server in _serve(tmp_path, _ReadOnly):
        code, output = run(make_app(tmp_path, server), "agriest")
    assert code == 1
    assert "FAILED" in output and "permission denied" in output


def test_unknown_supplier(tmp_path: Path, sftp: SftpServer) -> None:
    code, output = run(make_app(tmp_path, sftp), "nobody")
    assert code == 2 and "no supplier 'nobody'" in output and "agriest" in output
