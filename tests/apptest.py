"""Helpers of the Streamlit AppTest modules: start the app (optionally from a link), switch pages."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
#: Seconds one script run may take (the first run of a session may run both models).
TIMEOUT = 180


def check(at):
    """``at`` itself; fails the test when the last run raised (Streamlit's exception box)."""
    assert not at.exception, [e.message for e in at.exception]
    return at


def run_app(query: dict | None = None, page: str | None = None):
    """A fresh session of the app, opened with ``query`` as the link's parameters, on ``page``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    check(at.run())
    return goto(at, page) if page else at


def goto(at, page_file: str):
    """Switch ``at`` to ``app_pages/<page_file>`` (like a sidebar click) and run it."""
    return check(at.switch_page(f"app_pages/{page_file}").run())
