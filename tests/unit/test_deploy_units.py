"""The systemd units in deploy/ pass `systemd-analyze verify` (skipped where systemd is absent)
and say what operators rely on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(p for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))


def read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:  # the venv path does not exist here; any executable stands in for it
        text = unit.read_text().replace("/opt/orderhub/.venv/bin/flask", "/bin/true")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(  # noqa: S603
        ["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in UNITS)],  # noqa: S607
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"],
                         ids=lambda u: u.name)
def test_services_run_as_orderhub_hardened_with_the_environment_file(unit: Path) -> None:
    service = read(unit)["Service"]
    assert service["User"] == "orderhub"
    assert service["EnvironmentFile"] == "/etc/orderhub/orderhub.env"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/orderhub"


def test_the_dispatcher_restarts_and_the_timers_catch_up() -> None:
    assert read(DEPLOY / "orderhub-dispatch.service")["Service"]["Restart"] == "always"
    timers = [u for u in UNITS if u.suffix == ".timer"]
    assert {t.stem for t in timers} == {"orderhub-shipments", "orderhub-orders-sync"}
    for timer in timers:
        assert read(timer)["Timer"]["Persistent"] == "true"
        assert (DEPLOY / f"{timer.stem}.service").exists()
