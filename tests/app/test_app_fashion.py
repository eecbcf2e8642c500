"""AppTest of the default comparison: the app opens on Fashion-MNIST old.pt → new.pt.

The expected numbers are brute-force NumPy over the committed predictions tables of the
Fashion sample (``sample_data/fashion/predictions/old.parquet``, ``new.parquet``), not
the app's or the core's own output. The comparison runs both models on the 10,000 test
photos once per test run (tests/conftest.py::fashion_in_cache, shared by the xdist workers; minutes on a
busy 2-core machine, hence the long first-run timeout).
"""

from __future__ import annotations

import pytest

from tests.apptest import goto, run_app
from tests.helpers import fashion_flips_brute_force, needs_fashion

#: Seconds the first script run may take: both models on 10,000 photos and the exact cross-test, cold.
COLD_S = 900

pytestmark = needs_fashion


@pytest.fixture(scope="module")
def expected():
    """Negative flips per class by brute force from the committed tables (joined on id)."""
    return fashion_flips_brute_force()


@pytest.fixture(scope="module")
def app(fashion_in_cache):
    """One session opened like a bare URL (no ``cmp``): the app's default. Its tests only read it; a test that
    clicks opens a session of its own, so that no test depends on which ran before it."""
    return run_app(sample=None, timeout=COLD_S)


def test_app_opens_on_fashion_old_to_new(app, expected):
    assert app.title[0].value == "Overview"
    assert app.query_params.get("cmp") == "fashion:new"
    head = app.subheader[0].value
    assert f"breaks {expected['neg']:,} images of {expected['n']:,}" in head
    captions = " ".join(c.value for c in app.caption).replace("\\", "")  # Markdown escapes
    assert "old.pt → new.pt on fashion/test.csv (Fashion-MNIST, bundled)" in captions  # the manifest it reads


def test_overview_names_the_class_where_the_update_hurts_most(app, expected):
    worst = expected["order"][0]
    neg, support = expected["per_class"][worst]
    lead = next(m.value for m in app.markdown if "hurts" in m.value)
    plain = lead.replace("\\", "")
    assert f"The update hurts {worst} most: {neg:,} of its {support:,} images break" in plain
    nxt = expected["order"][1]
    assert f"Next: {nxt} ({expected['per_class'][nxt][0]})" in plain
    assert any(b.label == f"Show the {worst} images that break" for b in app.button)


def test_worst_class_button_opens_its_flips_with_images(fashion_in_cache, expected):
    worst = expected["order"][0]
    app = run_app(sample=None, timeout=COLD_S)
    next(b for b in app.button if b.key == "ov_worst").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.title[0].value == "Flips"
    assert app.query_params.get("cls") == worst
    shown = next(m.value for m in app.markdown if "matching images" in m.value)
    assert f"of **{expected['per_class'][worst][0]:,}** matching images" in shown
    assert len(app.get("image")) > 0  # the grid's photos


def test_flips_grid_shows_the_photos(fashion_in_cache, expected):
    at = goto(run_app(sample=None, timeout=COLD_S), "flips_page.py")
    shown = next(m.value for m in at.markdown if "matching images" in m.value)
    assert f"of **{expected['neg']:,}** matching images" in shown
    assert len(at.get("image")) == 24  # one photo per card of the first page


def test_counts_are_written_one_way_on_every_page(app, expected):
    """The Overview and the Embeddings page write the number of images the same way (with a thousands separator)."""
    n = f"{expected['n']:,}"  # Python's own grouping: "10,000"
    assert "," in n
    captions = " ".join(c.value for c in app.caption).replace("\\", "")
    assert f"{n} labelled images" in captions
    at = goto(run_app(sample=None, timeout=COLD_S), "embeddings_page.py")
    assert not at.exception, [e.message for e in at.exception]
    assert at.toggle(key="w_emb_all").label == f"Show all {n} images"
