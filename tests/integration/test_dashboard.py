"""The operator's dashboard through the Flask test client, as a browser uses it: the login form
(right and wrong passwords, the lockout, the idle timeout), form tokens, the pages showing an
order that came in by webhook, the resend button, and no dashboard at all without a password.
Real database (SQLite, and PostgreSQL when reachable), real renderers."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from app import create_app
from app.dashboard.auth import COOKIE_NAME, THROTTLE_KEY, LoginThrottle
from app.models import (
    ChannelListing,
    InboundFile,
    JobKind,
    JobStatus,
    Order,
    OrderLine,
    OutboxJob,
    PoStatus,
    PurchaseOrder,
    Shipment,
    StockFeed,
    StockLevel,
    WebhookEvent,
)
from app.types import new_id
from tests.conftest import (
    apply_deliveries,
    base_config,
    encode,
    hub_of,
    post_delivery,
    shopify_headers,
    shopify_payload,
)

PASSWORD = "correct horse battery staple"
SUPPLIERS = """
[suppliers.greenleaf]
name = "Greenleaf Tools"
transport = "file:///srv/orderhub/greenleaf"
format = "orderhub"
default = true
"""
PAGES = ["/", "/orders", "/purchase-orders", "/outbox", "/inventory"]


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> dict[str, str]:
    suppliers = tmp_path / "suppliers.toml"
    suppliers.write_text(SUPPLIERS)
    return {**base_config(database_url), "SUPPLIERS_FILE": str(suppliers),
            "DASHBOARD_PASSWORD": PASSWORD}


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found[1]


def sign_in(client: FlaskClient, password: str = PASSWORD, next_page: str = "",
            **kwargs: Any) -> TestResponse:
    """What a person does: open the login page, type the password, submit."""
    page = client.get(f"/login?next={next_page}" if next_page else "/login", **kwargs)
    assert page.status_code == 200
    return client.post("/login", data={"csrf_token": form_token(page.text),
                                       "password": password, "next": next_page}, **kwargs)


def deliver(client: FlaskClient, **changes: Any) -> None:
    payload = shopify_payload()
    payload.update(changes)
    body = encode(payload)
    post_delivery(client, body, shopify_headers(body))


def the_order(app: Flask) -> Order:
    with hub_of(app).db.read_session() as s:
        return s.execute(select(Order)).scalar_one()


def the_po(app: Flask) -> PurchaseOrder:
    with hub_of(app).db.read_session() as s:
        return s.execute(select(PurchaseOrder)).scalar_one()


def send_po_jobs(app: Flask) -> list[OutboxJob]:
    with hub_of(app).db.read_session() as s:
        return list(s.execute(select(OutboxJob).where(OutboxJob.kind == JobKind.SEND_PO)
                              .order_by(OutboxJob.created_at)).scalars())


def mark_sent(app: Flask) -> None:
    """What the dispatcher does once the file is on the supplier's server."""
    with hub_of(app).db.session() as s:
        s.execute(update(PurchaseOrder).values(status=PoStatus.SENT,
                                               sent_at=datetime.now(UTC)))
        s.execute(update(OutboxJob).where(OutboxJob.kind == JobKind.SEND_PO)
                  .values(status=JobStatus.DONE))
        s.commit()


# ---------------------------------------------------------------- off without a password


def test_without_a_password_there_is_no_dashboard(tmp_path: Path,
                                                  config: dict[str, str]) -> None:
    del config["DASHBOARD_PASSWORD"]
    client = create_app(config).test_client()

    for path in [*PAGES, "/orders/0190a0a0-0000-7000-8000-000000000000"]:
        assert client.get(path).status_code == 404, path
    assert client.post("/logout").status_code == 404
    login = client.get("/login")
    assert login.status_code == 200
    assert "set <code>DASHBOARD_PASSWORD</code>" in login.text
    assert 'type="password"' not in login.text
    tried = client.post("/login", data={"password": "anything at all"})
    assert "set <code>DASHBOARD_PASSWORD</code>" in tried.text
    assert client.get_cookie(COOKIE_NAME) is None
    assert client.get("/healthz").status_code == 200  # the rest of OrderHub is there


# ---------------------------------------------------------------- signing in


