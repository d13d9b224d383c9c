"""The dashboard in a real browser: headless Chromium (Selenium + chromedriver) against gunicorn
on a free port, as an operator uses it: sign in through the form, find the order that came in
by webhook, open it, resend its purchase order, sign out. Then the same through the nginx site
in deploy/ (TLS, its Content-Security-Policy): the page must break none of it, and the session
cookie must be Secure there.

Skipped with the reason when Chromium, chromedriver or Selenium are missing (tests/browser.py);
TEST_REQUIRE_CHROMIUM turns that into a failure.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from sqlalchemy import update

from app import create_app
from app.db import Database
from app.models import JobKind, JobStatus, OutboxJob, PoStatus, PurchaseOrder
from tests.browser import find_chromium, headless_chromium
from tests.conftest import apply_deliveries, encode, hub_of, shopify_headers, shopify_payload
from tests.e2e.test_gunicorn import ROOT, free_port, running_gunicorn, service_env
from tests.nginx import find_nginx, site_with_test_certificate, write_nginx_conf

if TYPE_CHECKING:
    from selenium.webdriver import Chrome
    from selenium.webdriver.remote.webelement import WebElement

PASSWORD = "browser-test dashboard password"
SUPPLIERS = """
[suppliers.greenleaf]
name = "Greenleaf Tools"
transport = "file://{folder}"
format = "orderhub"
default = true
"""


@contextmanager
def orderhub(tmp_path: Path, **settings: str) -> Iterator[str]:
    """gunicorn serving OrderHub with a dashboard password and one supplier, with the sample
    Shopify order #1042 delivered by webhook; yields its URL."""
    (tmp_path / "supplier").mkdir()
    suppliers = tmp_path / "suppliers.toml"
    suppliers.write_text(SUPPLIERS.format(folder=tmp_path / "supplier"))
    env = {**service_env(tmp_path), "DASHBOARD_PASSWORD": PASSWORD,
           "SUPPLIERS_FILE": str(suppliers), **settings}
    with running_gunicorn(tmp_path, env) as url:
        body = encode(shopify_payload())
        answer = requests.post(f"{url}/webhooks/shopify", data=body,
                               headers=shopify_headers(body), timeout=10)
        assert answer.json() == {"event_id": answer.json()["event_id"], "status": "accepted"}
        app = create_app(env)   # what the dispatcher does next: apply the delivery
        try:
            assert apply_deliveries(app) == {"processed": 1}
        finally:
            hub_of(app).db.dispose()
        yield url


def mark_sent(tmp_path: Path) -> None:
    """What the dispatcher does once the file is on the supplier's server."""
    db = Database(f"sqlite:///{tmp_path / 'orderhub.db'}")
    try:
        with db.session() as s:
            s.execute(update(PurchaseOrder).values(status=PoStatus.SENT))
            s.execute(update(OutboxJob).where(OutboxJob.kind == JobKind.SEND_PO)
                      .values(status=JobStatus.DONE))
            s.commit()
    finally:
        db.dispose()


