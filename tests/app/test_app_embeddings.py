"""AppTest of the Embeddings and Retrieval pages against the core's report and NumPy.

UMAP itself is tested with the projection module; here its fit is replaced by a fast
linear map (first two principal components) so the page logic runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.apptest import check, goto, pca_instead_of_umap, run_app


@pytest.fixture(autouse=True)
def _fast_projection(monkeypatch):
    pca_instead_of_umap(monkeypatch)
    yield


@pytest.fixture(scope="session")
def comparison(sample_spec):
    from graceful_core.comparing.sources import compare_sources

    comp = compare_sources(sample_spec.old, sample_spec.new, sample_spec.data)
    if comp.arrays.old_embedding is None or comp.arrays.new_embedding is None:
        pytest.skip("the bundled models have no embeddings")
    return comp


def open_page(page: str):
    return run_app({"page": page})


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def test_retrieval_table_and_verdict_equal_the_report(comparison):
    report = comparison.to_report()["compatibility"]
    at = open_page("retrieval")
    assert at.title[0].value == "Retrieval"
    table = at.dataframe[0].value
    for pair, row in zip(("old_old", "new_new", "new_old", "old_new"), table.itertuples(index=False)):
        assert (row[1], row[2], row[3]) == (
            pct(report["top1"][pair]),
            pct(report["top5"][pair]),
            pct(report["map"][pair]),
        ), pair
    # the verdict in the CLI's and the HTML report's words, rebuilt from the JSON report's numbers
    t = report["top1"]
    words, rel = ("compatible", ">") if report["compatible"] else ("not compatible", "<=")
    sentence = (
        f"{words}: new queries on the old gallery reach top-1 {100 * t['new_old']:.1f}% {rel} "
        f"old→old {100 * t['old_old']:.1f}%"
    )
    boxes = at.success if report["compatible"] else at.error
    assert any(b.value.replace("\\", "").startswith(f"**{sentence}.** ") for b in boxes), [b.value for b in boxes]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Retrieval negative flips"] == str(report["retrieval_negative_flips"])
    rows = [m.value for m in at.markdown if m.value.startswith("`")]
    assert len(rows) == min(8, report["retrieval_negative_flips"])


def test_embeddings_overlap_equals_brute_force(comparison):
    old = comparison.arrays.old_embedding.astype(np.float64)
    new = comparison.arrays.new_embedding.astype(np.float64)
    at = open_page("embeddings")
    assert at.title[0].value == "Embeddings"
    shown = {m.label: m.value for m in at.metric}["Overlap"]
    if old.shape[1] != new.shape[1]:
        assert shown == "n/a"
        return
    on = old / np.linalg.norm(old, axis=1, keepdims=True)
    nn = new / np.linalg.norm(new, axis=1, keepdims=True)
    best = np.argmax(nn @ on.T, axis=1)  # first maximum = lowest index on ties
    expected = float(np.mean(best == np.arange(len(best))))
    assert shown == f"{100 * expected:.2f} %"
    assert comparison.to_report()["embedding_overlap"] == pytest.approx(expected, abs=1e-12)  # the JSON carries it
    assert len(at.get("plotly_chart")) == 1


def test_embeddings_layouts_and_colours_render(comparison):
    at = open_page("embeddings")
    at.radio(key="w_emb_colour").set_value("flip status").run()
    check(at.toggle(key="w_emb_lines").set_value(True).run())
    check(at.radio(key="w_emb_layout").set_value("side by side").run())
    assert len(at.get("plotly_chart")) == 1


def _chart_trace_names(at) -> set[str]:
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {t.get("name") for t in spec["data"]}


def test_layout_colour_and_lines_survive_a_page_switch_and_are_in_the_link(comparison):
    at = open_page("embeddings")
    at.radio(key="w_emb_colour").set_value("flip status").run()
    at.toggle(key="w_emb_lines").set_value(True).run()
    check(at.radio(key="w_emb_layout").set_value("side by side").run())
    qp = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert (qp.get("layout"), qp.get("colour"), qp.get("lines")) == ("side", "flip", "1")
    for page in ("overview_page.py", "embeddings_page.py"):
        goto(at, page)
    assert at.radio(key="w_emb_layout").value == "side by side"
    assert at.radio(key="w_emb_colour").value == "flip status"
    assert at.toggle(key="w_emb_lines").value is True
    assert "negative flip" in {n.split(",")[0].strip() for n in _chart_trace_names(at) if n}


def test_a_link_opens_the_embeddings_view_it_names(comparison):
    at = run_app({"page": "embeddings", "layout": "side", "colour": "class", "lines": "bogus"})
    assert at.radio(key="w_emb_layout").value == "side by side"
    assert at.radio(key="w_emb_colour").value == "class"
    assert at.toggle(key="w_emb_lines").value is False
    odd = run_app({"page": "embeddings", "layout": "<script>", "colour": "nope"})
    assert odd.radio(key="w_emb_colour").value == "model"


def test_selected_points_give_unique_ids_in_order():
    from graceful_core.report.figures import selected_ids

    pts = [{"customdata": ["b", "old"]}, {"customdata": ["a", "new"]}, {"customdata": ["b", "new"]}, {"x": 1}]
    assert selected_ids(pts) == ["b", "a"]
