"""The systemd units in deploy/ pass `systemd-analyze verify` (skipped where systemd is absent)
and say what operators rely on."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(p for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer", ".socket"))
WEB_SOCKET = "/run/orderhub/web.sock"


def read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:  # the venv does not exist here; any executable stands in for its programs
        text = re.sub(r"/opt/orderhub/\.venv/bin/\S+", "/bin/true", unit.read_text())
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
    assert service["PrivateTmp"] == "yes"


def test_the_long_running_services_restart_and_the_timers_catch_up() -> None:
    for name in ("orderhub-dispatch.service", "orderhub-web.service"):
        assert read(DEPLOY / name)["Service"]["Restart"] == "always"
    timers = [u for u in UNITS if u.suffix == ".timer"]
    assert {t.stem for t in timers} >= {"orderhub-shipments", "orderhub-orders-sync",
                                        "orderhub-backup"}
    for timer in timers:
        assert read(timer)["Timer"]["Persistent"] == "true"
        assert (DEPLOY / f"{timer.stem}.service").exists()


def test_the_web_process_is_gunicorn_on_the_socket_nginx_proxies_to() -> None:
    service = read(DEPLOY / "orderhub-web.service")
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0] == "/opt/orderhub/.venv/bin/gunicorn"
    assert argv[1:] == ["-c", "deploy/gunicorn.conf.py", "--bind", f"unix:{WEB_SOCKET}",
                        "wsgi:app"]
    assert "ExecStartPre" not in service["Service"]  # migrations are an upgrade step
    assert service["Unit"]["Requires"] == "orderhub-web.socket"
    socket = read(DEPLOY / "orderhub-web.socket")["Socket"]
    assert socket["ListenStream"] == WEB_SOCKET
    # nginx (www-data) and OrderHub may connect; nobody else can go around nginx.
    assert (socket["SocketUser"], socket["SocketGroup"], socket["SocketMode"]) == (
        "orderhub", "www-data", "0660")
    site = (DEPLOY / "nginx" / "orderhub.conf").read_text()
    assert f"server unix:{WEB_SOCKET}" in site


def test_the_backup_timer_keeps_two_weeks_of_daily_backups_in_the_data_folder() -> None:
    argv = shlex.split(read(DEPLOY / "orderhub-backup.service")["Service"]["ExecStart"])
    assert argv == ["/opt/orderhub/.venv/bin/flask", "--app", "wsgi", "db", "backup",
                    "--keep", "14", "/var/lib/orderhub/backups"]
    assert read(DEPLOY / "orderhub-backup.timer")["Timer"]["OnCalendar"].startswith("*-*-* ")
