"""deploy/install.sh, run twice into a temporary root in its dry-run mode: what it writes, what
it keeps, and that it changes nothing outside that root (the commands that would are printed,
not run). Skipped where bash is missing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from app.config import load_settings
from app.proxy import proxy_hops_from_env

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
DOMAIN = "shop.example.com"
UNITS = sorted(p.name for p in (REPO / "deploy").iterdir()
               if p.suffix in (".service", ".timer", ".socket"))
DRY = "(dry run, not run:)"


def bash() -> str:
    found = shutil.which("bash")
    if found is None:
        pytest.skip("bash is not installed")
    return found


def install(root: Path, *args: str, dry: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["ORDERHUB_INSTALL_ROOT"] = str(root)
    if dry:
        env["ORDERHUB_INSTALL_DRY"] = "1"
    return subprocess.run([bash(), str(INSTALL), *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_twice_into_a_temporary_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = install(root, DOMAIN)
    assert first.returncode == 0, first.stderr

    # Nothing outside the root was touched: every system change is only shown.
    for command in ("useradd --system", "chown root:orderhub", "pip install",
                    "orderhub db upgrade", "systemctl daemon-reload",
                    "systemctl enable --now --quiet orderhub-backup.timer", "nginx -t"):
        assert any(DRY in line and command in line for line in first.stdout.splitlines()), (
            command, first.stdout)
    assert "certbot certonly" not in first.stdout   # no EMAIL, no certificate request

    # The settings: fresh secrets, the server's paths, nginx trusted; accepted by the app.
    env_file = root / "etc/orderhub/orderhub.env"
    assert mode(env_file) == 0o640
    values = {k: v or "" for k, v in dotenv_values(env_file).items()}
    assert len(values["SECRET_KEY"]) >= 32 and len(values["ORDERHUB_API_TOKEN"]) >= 32
    assert values["SECRET_KEY"] != values["ORDERHUB_API_TOKEN"]
    assert len(values["DASHBOARD_PASSWORD"]) >= 32  # the dashboard is on, with its own secret
    assert values["DATABASE_URL"] == "sqlite:////var/lib/orderhub/orderhub.db"
    assert values["SUPPLIERS_FILE"] == "/etc/orderhub/suppliers.toml"
    assert proxy_hops_from_env(values) == 1
    settings = load_settings(values)
    assert settings.database_url.endswith("/var/lib/orderhub/orderhub.db")
    assert (root / "etc/orderhub/suppliers.toml").exists()

    # Code, command, data folders, units, site.
    app = root / "opt/orderhub"
    assert (app / "wsgi.py").read_text() == (REPO / "wsgi.py").read_text()
    assert not (app / ".git").exists() and not (app / ".env").exists()
    assert os.access(root / "usr/local/bin/orderhub", os.X_OK)
    assert mode(root / "var/lib/orderhub") == 0o750
    assert mode(root / "var/lib/orderhub/backups") == 0o700
    installed = sorted(p.name for p in (root / "etc/systemd/system").iterdir())
    assert installed == UNITS
    site = root / "etc/nginx/sites-available/orderhub.conf"
    text = site.read_text()
    assert "orderhub.example.com" not in text
    assert text.count(f"server_name {DOMAIN};") == 2
    # No certificate from certbot yet: a self-signed stand-in lets nginx start.
    assert f"ssl_certificate /etc/orderhub/tls/{DOMAIN}.crt;" in text
    assert (root / f"etc/orderhub/tls/{DOMAIN}.crt").exists()
    assert mode(root / f"etc/orderhub/tls/{DOMAIN}.key") == 0o600
    assert (root / "etc/nginx/sites-enabled/orderhub.conf").resolve() == site.resolve()

    # Between the runs: the operator edits the settings (PostgreSQL now), certbot has a
    # certificate, the virtualenv holds packages, and the old code had a module since removed.
    edited = env_file.read_text().replace(
        "DATABASE_URL=sqlite:////var/lib/orderhub/orderhub.db",
        "DATABASE_URL=postgresql://orderhub@db.internal/orderhub")
    env_file.write_text(edited)
    letsencrypt = root / f"etc/letsencrypt/live/{DOMAIN}"
    letsencrypt.mkdir(parents=True)
    (letsencrypt / "fullchain.pem").write_text("certificate")
    (letsencrypt / "privkey.pem").write_text("key")
    (app / ".venv").mkdir()
    (app / ".venv/kept").write_text("")
    (app / "app/removed_module.py").write_text("")

    second = install(root, DOMAIN, "ops@example.com")
    assert second.returncode == 0, second.stderr
    assert env_file.read_text() == edited            # never overwritten
    assert "keeping /etc/orderhub/orderhub.env" in second.stdout
    assert (app / ".venv/kept").exists()
    assert not (app / "app/removed_module.py").exists()
    assert any(DRY in line and "certbot certonly --webroot" in line and DOMAIN in line
               and "ops@example.com" in line for line in second.stdout.splitlines())
    # Backups by `db backup` are for SQLite; on PostgreSQL the timer is switched off.
    assert "disable --now --quiet orderhub-backup.timer" in second.stdout
    text = site.read_text()
    assert f"ssl_certificate /etc/letsencrypt/live/{DOMAIN}/fullchain.pem;" in text
    assert f"ssl_certificate_key /etc/letsencrypt/live/{DOMAIN}/privkey.pem;" in text


def test_an_upgrade_backs_up_the_database_before_migrating(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = install(root, DOMAIN)
    assert first.returncode == 0, first.stderr
    assert "db backup" not in first.stdout          # nothing to back up yet
    (root / "var/lib/orderhub/orderhub.db").write_bytes(b"")
    again = install(root, DOMAIN)
    assert again.returncode == 0, again.stderr
    lines = [line for line in again.stdout.splitlines() if DRY in line and "orderhub db" in line]
    assert [line.split("orderhub db ", 1)[1] for line in lines] == [
        "backup --keep 14 /var/lib/orderhub/backups", "upgrade"]


@pytest.mark.parametrize("args", [(), ("not a domain",), ("-rf",), (DOMAIN, "not-an-email"),
                                  (DOMAIN, "a@b.example", "extra")])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path,
                                                              args: tuple[str, ...]) -> None:
    result = install(tmp_path / "root", *args)
    assert result.returncode == 2
    assert not (tmp_path / "root" / "etc").exists()


def test_a_root_without_dry_run_and_a_dry_run_without_root_are_refused(tmp_path: Path) -> None:
    result = install(tmp_path / "root", DOMAIN, dry=False)
    assert result.returncode == 2
    assert "ORDERHUB_INSTALL_DRY" in result.stderr
    for root in ("", "/"):   # a dry run must not write into the real /etc and /opt
        env = {"PATH": os.environ["PATH"], "ORDERHUB_INSTALL_DRY": "1",
               "ORDERHUB_INSTALL_ROOT": root}
        refused = subprocess.run([bash(), str(INSTALL), DOMAIN], env=env, capture_output=True,
                                 text=True, timeout=60, check=False)
        assert refused.returncode == 2, refused.stdout
        assert "ORDERHUB_INSTALL_ROOT" in refused.stderr


@pytest.mark.parametrize("script", ["install.sh", "orderhub.sh"])
def test_the_scripts_pass_bash_n_and_shellcheck(script: str) -> None:
    path = REPO / "deploy" / script
    syntax = subprocess.run([bash(), "-n", str(path)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (bash -n passed)")
    lint = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert lint.returncode == 0, lint.stdout
