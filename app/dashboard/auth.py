"""Signing in to the dashboard, and the guard in front of every page and form.

- One password, DASHBOARD_PASSWORD, compared in constant time. Unset: every dashboard page
  answers 404, except /login, which says how to switch the dashboard on.
- A signed Flask session cookie (SECRET_KEY): HttpOnly, SameSite=Lax, Secure whenever the
  request came over https (behind nginx that needs TRUST_PROXY=1, which install.sh sets). It
  carries a fingerprint of the password, so changing DASHBOARD_PASSWORD (or SECRET_KEY) signs
  everyone out, and the time of the last request: after IDLE_TIMEOUT without one, it is void.
- Every POST form carries a token bound to the session (`csrf_token` in the templates), the
  login form included; a POST without it changes nothing.
- After MAX_FAILURES wrong passwords from one address within FAILURE_WINDOW, that address is
  refused for LOCKOUT, right password or not. Counted in this process's memory (each gunicorn
  worker counts on its own); nginx also limits the rate of /login for everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request
from flask.wrappers import Response as FlaskResponse
from werkzeug.wrappers import Response

from app.dashboard import bp
from app.hub import hub

log = logging.getLogger(__name__)

IDLE_TIMEOUT = timedelta(hours=8)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
THROTTLE_KEY = "orderhub.dashboard.throttle"
COOKIE_NAME = "orderhub_session"
LOGIN_ENDPOINT = "dashboard.login"


class LoginThrottle:
    """Wrong passwords per client address: after `limit` of them within `window` seconds,
    the address is refused for `lockout` seconds. Thread-safe; remembers at most
    `max_addresses` addresses (the oldest are forgotten first)."""

    def __init__(self, *, limit: int = MAX_FAILURES,
                 window: float = FAILURE_WINDOW.total_seconds(),
                 lockout: float = LOCKOUT.total_seconds(),
                 clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try a password again (0: now)."""
        with self._lock:
            until = self._locked.get(address)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._locked[address]
                return 0.0
            return left

    def failed(self, address: str) -> bool:
        """Count a wrong password from `address`; True when this one locks it out."""
        with self._lock:
            now = self.clock()
            recent = self._failures.pop(address, deque())
            recent.append(now)
            while recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) >= self.limit:
                self._locked.pop(address, None)
                self._locked[address] = now + self.lockout
                _keep_newest(self._locked, self.max_addresses)
                return True
            self._failures[address] = recent  # re-inserted: the dict stays oldest first
            _keep_newest(self._failures, self.max_addresses)
            return False

    def succeeded(self, address: str) -> None:
        """The right password: earlier mistakes from `address` are forgiven."""
        with self._lock:
            self._failures.pop(address, None)


def _keep_newest(entries: dict[str, Any], most: int) -> None:
    while len(entries) > most:
        del entries[next(iter(entries))]


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request is https (the scheme
    comes from nginx through ProxyFix when TRUST_PROXY is set), so the same code serves
    `make serve` on plain http and production behind TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # A request without cookies (every webhook, every API call) starts an empty session
        # as Flask would, without building the signing serializer for nothing: ~100 us of
        # each webhook's CPU.
        if "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin,
                     response: FlaskResponse) -> None:
        if not (session or session.modified or session.accessed):
            return  # Flask would set no cookie and no header either
        super().save_session(app, session, response)


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=IDLE_TIMEOUT)
    app.session_interface = SessionInterface()
    app.extensions[THROTTLE_KEY] = LoginThrottle()


def throttle() -> LoginThrottle:
    """This app's login throttle."""
    found: LoginThrottle = current_app.extensions[THROTTLE_KEY]
    return found


