"""A real browser for tests: the system's headless Chromium driven by its chromedriver through
Selenium, with a fresh profile per test and the console log kept (CSP violations show there).

Debian: `apt-get install chromium chromium-driver`; Selenium comes from requirements-dev.txt.
ORDERHUB_TEST_CHROMIUM and ORDERHUB_TEST_CHROMEDRIVER name other binaries (absolute paths).
TEST_REQUIRE_CHROMIUM turns "skipped" into a failure, so CI cannot pass without these tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

CHROMIUM_ENV = "ORDERHUB_TEST_CHROMIUM"
CHROMEDRIVER_ENV = "ORDERHUB_TEST_CHROMEDRIVER"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_unavailable(reason: str) -> NoReturn:
    if os.environ.get("TEST_REQUIRE_CHROMIUM"):
        pytest.fail(f"Chromium required (TEST_REQUIRE_CHROMIUM is set) but {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


def find_chromium() -> tuple[str, str]:
    """The Chromium and chromedriver binaries to run, or a skip saying why there are none."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium_unavailable("selenium is not installed (pip install -r requirements-dev.txt)")
    found = []
    for env, default, package in ((CHROMIUM_ENV, DEFAULT_CHROMIUM, "chromium"),
                                  (CHROMEDRIVER_ENV, DEFAULT_CHROMEDRIVER, "chromium-driver")):
        path = os.environ.get(env) or default
        if not os.access(path, os.X_OK):
            chromium_unavailable(f"no {os.path.basename(path)} at {path} (apt-get install "
                                 f"{package}, or set {env})")
        found.append(path)
    return found[0], found[1]


@contextmanager
def headless_chromium(*, accept_insecure_certs: bool = False) -> Iterator[Chrome]:
    """A headless Chromium with a fresh profile, quit afterwards. Its console log (levels ALL)
    is readable with `driver.get_log("browser")`."""
    binary, driver_path = find_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.accept_insecure_certs = accept_insecure_certs
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Installed but failing to start is a failure, not a skip.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
