"""The WSGI entry point: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`, `flask --app wsgi ...`."""

import sys

from app import create_app
from app.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    print(f"orderhub: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
