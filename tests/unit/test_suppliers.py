"""suppliers.toml: every mistake stops the start with the supplier and the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.suppliers import load_suppliers
from tests.tls_certs import write_self_signed

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
ENV = {"AGRIEST_SFTP_PASSWORD": "s3cret-password"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suppliers.toml"
    path.write_text(text)
    return str(path)


GOOD = f"""
[suppliers.agriest]
name = "Agriest"
transport = "sftp://orders@sftp.agriest.example:22/inbound"
password_env = "AGRIEST_SFTP_PASSWORD"
host_key = "{HOST_KEY}"
format = "cxml"
sku_prefixes = ["AG-"]
vendors = ["Agriest"]

[suppliers.greensoil]
transport = "file:///srv/greensoil"
format = "ubl"
sku_file = "greensoil.csv"
default = true
"""


def test_a_good_file_loads_in_order(tmp_path: Path) -> None:
    (tmp_path / "greensoil.csv").write_text("sku\nGS-SOIL-40\nGS-SOIL-80\n")
    book = load_suppliers(write(tmp_path, GOOD), ENV, required=True)
    assert [s.key for s in book.suppliers] == ["agriest", "greensoil"]
    agriest = book.by_key["agriest"]
    assert (agriest.name, agriest.format, agriest.scheme) == ("Agriest", "cxml", "sftp")
    assert agriest.vendors == ("agriest",)
    assert book.by_key["greensoil"].skus == frozenset({"GS-SOIL-40", "GS-SOIL-80"})
    assert book.default is not None and book.default.key == "greensoil"


def test_missing_default_file_means_no_suppliers(tmp_path: Path) -> None:
    assert load_suppliers(str(tmp_path / "none.toml"), {}, required=False).suppliers == ()
    with pytest.raises(ConfigError, match="SUPPLIERS_FILE"):
        load_suppliers(str(tmp_path / "none.toml"), {}, required=True)


@pytest.mark.parametrize(
    ("text", "env", "name", "words"),
    [
        ('[suppliers.a]\ntransport = "file:///x"\ncolour = "red"\n', {},
         "suppliers.a.colour", "unknown key"),
        ('[suppliers.a]\nformat = "cxml"\n', {}, "suppliers.a.transport", "missing"),
        ('[suppliers.a]\ntransport = "http://x.example/po"\n', {},
         "suppliers.a.transport", "scheme"),
        ('[suppliers.a]\ntransport = "sftp://host.example/in"\n', {},
         "suppliers.a.transport", "user and host"),
        ('[suppliers.a]\ntransport = "sftp://u:pw@host.example/in"\n', {},
         "suppliers.a.transport", "no password in the URL"),
        (f'[suppliers.a]\ntransport = "sftp://u@h.example/in"\npassword_env = "NOPE"\n'
         f'host_key = "{HOST_KEY}"\n', {}, "suppliers.a.password_env", "NOPE is not set"),
        ('[suppliers.a]\ntransport = "sftp://u@h.example/in"\npassword_env = "P"\n', {"P": "x"},
         "suppliers.a.host_key", "required for sftp"),
        ('[suppliers.a]\ntransport = "sftp://u@h.example/in"\npassword_env = "P"\n'
         'host_key = "AAAAC3Nza"\n', {"P": "x"}, "suppliers.a.host_key", "must look like"),
        (f'[suppliers.a]\ntransport = "sftp://u@h.example/in"\nhost_key = "{HOST_KEY}"\n', {},
         "suppliers.a.password_env", "password_env or key_file"),
        ('[suppliers.a]\ntransport = "ftps://u@h.example/in"\n', {},
         "suppliers.a.password_env", "ftps:// needs"),
        ('[suppliers.a]\ntransport = "file:///x"\nformat = "edifact"\n', {},
         "suppliers.a.format", "not one of"),
        ('[suppliers.a]\ntransport = "file:///x"\ndefault = true\n'
         '[suppliers.b]\ntransport = "file:///y"\ndefault = true\n', {},
         "suppliers.b.default", "only one supplier"),
        ('[suppliers.a]\ntransport = "file:///x"\nsku_prefixes = "AG-"\n', {},
         "suppliers.a.sku_prefixes", "list"),
        ('[suppliers.a]\ntransport = "file:///x"\nsku_file = "missing.csv"\n', {},
         "suppliers.a.sku_file", "does not exist"),
        ('[suppliers.a\ntransport = "file:///x"\n', {}, "SUPPLIERS_FILE", "not valid TOML"),
        ('[vendors.a]\ntransport = "file:///x"\n', {}, "SUPPLIERS_FILE", "unknown top-level"),
        ('[suppliers.a]\ntransport = "file:///x"\ntemp_suffix = "/tmp"\n', {},
         "suppliers.a.temp_suffix", "file-name suffix"),
        ('[suppliers.a]\ntransport = "file:///x"\ndirect_upload = "yes"\n', {},
         "suppliers.a.direct_upload", "true or false"),
        ('[suppliers.a]\ntransport = "file:///x"\nack_timeout = "4h"\n', {},
         "suppliers.a.ack_timeout", "needs acks_path"),
        ('[suppliers.a]\ntransport = "file:///x"\nacks_path = "acks"\nack_timeout = "soon"\n',
         {}, "suppliers.a.ack_timeout", "not a duration"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, text: str, env: dict[str, str], name: str,
                               words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_suppliers(write(tmp_path, text), env, required=True)
    assert caught.value.name == name
    assert words in str(caught.value)


def test_the_documented_example_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "suppliers.example.toml"
    book = load_suppliers(str(example), ENV, required=True)
    assert [s.key for s in book.suppliers] == ["agriest", "greensoil"]
    assert book.default is not None and book.default.key == "greensoil"


FTPS = '[suppliers.a]\ntransport = "ftps://u@h.example/in"\npassword_env = "P"\n'


def test_ftps_ca_file_is_found_next_to_the_suppliers_file(tmp_path: Path) -> None:
    cert, _key = write_self_signed(tmp_path, "acme")
    book = load_suppliers(write(tmp_path, FTPS + f'ca_file = "{cert.name}"\n'), {"P": "x"},
                          required=True)
    assert book.by_key["a"].ca_file == str(tmp_path / cert.name)


@pytest.mark.parametrize(
    ("table", "content", "words"),
    [
        (FTPS, None, "does not exist"),
        (FTPS, b"not a certificate", "is not a PEM certificate file"),
        (f'[suppliers.a]\ntransport = "sftp://u@h.example/in"\npassword_env = "P"\n'
         f'host_key = "{HOST_KEY}"\n', "cert", "only used by ftps://"),
        ('[suppliers.a]\ntransport = "file:///x"\n', "cert", "only used by ftps://"),
    ],
)
def test_ca_file_mistakes_are_named(tmp_path: Path, table: str, content: bytes | str | None,
                                    words: str) -> None:
    if content == "cert":
        write_self_signed(tmp_path, "ca")
    elif isinstance(content, bytes):
        (tmp_path / "ca-cert.pem").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_suppliers(write(tmp_path, table + 'ca_file = "ca-cert.pem"\n'), {"P": "x"},
                       required=True)
    assert caught.value.name == "suppliers.a.ca_file"
    assert words in str(caught.value)


def test_upload_and_acknowledgement_settings(tmp_path: Path) -> None:
    book = load_suppliers(write(tmp_path, """
