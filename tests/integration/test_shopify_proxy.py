"""The Shopify client honours HTTP(S)_PROXY / NO_PROXY and the CA bundle setting as they are
when it is made (requests would read them again on every call): a real proxy on 127.0.0.1
forwards to a shop name that only it can reach."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.channels.base import Listing
from app.channels.shopify_api import ShopifyAdmin
from app.channels.shopify_http import admin_session

SHOP_API = "http://garden-goods.invalid/admin/api/2026-10"   # resolvable by nobody
LOCATION = "gid://shopify/Location/24826418"


class Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers for the shop itself and notes what it was asked."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(f"{self.path} {body['variables']['query']}")
        answer = json.dumps({"data": {"productVariants": {
            "pageInfo": {"hasNextPage": False, "endCursor": None},
            "nodes": [{"id": "gid://shopify/ProductVariant/39072856001", "sku": "AG-TRWL",
                       "inventoryItem": {"id": "gid://shopify/InventoryItem/43729001",
                                         "inventoryLevel": {"id": "gid://shopify/InventoryLevel/1"}
                                         }}]}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - the stdlib's name
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_calls_go_through_the_proxy_set_when_the_client_was_made(
        proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    admin = ShopifyAdmin("garden-goods.myshopify.com", "shpat_test", base_url=SHOP_API,
                         location_id=LOCATION, max_attempts=1)
    monkeypatch.delenv("HTTP_PROXY")   # read once, when the client was made

    found = admin.lookup_listings(["AG-TRWL"])

    assert found == {"AG-TRWL": Listing("AG-TRWL", "gid://shopify/InventoryItem/43729001",
                                        LOCATION)}
    assert Proxy.seen == [f'{SHOP_API}/graphql.json sku:"AG-TRWL"']


def test_no_proxy_exempts_the_shop_and_a_ca_bundle_is_kept(
        proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", ".myshopify.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/corporate-proxy.pem")

    exempt = admin_session("https://garden-goods.myshopify.com/admin/api/2026-10")
    proxied = admin_session("https://garden-goods.example/admin/api/2026-10")

    assert "https" not in exempt.proxies and proxied.proxies["https"] == proxy
    assert exempt.verify == proxied.verify == "/etc/ssl/certs/corporate-proxy.pem"
    assert not exempt.trust_env and not proxied.trust_env