def test_no_page_without_signing_in(app: Flask, client: FlaskClient) -> None:
    deliver(client)
    po = the_po(app)
    for path in [*PAGES, f"/orders/{the_order(app).id}",
                 f"/purchase-orders/{po.id}/document"]:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/login?next=/"), path
        assert "#1042" not in response.text
    assert client.get("/orders?status=routed").headers["Location"] == (
        "/login?next=/orders?status%3Drouted")
    resend = client.post(f"/purchase-orders/{po.id}/resend")
    assert resend.status_code == 303
    assert len(send_po_jobs(app)) == 1  # nothing queued


def test_sign_in_with_the_right_password_only(client: FlaskClient) -> None:
    wrong = sign_in(client, "correct horse battery stapler")
    assert wrong.status_code == 403
    assert "Wrong password." in wrong.text
    assert client.get("/").status_code == 303

    right = sign_in(client, next_page="/orders?status=routed")
    assert right.status_code == 303
    assert right.headers["Location"] == "/orders?status=routed"
    cookie = right.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http (make serve); https below
    assert PASSWORD not in cookie
    for path in PAGES:
        assert client.get(path).status_code == 200, path

    home = client.get("/").text
    signed_out = client.post("/logout", data={"csrf_token": form_token(home)})
    assert signed_out.status_code == 303
    assert client.get("/").status_code == 303


def test_the_cookie_is_secure_over_https(client: FlaskClient) -> None:
    response = sign_in(client, base_url="https://orderhub.example.com")
    assert response.status_code == 303
    assert "; Secure" in response.headers["Set-Cookie"]


def test_sign_in_goes_only_to_pages_of_this_site(app: Flask) -> None:
    for target in ["https://evil.example/", "//evil.example/", "/\\evil.example"]:
        response = sign_in(app.test_client(), next_page=target)
        assert response.headers["Location"] == "/", target


