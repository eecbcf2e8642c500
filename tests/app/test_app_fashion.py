"""AppTest of the default comparison: the app opens on Fashion-MNIST old.pt → new.pt.

The expected numbers are brute-force NumPy over the committed predictions tables of the
Fashion sample (``sample_data/fashion/predictions/old.parquet``, ``new.parquet``), not
the app's or the core's own output. The comparison runs both models on the 10,000 test
photos once per test session (minutes on a busy 2-core machine: hence the long first-run timeout).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.apptest import goto, run_app

ROOT = Path(__file__).resolve().parent.parent
FASHION = ROOT / "sample_data" / "fashion"
PREDS = FASHION / "predictions"
#: Seconds the first script run may take: both models on 10,000 photos and the exact cross-test, cold.
COLD_S = 900

pytestmark = pytest.mark.skipif(
    not (
        (FASHION / "models" / "old.pt").is_file()
        and (FASHION / "models" / "new.pt").is_file()
        and (PREDS / "old.parquet").is_file()
        and (PREDS / "new.parquet").is_file()
    ),
    reason="the Fashion-MNIST sample's models or predictions are missing",
)


@pytest.fixture(scope="module")
def expected():
    """Negative flips per class by brute force from the committed tables (joined on id)."""
    old = pd.read_parquet(PREDS / "old.parquet", columns=["id", "label", "pred"]).set_index("id")
    new = pd.read_parquet(PREDS / "new.parquet", columns=["id", "pred"]).set_index("id")
    new = new.loc[old.index]
    neg = (old["pred"] == old["label"]).to_numpy() & (new["pred"] != old["label"]).to_numpy()
    per_class = {}
    for cls in sorted(set(old["label"])):
        mine = (old["label"] == cls).to_numpy()
        per_class[cls] = (int(np.sum(neg & mine)), int(np.sum(mine)))
    worst = sorted(per_class, key=lambda c: (-per_class[c][0], c))
    return {"n": len(old), "neg": int(neg.sum()), "per_class": per_class, "order": worst}


@pytest.fixture(scope="module")
def app():
    """One session opened like a bare URL (no ``cmp``): the app's default."""
    return run_app(sample=None, timeout=COLD_S)


def test_app_opens_on_fashion_old_to_new(app, expected):
    assert app.title[0].value == "Overview"
    assert app.query_params.get("cmp") == "fashion:new"
    head = app.subheader[0].value
    assert f"breaks {expected['neg']} images of {expected['n']}" in head
    captions = " ".join(c.value for c in app.caption).replace("\\", "")  # Markdown escapes
    assert "old.pt → new.pt on fashion/test.csv (Fashion-MNIST, bundled)" in captions  # the manifest it reads


def test_overview_names_the_class_where_the_update_hurts_most(app, expected):
    worst = expected["order"][0]
    neg, support = expected["per_class"][worst]
    lead = next(m.value for m in app.markdown if "hurts" in m.value)
    plain = lead.replace("\\", "")
    assert f"The update hurts {worst} most: {neg} of its {support} images break" in plain
    nxt = expected["order"][1]
    assert f"Next: {nxt} ({expected['per_class'][nxt][0]})" in plain
    assert any(b.label == f"Show the {worst} images that break" for b in app.button)


def test_worst_class_button_opens_its_flips_with_images(app, expected):
    worst = expected["order"][0]
    next(b for b in app.button if b.key == "ov_worst").click().run()
    assert not app.exception, [e.message for e in app.exception]
    assert app.title[0].value == "Flips"
    assert app.query_params.get("cls") == worst
    shown = next(m.value for m in app.markdown if "matching images" in m.value)
    assert f"of **{expected['per_class'][worst][0]}** matching images" in shown
    assert len(app.get("image")) > 0  # the grid's photos


def test_flips_grid_shows_the_photos(expected):
    at = goto(run_app(sample=None, timeout=COLD_S), "flips_page.py")
    shown = next(m.value for m in at.markdown if "matching images" in m.value)
    assert f"of **{expected['neg']}** matching images" in shown
    assert len(at.get("image")) == 24  # one photo per card of the first page