def password_matches(given: str, expected: str) -> bool:
    """Constant time, and the digests have one length whatever was typed."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


def _fingerprint(password: str) -> str:
    # Keyed with SECRET_KEY: the cookie is signed, not encrypted, and must not help anyone
    # guess the password offline.
    key = hub().settings.secret_key.encode()
    return hmac.new(key, b"orderhub-dashboard:" + password.encode(), hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """The form token of this session (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    """Whether the posted form carries this session's token (constant-time compare)."""
    expected = session.get("csrf")
    given = request.form.get("csrf_token", "")
    return isinstance(expected, str) and hmac.compare_digest(given.encode(), expected.encode())


@bp.app_template_global("csrf_token")
def _csrf_token_in_templates() -> str:
    return csrf_token()


def signed_in(password: str) -> bool:
    """Whether this session signed in with `password` and has been used within IDLE_TIMEOUT;
    a session that is no longer good is emptied."""
    who, seen = session.get("who"), session.get("seen")
    if not isinstance(who, str) or not isinstance(seen, int):
        return False
    now = int(time.time())
    if not hmac.compare_digest(who, _fingerprint(password)):
        session.clear()
        return False
    if not seen - 60 <= now < seen + IDLE_TIMEOUT.total_seconds():
        session.clear()
        flash(f"Signed out after {_hours(IDLE_TIMEOUT)} hours without activity.")
        return False
    session["seen"] = now
    return True


@bp.before_request
def guard() -> Response | str | tuple[str, int] | None:
    """Every dashboard request: 404 without a password; signed in, or off to /login; a POST
    with this session's form token."""
    password = hub().settings.dashboard_password
    if password is None:
        if request.endpoint == LOGIN_ENDPOINT:
            return render_template("dashboard/off.html")
        abort(404)
    if request.endpoint == LOGIN_ENDPOINT:
        return None  # the login view checks its own form
    if not signed_in(password):
        target = request.full_path if request.method == "GET" else request.path
        return redirect(url_for(".login", next=target.rstrip("?")), 303)
    g.dashboard_signed_in = True
    if request.method == "POST" and not csrf_ok():
        abort(400, "This form had expired or did not come from the dashboard. Reload the page "
                   "and try again.")
    return None


@bp.context_processor
def _signed_in_in_templates() -> dict[str, bool]:
    return {"signed_in": bool(g.get("dashboard_signed_in"))}


@bp.after_request
def no_store(response: Response) -> Response:
    # Order data and a session: never in a shared or browser cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    """The password form; a right password starts a fresh session, a wrong one counts."""
    password = hub().settings.dashboard_password
    assert password is not None  # guard() answered already
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if signed_in(password):
            return redirect(target)
        return render_template("dashboard/login.html", next=target)

    address = request.remote_addr or "unknown"
    wait = throttle().retry_after(address)
    if wait > 0:
        return _refused(target, wait)
    if not csrf_ok():
        return render_template("dashboard/login.html", next=target,
                               error="The form had expired. Please sign in again."), 400, {}
    if not password_matches(request.form.get("password", ""), password):
        if throttle().failed(address):
            log.warning("dashboard: %d wrong passwords from %s, refused for %d minutes",
                        MAX_FAILURES, address, LOCKOUT.total_seconds() // 60)
            return _refused(target, LOCKOUT.total_seconds())
        log.warning("dashboard: wrong password from %s", address)
        return render_template("dashboard/login.html", next=target,
                               error="Wrong password."), 403, {}
    throttle().succeeded(address)
    session.clear()  # nothing from before signing in carries over (a new form token too)
    session.permanent = True  # the cookie expires with the idle timeout, renewed each request
    session.update(who=_fingerprint(password), seen=int(time.time()),
                   csrf=secrets.token_urlsafe(32))
    log.info("dashboard: signed in from %s", address)
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> Response:
    """Forget the session (guard() checked the form token)."""
    session.clear()
    flash("Signed out.")
    return redirect(url_for(".login"), 303)


def _refused(target: str, wait: float) -> tuple[str, int, dict[str, str]]:
    minutes = max(1, math.ceil(wait / 60))
    error = (f"Too many wrong passwords from your address: try again in {minutes} "
             f"minute{'s' if minutes != 1 else ''}.")
    page = render_template("dashboard/login.html", next=target, error=error)
    return page, 429, {"Retry-After": str(math.ceil(wait))}


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    fallback = url_for("dashboard.overview")
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return fallback
    if any(ord(c) < 32 for c in raw):
        return fallback
    return raw


def _hours(span: timedelta) -> int:
    return int(span.total_seconds() // 3600)
