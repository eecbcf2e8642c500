"""AppTest of the what-if section of the Mitigate page and the Overview's remedy line (digits sample).

The expected sentence and line are computed here from the two predictions tables with
``mitigate_sources`` (not through the app's comparison). The download was checked in
Chromium (notes); the exported file's predictions are tested in tests/remedies/test_whatif.py.
"""

from __future__ import annotations

import pytest

from tests.apptest import ROOT, check, goto, run_app

PREDS = ROOT / "sample_data" / "predictions"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    if not (PREDS / "old.csv").is_file():
        pytest.skip("bundled sample data is missing")
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))


def test_mitigate_opens_on_the_recommendation_and_the_overview_says_it():
    from graceful_core.remedies.build import mitigate_sources
    from graceful_core.report.remedies import whatif_line
    from graceful_core.vocabulary import TRAINING_TITLE, WHATIF_LINE_LABEL, WHATIF_TITLE
    from graceful_ui.fmt import md  # the page escapes Markdown in its sentences

    at = run_app(page="mitigate_page.py")
    assert at.title[0].value == "Mitigate"
    assert at.subheader[0].value == WHATIF_TITLE
    # the training form is not under the heading "without training"
    assert at.subheader[1].value == TRAINING_TITLE
    assert any(r.label == "Method" for r in at.radio)
    want = mitigate_sources(PREDS / "old.csv", PREDS / "new.csv").report
    shown = " ".join(m.value for m in at.markdown)
    assert md(want.recommended.sentence()) in shown
    charts = at.get("plotly_chart")
    assert charts, "no what-if figure"
    at = goto(at, "overview_page.py")
    assert any(f"**{WHATIF_LINE_LABEL}:** {md(whatif_line(want))}" == m.value for m in at.markdown)
    check(at)