def test_five_wrong_passwords_lock_the_address_out(app: Flask, client: FlaskClient) -> None:
    now = [1000.0]
    throttle: LoginThrottle = app.extensions[THROTTLE_KEY]
    throttle.clock = lambda: now[0]

    answers = [sign_in(client, f"wrong password {n}").status_code for n in range(5)]
    assert answers == [403, 403, 403, 403, 429]
    refused = sign_in(client)  # the right password, during the lockout
    assert refused.status_code == 429
    assert "try again in 15 minutes" in refused.text
    assert refused.headers["Retry-After"] == "900"
    assert client.get("/").status_code == 303

    other = app.test_client()  # another address is not locked out
    assert sign_in(other, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 303

    now[0] += 14 * 60
    assert sign_in(client).status_code == 429
    now[0] += 60
    assert sign_in(client).status_code == 303


def test_mistakes_spread_over_more_than_15_minutes_do_not_lock(app: Flask,
                                                               client: FlaskClient) -> None:
    now = [1000.0]
    throttle: LoginThrottle = app.extensions[THROTTLE_KEY]
    throttle.clock = lambda: now[0]
    for _ in range(4):
        assert sign_in(client, "not the password").status_code == 403
    now[0] += 15 * 60 + 1
    for _ in range(4):
        assert sign_in(client, "not the password").status_code == 403
    assert sign_in(client).status_code == 303


def test_the_session_ends_after_8_idle_hours(client: FlaskClient) -> None:
    assert sign_in(client).status_code == 303
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session["seen"] = int(time.time()) - 8 * 3600 - 1
    expired = client.get("/orders")
    assert expired.status_code == 303
    assert "without activity" in client.get(expired.headers["Location"]).text
    assert client.get("/orders").status_code == 303


def test_a_new_password_signs_everyone_out(config: dict[str, str], app: Flask,
                                           client: FlaskClient) -> None:
    assert sign_in(client).status_code == 303
    cookie = client.get_cookie(COOKIE_NAME)
    assert cookie is not None
    changed = create_app({**config, "DASHBOARD_PASSWORD": "a brand new password"})
    other = changed.test_client()
    other.set_cookie(COOKIE_NAME, cookie.value)
    assert other.get("/").status_code == 303
    same = app.test_client()
    same.set_cookie(COOKIE_NAME, cookie.value)
    assert same.get("/").status_code == 200


# ---------------------------------------------------------------- form tokens


def test_forms_without_the_session_token_are_refused(app: Flask, client: FlaskClient) -> None:
    deliver(client)
    mark_sent(app)
    po = the_po(app)
    # The login form too: a POST without a token checks no password and counts no mistake.
    assert client.post("/login", data={"password": PASSWORD}).status_code == 400
    assert sign_in(client).status_code == 303

    for token in [None, "", "forged-token"]:
        data = {} if token is None else {"csrf_token": token}
        assert client.post(f"/purchase-orders/{po.id}/resend", data=data).status_code == 400
        assert client.post("/logout", data=data).status_code == 400
    assert len(send_po_jobs(app)) == 1  # nothing queued
    assert client.get("/").status_code == 200  # still signed in

    other = app.test_client()  # someone else's session has its own token
    assert sign_in(other).status_code == 303
    theirs = form_token(other.get("/").text)
    stolen = client.post(f"/purchase-orders/{po.id}/resend", data={"csrf_token": theirs})
    assert stolen.status_code == 400


# ---------------------------------------------------------------- the pages


def test_the_pages_show_an_order_that_came_by_webhook(app: Flask, client: FlaskClient) -> None:
    deliver(client, note="<script>alert('x')</script> back door")
    order, po = the_order(app), the_po(app)
    with hub_of(app).db.session() as s:  # what `shipments poll` records for a parcel
        line = s.execute(select(OrderLine).where(OrderLine.sku == "GS-SOIL-40")).scalar_one()
        line.shipped_quantity = 1
        s.add(Shipment(id=new_id(), order_id=order.id, purchase_order_id=po.id,
                       supplier="greenleaf", carrier="DHL", tracking_number="JD0001234",
                       tracking_url="javascript:alert(1)", shipped_at=datetime.now(UTC),
                       lines=[{"sku": "GS-SOIL-40", "quantity": 1}], push_status="queued"))
        s.commit()
    assert sign_in(client).status_code == 303

    overview = client.get("/").text
    assert "#1042" in overview
    assert 'href="/orders?status=routed"' in overview
    assert "1 waiting or running" in overview  # the purchase order's upload
    assert "No stock feed read yet" in overview

    listed = client.get("/orders").text
    assert f'href="/orders/{order.id}"' in listed
    assert "158.31 USD" in listed
    assert "#1042" not in client.get("/orders?status=shipped").text
    assert "No orders match this filter." in client.get("/orders?status=shipped").text
    assert client.get("/orders?cursor=not-a-cursor").status_code == 400

    page = client.get(f"/orders/{order.id}")
    assert page.status_code == 200
    text = page.text
    for expected in ("AG-BED-CED-L", "GS-SOIL-40", "AG-TRWL", "greenleaf",
                     po.po_number, po.file_name, "JD0001234", "DHL", "orders/create"):
        assert expected in text, expected
    assert re.search(r"GS-SOIL-40</td>.*?<td class=\"num\">1</td>\s*<td class=\"num\">1</td>",
                     text, re.S)  # ordered 1, shipped 1
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; back door" in text
    assert "<script" not in text
    assert "javascript:" not in text  # a tracking link only to an http(s) page
    assert "style=" not in text  # the CSP allows no inline style

    document = client.get(f"/purchase-orders/{po.id}/document")
    assert document.status_code == 200
    assert document.mimetype == "text/plain"
    assert document.data == po.document

    pos = client.get("/purchase-orders?supplier=greenleaf").text
    assert po.po_number in pos
    assert "No purchase orders match this filter." in client.get(
        "/purchase-orders?status=sent").text
    outbox = client.get("/outbox?status=pending").text
    assert "send_po" in outbox and str(po.id) in outbox
    assert "No jobs dead." in client.get("/outbox?status=dead").text
    assert "No SKU in any stock feed" in client.get("/inventory").text
    assert client.get("/orders/0190a0a0-0000-7000-8000-000000000000").status_code == 404
    assert client.get("/orders/not-an-id").status_code == 404
    assert client.get("/outbox?offset=-1").status_code == 400


def test_the_overview_shows_what_needs_a_person(app: Flask, client: FlaskClient) -> None:
    deliver(client)
    now = datetime.now(UTC)
    with hub_of(app).db.session() as s:
        s.execute(update(OutboxJob).values(status=JobStatus.DEAD,
                                           last_error="login refused by <sftp> server"))
        s.add(InboundFile(id=new_id(), supplier="greenleaf", kind="shipment",
                          name="SHIP_0001.csv", sha256="0" * 64, size=3, content=b"x,y",
                          status="quarantined", error="unknown purchase order PO-404"))
        s.add(StockFeed(supplier="greenleaf", status="held", reason="total stock would drop 80%",
                        feed_at=now, read_at=now, skus=2, total=40, bad_rows=1))
        s.add(StockLevel(id=new_id(), supplier="greenleaf", sku="AG-TRWL", quantity=40,
                         as_of=now, updated_at=now))
        s.add(ChannelListing(id=new_id(), channel="shopify", sku="AG-TRWL", refs={"item": "1"},
                             last_pushed=37, last_pushed_at=now, updated_at=now))
        s.commit()
    assert sign_in(client).status_code == 303

    overview = client.get("/").text
    assert "0 waiting or running" in overview
    assert '<a class="alarm" href="/outbox?status=dead">1 dead</a>' in overview
    assert "SHIP_0001.csv" in overview and "unknown purchase order PO-404" in overview
    assert "total stock would drop 80%" in overview
    dead = client.get("/outbox?status=dead").text
    assert "login refused by &lt;sftp&gt; server" in dead
    inventory = client.get("/inventory").text
    row = re.search(r"<td>AG-TRWL</td>.*?</tr>", inventory, re.S)
    assert row, inventory
    # 40 in the feed, 1 reserved by the order: 39 may be sold; 37 was pushed last.
    assert "greenleaf: 40" in row[0] and "39 / 37" in row[0]


def test_the_overview_shows_deliveries_waiting_for_the_dispatcher(app: Flask,
                                                                  client: FlaskClient) -> None:
    body = encode(shopify_payload())
    client.post("/webhooks/shopify", data=body, headers=shopify_headers(body))
    with hub_of(app).db.session() as s:   # as if no dispatcher had run for two minutes
        s.execute(update(WebhookEvent).values(received_at=datetime.now(UTC)
                                              - timedelta(minutes=2)))
        s.commit()
    assert sign_in(client).status_code == 303

    waiting = re.search(r"<p[^>]*>1 webhook deliveries received, waiting.*?</p>",
                        client.get("/").text, re.S)
    assert waiting and 'class="alarm"' in waiting[0] and "2 min" in waiting[0], waiting
    apply_deliveries(app)
    assert "waiting for the dispatcher" not in client.get("/").text


def test_the_resend_button_queues_the_purchase_order_again(app: Flask,
                                                           client: FlaskClient) -> None:
    deliver(client)
    assert sign_in(client).status_code == 303
    order, po = the_order(app), the_po(app)
    action = f'action="/purchase-orders/{po.id}/resend"'
    assert action not in client.get(f"/orders/{order.id}").text  # pending: nothing to resend

    mark_sent(app)
    page = client.get(f"/orders/{order.id}").text
    assert action in page
    response = client.post(f"/purchase-orders/{po.id}/resend",
                           data={"csrf_token": form_token(page), "next": f"/orders/{order.id}"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/orders/{order.id}"
    jobs = send_po_jobs(app)
    assert [j.status for j in jobs] == [JobStatus.DONE, JobStatus.PENDING]
    resent = po.file_name.replace(".xml", "_r1.xml")
    assert jobs[1].data == {"file_name": resent, "resend": 1}
    assert f"queued: it goes out as {resent}" in client.get(f"/orders/{order.id}").text

    again = client.post(f"/purchase-orders/{po.id}/resend",
                        data={"csrf_token": form_token(page)})
    assert again.headers["Location"] == "/purchase-orders"
    refused = client.get("/purchase-orders").text
    assert "Not resent" in refused and "is already queued" in refused
    assert len(send_po_jobs(app)) == 2


def test_the_templates_need_nothing_the_csp_refuses() -> None:
    """nginx sends `default-src 'self'`: no inline style or script, no event handler
    attributes, no javascript: links (the browser test checks the pages in Chromium too)."""
    folder = Path(__file__).resolve().parents[2] / "app" / "dashboard" / "templates"
    refused = re.compile(r"style=|<style|<script|\son[a-z]+\s*=|javascript:", re.I)
    templates = sorted(folder.rglob("*.html"))
    assert len(templates) >= 8
    for template in templates:
        assert not refused.search(template.read_text()), template.name
