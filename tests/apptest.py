"""Helpers of the Streamlit AppTest modules: start the app (optionally from a link), switch pages."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
#: Seconds one script run may take (the first run of a session may run both models). A run returns as soon as it
#: ends: the limit only stops a hung one, so it is far above what a loaded machine needs.
TIMEOUT = 600


def check(at):
    """``at`` itself; fails the test when the last run raised (Streamlit's exception box)."""
    assert not at.exception, [e.message for e in at.exception]
    return at


#: The comparison most app tests open: the small digits sample (the app itself opens on Fashion-MNIST).
DIGITS = "sample:new"


def run_app(
    query: dict | None = None, page: str | None = None, *, sample: str | None = DIGITS, timeout: float = TIMEOUT
):
    """A fresh session of the app, opened with ``query`` as the link's parameters, on ``page``.

    Without a ``cmp`` in ``query`` the link opens ``sample`` (default: the digits pair, for
    speed); ``sample=None`` opens the app as a bare URL does (its default comparison).
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    if sample is not None and "cmp" not in (query or {}):
        query = {**(query or {}), "cmp": sample}
    if query:
        at.query_params.update(query)
    check(at.run())
    return goto(at, page) if page else at


def goto(at, page_file: str):
    """Switch ``at`` to ``app_pages/<page_file>`` (like a sidebar click) and run it."""
    return check(at.switch_page(f"app_pages/{page_file}").run())


def pca_instead_of_umap(monkeypatch) -> None:
    """Make the Embeddings page fast: a 2-D PCA stands in for UMAP, and the stand-in is never stored on disk."""
    import numpy as np

    import graceful_core.explore.projection as proj

    def pca2(x, seed, n_neighbors, *_progress):
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return (x @ vt[:2].T).astype(np.float32)

    monkeypatch.setattr(proj, "_umap", pca2)
    monkeypatch.setattr("graceful_core.explore.on_demand.PROJECTION_DISK_CACHE", False)  # never persist the stand-in


def grid_ids(at) -> list[str]:
    """Sample ids of the grid cards (each card's text starts with the id in backticks)."""
    return [m.value.split("`")[1] for m in at.markdown if m.value.startswith("`")]


def shown_count(at) -> int | None:
    """The Flips grid's "of **N** matching images" count; 0 for its "No image matches" note; None without either."""
    for m in at.markdown:
        hit = re.search(r"of \*\*([\d,]+)\*\* matching images", m.value)  # "1,234": counts have separators
        if hit:
            return int(hit.group(1).replace(",", ""))
    return 0 if any("No image matches" in i.value for i in at.info) else None