def follow(browser: Chrome, element: WebElement) -> None:
    """Click a link or a form's button and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(browser, 15)
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda b: b.execute_script("return document.readyState") == "complete")


def sign_in(browser: Chrome, password: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, "password")
    field.clear()
    field.send_keys(password)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "section.login button[type=submit]"))


def csp_violations(browser: Chrome) -> list[str]:
    """The console's complaints about the Content-Security-Policy so far (each read once;
    selenium leaves get_log untyped)."""
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in log if "Content Security Policy" in entry["message"]]


@pytest.fixture
def chromium() -> None:
    find_chromium()  # skip (or fail, with TEST_REQUIRE_CHROMIUM) before starting anything


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_an_operator_signs_in_and_opens_an_order(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with orderhub(tmp_path) as url, headless_chromium() as browser:
        browser.get(f"{url}/")
        assert browser.current_url == f"{url}/login?next=/"
        assert browser.title == "Sign in · OrderHub"

        sign_in(browser, "not the password")
        assert "Wrong password." in browser.find_element(By.CSS_SELECTOR, ".flash").text
        assert browser.find_elements(By.LINK_TEXT, "Orders") == []

        sign_in(browser, PASSWORD)
        assert browser.current_url == f"{url}/"
        assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
        cookie = browser.get_cookie("orderhub_session")
        assert cookie is not None
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
        # The stylesheet arrived and applies (the header's dark background).
        header = browser.find_element(By.CSS_SELECTOR, "header.top")
        assert header.value_of_css_property("background-color") == "rgba(29, 36, 48, 1)"

        follow(browser, browser.find_element(By.LINK_TEXT, "Orders"))
        assert browser.current_url == f"{url}/orders"
        follow(browser, browser.find_element(By.LINK_TEXT, "#1042"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Order #1042 routed"
        lines = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table.wide tr")]
        assert any(row.startswith("AG-BED-CED-L Raised Garden Bed") for row in lines), lines
        assert any(row.startswith("GS-SOIL-40") for row in lines), lines
        assert browser.find_elements(By.XPATH, "//button[text()='Resend']") == []  # pending

        mark_sent(tmp_path)  # the dispatcher sent it; the operator wants it sent again
        order_page = browser.current_url
        browser.refresh()
        follow(browser, browser.find_element(By.XPATH, "//button[text()='Resend']"))
        assert browser.current_url == order_page
        flash = browser.find_element(By.CSS_SELECTOR, ".flash").text
        assert "queued: it goes out as PO_greenleaf_shopify-1042_v1_r1.xml" in flash, flash

        follow(browser, browser.find_element(By.LINK_TEXT, "Outbox"))
        assert "PO_greenleaf_shopify-1042_v1_r1.xml" in browser.page_source

        follow(browser, browser.find_element(By.XPATH, "//button[text()='Sign out']"))
        assert browser.current_url == f"{url}/login"
        browser.get(f"{url}/orders")
        assert browser.current_url == f"{url}/login?next=/orders"
        assert csp_violations(browser) == []


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_behind_the_nginx_site_the_csp_holds_and_the_cookie_is_secure(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with orderhub(tmp_path, TRUST_PROXY="1") as url, nginx_site(tmp_path, url) as site, \
            headless_chromium(accept_insecure_certs=True) as browser:
        browser.get(f"{site}/")
        assert browser.current_url == f"{site}/login?next=/"
        sign_in(browser, PASSWORD)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
        follow(browser, browser.find_element(By.LINK_TEXT, "#1042"))
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Order #1042")
        header = browser.find_element(By.CSS_SELECTOR, "header.top")
        assert header.value_of_css_property("background-color") == "rgba(29, 36, 48, 1)"
        cookie = browser.get_cookie("orderhub_session")
        assert cookie is not None
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", True)
        assert csp_violations(browser) == []

        # The policy is in force and a violation would show: an inline style is refused.
        color = browser.execute_script(
            "const s = document.createElement('style');"
            "s.textContent = 'main { color: rgb(255, 0, 0) }';"
            "document.head.appendChild(s);"
            "return getComputedStyle(document.querySelector('main')).color;")
        assert color != "rgb(255, 0, 0)"
        assert any("style-src" in v or "default-src" in v for v in csp_violations(browser))


@contextmanager
def nginx_site(tmp_path: Path, backend: str) -> Iterator[str]:
    """deploy/nginx/orderhub.conf in an nginx of its own on free ports, in front of `backend`,
    serving /static/ from this checkout's app/static; yields its https URL."""
    binary = find_nginx()
    folder = tmp_path / "nginx"
    folder.mkdir()
    https_port = free_port()
    text = site_with_test_certificate(folder, {
        "listen 80;": f"listen 127.0.0.1:{free_port()};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "unix:/run/orderhub/web.sock": backend.removeprefix("http://"),
        "root /opt/orderhub/app;": f"root {ROOT / 'app'};",
        "root /var/www/letsencrypt;": f"root {folder};",
    })
    conf = write_nginx_conf(folder, text)
    log = (folder / "nginx.out").open("w")
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", f"{folder}/"], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nginx did not start:\n" + _read(folder / "nginx.out")
                                + _read(folder / "logs" / "error.log"))
                time.sleep(0.05)
        yield f"https://127.0.0.1:{https_port}"
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