[suppliers.a]
transport = "file:///x"
temp_suffix = ".part"
direct_upload = true
acks_path = "/outbound/acks"
ack_timeout = "4h"

[suppliers.b]
transport = "file:///y"
"""), {}, required=True)
    a, b = book.by_key["a"], book.by_key["b"]
    assert (a.temp_suffix, a.direct_upload, a.acks_path, a.ack_timeout_seconds) == (
        ".part", True, "/outbound/acks", 4 * 3600)
    assert (b.temp_suffix, b.direct_upload, b.acks_path, b.ack_timeout_seconds) == (
        ".tmp", False, None, None)


def test_shipment_columns(tmp_path: Path) -> None:
    book = load_suppliers(write(tmp_path, """
[suppliers.a]
transport = "file:///x"
shipment_columns = { po_number = "Order", tracking_number = "Tracking No." }
"""), {}, required=True)
    assert dict(book.by_key["a"].shipment_columns) == {"po_number": "Order",
                                                       "tracking_number": "Tracking No."}
    with pytest.raises(ConfigError) as caught:
        load_suppliers(write(tmp_path, '[suppliers.a]\ntransport = "file:///x"\n'
                             'shipment_columns = { parcel = "P" }\n'), {}, required=True)
    assert caught.value.name == "suppliers.a.shipment_columns.parcel"
