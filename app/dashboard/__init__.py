"""The operator's web pages: a small, server-rendered dashboard over the same reads as the JSON
API (`app/queries.py`), behind one password (DASHBOARD_PASSWORD; unset, every page answers 404).

`auth` signs the operator in and guards every page and form; `views` renders the pages. No
JavaScript and no inline style: nginx sends `Content-Security-Policy: default-src 'self'`, and
the one stylesheet is `app/static/orderhub.css`.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__, template_folder="templates")

from app.dashboard import auth as auth  # noqa: E402  (registers the routes on bp)
from app.dashboard import views as views  # noqa: E402
