"""Developer conveniences behind `make run` and `make send-test-webhook`.

    make_dev_env.py EXAMPLE TARGET     write TARGET from EXAMPLE with fresh random secrets
    make_dev_env.py --banner URL       print where the service is and how to talk to it
    make_dev_env.py --send URL FILE    post FILE to URL/webhooks/shopify, signed like Shopify

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

GENERATED = ("SECRET_KEY", "ORDERHUB_API_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "DASHBOARD_PASSWORD")


def read_env(path: Path = Path(".env")) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def write_env(example: Path, target: Path) -> None:
    lines = []
    for line in example.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in GENERATED and not value.strip():
            line = f"{key}={secrets.token_urlsafe(24)}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o600)
    print(f"wrote {target} with fresh random secrets (keep it out of git; it is ignored)")


def banner(url: str) -> None:
    env = read_env()
    token = env.get("ORDERHUB_API_TOKEN", "$ORDERHUB_API_TOKEN")
    dashboard = (f"{url}/   (log in with the password DASHBOARD_PASSWORD from .env)"
                 if env.get("DASHBOARD_PASSWORD") else
                 "off: set DASHBOARD_PASSWORD in .env (12 characters or more) to use it")
    print(f"""
OrderHub is starting on {url}
  dashboard: {dashboard}
  health:    curl {url}/healthz
  orders:    curl -H 'Authorization: Bearer {token}' {url}/api/orders
  webhook:   make send-test-webhook   (in another terminal: posts a signed sample Shopify order)
Press Ctrl-C to stop.
""")


def send(url: str, file: str) -> int:
    env = read_env()
    secret = env.get("SHOPIFY_WEBHOOK_SECRET", "")
    if not secret:
        print("SHOPIFY_WEBHOOK_SECRET is not set in .env", file=sys.stderr)
        return 2
    body = Path(file).read_bytes()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    request = urllib.request.Request(  # noqa: S310 (a URL the developer typed)
        f"{url}/webhooks/shopify",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": signature.decode(),
            "X-Shopify-Shop-Domain": "demo-store.myshopify.com",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-API-Version": "2026-10",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as exc:
        print(exc.code, exc.read().decode(), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--banner":
        banner(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "--send":
        return send(argv[1], argv[2])
    if len(argv) == 2:
        write_env(Path(argv[0]), Path(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
