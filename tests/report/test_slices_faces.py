"""Regression slices in the HTML report and in the app (AppTest): what is shown equals the core's
slices, recomputed here with SciPy and NumPy; user values stay text; the Flips filter follows the
slice and the URL.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.stats import false_discovery_control, fisher_exact

from graceful_core.comparing.predictions import compare_predictions
from graceful_core.io.metadata import SampleMetadata
from graceful_core.report.html import render_html_report
from graceful_core.results.comparison import ComparisonInputs
from graceful_core.types import Predictions
from tests.apptest import check, goto, pca_instead_of_umap, run_app
from tests.helpers import parse, planted_tables

HOSTILE_VALUE = "<script>alert(1)</script>"


class FakeDataset:
    """Duck-typed dataset for the report's thumbnails: ``ids`` and ``load_image``."""

    def __init__(self, ids):
        self.ids = list(ids)

    def load_image(self, i):
        return Image.fromarray(np.full((8, 8), 10 + i % 200, dtype=np.uint8), mode="L")


def _hostile_site_comparison():
    """80 samples; the new model breaks 10 of the 20 at the site named ``HOSTILE_VALUE``, 1 elsewhere."""
    n = 80
    ids = np.array([f"s{i:02d}" for i in range(n)], dtype=object)
    y = np.arange(n) % 2
    site = np.array([HOSTILE_VALUE] * 20 + ["plain"] * 60, dtype=object)
    new_pred = y.copy()
    new_pred[:10] = 1 - y[:10]
    new_pred[50] = 1 - y[50]
    old = Predictions(
        ids=ids, pred=y.copy(), classes=["a", "b"], labels=y, extra={"metadata": SampleMetadata(("site",), (site,))}
    )
    new = Predictions(ids=ids, pred=new_pred, classes=["a", "b"])
    return compare_predictions(old, new, inputs=ComparisonInputs(dataset=FakeDataset(ids)))


def _section(doc: str) -> str:
    """The report's regression-slice section (up to the next h2)."""
    start = doc.index("<h2>Regression slices</h2>")
    return doc[start : doc.index("<h2>", start + 5)]


def test_the_report_lists_a_significant_slice_with_its_flips_and_its_value_as_text():
    comp = _hostile_site_comparison()
    doc = render_html_report(comp, generated_at=0)
    assert HOSTILE_VALUE not in doc
    section = _section(doc)
    assert "site = &lt;script&gt;alert(1)&lt;/script&gt;" in section
    text = " ".join(parse(section).text)
    assert f"site = {HOSTILE_VALUE}" in text  # shown literally
    tags = parse(doc).tags
    assert [t for t, _ in tags].count("script") == 2 + doc.count("Plotly.newPlot(")
    # the numbers: SciPy's one-sided Fisher p on [[10, 10], [1, 59]], BH over the 2 slices
    p = fisher_exact([[10, 10], [1, 59]], alternative="greater").pvalue
    p_other = fisher_exact([[1, 59], [10, 10]], alternative="greater").pvalue
    adj = false_discovery_control([p, p_other], method="bh")[0]
    assert f"{p:.3g}" in text and f"{adj:.3g}" in text and "50.00 %" in text and "1.67 %" in text
    assert "1 of 2 slices has significantly more negative flips than the rest" in text
    # examples: negative flips of the slice (no class scores: in sample order), at most 6
    alts = [a["alt"] for t, a in parse(section).tags if t == "img"]
    assert alts == [f"s{i:02d}" for i in range(6)]


def test_the_report_shows_a_significant_clusters_central_images():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    emb = np.vstack([rng.normal(c, 1.0, (40, 3)) for c in centres]).astype(np.float32)
    n = len(emb)
    ids = np.array([f"e{i:03d}" for i in range(n)], dtype=object)
    y = np.repeat([0, 1, 2], 40)
    new_pred = y.copy()
    broken = np.arange(40, 60)  # half of the second group regresses
    new_pred[broken] = (y[broken] + 1) % 3
    old = Predictions(ids=ids, pred=y.copy(), classes=["x", "y", "z"], labels=y, embedding=emb)
    new = Predictions(ids=ids, pred=new_pred, classes=["x", "y", "z"])
    comp = compare_predictions(old, new, with_compatibility=False, inputs=ComparisonInputs(dataset=FakeDataset(ids)))
    rep = comp.regression_slices
    top = rep.slices[0]
    assert top.kind == "embedding" and top.is_significant
    members = np.flatnonzero(rep.clustering.assignment == top.value)
    assert set(members) == set(range(40, 80))  # the second group is one cluster
    # its 6 central images: the members nearest the mean of their L2-normalised embeddings
    z = emb[members] / np.linalg.norm(emb[members], axis=1, keepdims=True)
    d = ((z - z.mean(0)) ** 2).sum(1)
    nearest = members[np.argsort(d, kind="stable")[:6]]
    assert set(top.cluster.central_indices) == set(nearest.tolist())
    section = _section(render_html_report(comp, generated_at=0))
    alts = [a["alt"] for t, a in parse(section).tags if t == "img"]
    assert alts == [ids[i] for i in top.cluster.central_indices]
    assert "images nearest the cluster" in section and top.title in section


def test_the_report_says_when_no_slice_is_significant():
    ids = np.array([f"s{i}" for i in range(40)], dtype=object)
    y = np.zeros(40, dtype=np.int64)
    new_pred = y.copy()
    new_pred[[3, 30]] = 1
    site = np.array(["a", "b"] * 20, dtype=object)
    old = Predictions(
        ids=ids, pred=y.copy(), classes=["a", "b"], labels=y, extra={"metadata": SampleMetadata(("site",), (site,))}
    )
    comp = compare_predictions(old, Predictions(ids=ids, pred=new_pred, classes=["a", "b"]))
    text = " ".join(parse(_section(render_html_report(comp, generated_at=0))).text)
    assert "no slice has significantly more negative flips than the rest (2 slices tested" in text
    assert "The most concentrated slice:" in text


def test_no_candidate_no_section():
    ids = np.array(["a", "b", "c"], dtype=object)
    old = Predictions(ids=ids, pred=np.array([0, 1, 0]), classes=["x", "y"], labels=np.array([0, 1, 1]))
    comp = compare_predictions(old, Predictions(ids=ids, pred=np.array([1, 1, 1]), classes=["x", "y"]))
    assert "Regression slices" not in render_html_report(comp, generated_at=0)


# ------------------------------------------------------------------ the app
@pytest.fixture(scope="module")
def planted_files(tmp_path_factory):
    """Planted tables (site "harbour" regresses) and the counts to expect."""
    old, new, truth = planted_tables(tmp_path_factory.mktemp("app-planted"))
    harbour = truth[truth["site"] == "harbour"]
    return {
        "old": old,
        "new": new,
        "harbour_flips": int(harbour["flip"].sum()),
        "harbour_size": len(harbour),
        "flips": int(truth["flip"].sum()),
    }


@pytest.fixture()
def planted_app(planted_files, monkeypatch):
    """The app opened (as ``graceful app OLD NEW``) on the planted tables, for this test only."""
    monkeypatch.setenv("GRACEFUL_APP_OLD", str(planted_files["old"]))
    monkeypatch.setenv("GRACEFUL_APP_NEW", str(planted_files["new"]))
    monkeypatch.delenv("GRACEFUL_APP_DATA", raising=False)
    from graceful_ui.bundled_specs import cli_spec

    return {**planted_files, "spec": cli_spec()}


def _count(at) -> int | None:
    from tests.apptest import shown_count

    return shown_count(at)


def test_the_slices_page_lists_every_slice_most_significant_first(planted_app):
    at = run_app({"cmp": planted_app["spec"].id}, page="slices_page.py")
    assert at.title[0].value == "Slices"
    text = " ".join(m.value for m in at.markdown)
    assert "1 of 8 slices has significantly more negative flips than the rest" in text
    table = at.dataframe[0].value
    assert len(table) == 8 and table["title"].iloc[0] == "site = harbour"
    assert set(table["title"]) == {f"site = {s}" for s in ("north", "south", "harbour", "airport", "depot")} | {
        f"camera = {c}" for c in "ABC"
    }
    assert table["negative_flips"].iloc[0] == planted_app["harbour_flips"]
    assert len(at.get("plotly_chart")) == 1


def test_choosing_a_slice_puts_it_in_the_link_and_filters_the_flips_grid(planted_app):
    at = run_app({"cmp": planted_app["spec"].id}, page="slices_page.py")
    at.session_state["slice"] = "site=harbour"  # what a click on the bar or the row writes
    check(at.run())
    assert at.query_params.get("slice") == "site=harbour"
    assert any("site = harbour" in m.value for m in at.markdown)
    check(at.button(key="btn_slice_flips").click().run())  # "Show its images in Flips"
    assert at.title[0].value == "Flips"
    assert _count(at) == planted_app["harbour_flips"]  # the grid's default: negative flips
    assert any("site = harbour" in i.value for i in at.info)
    assert at.selectbox(key="w_slice").value == "site=harbour"
    for page in ("overview_page.py", "flips_page.py"):  # the filter survives page switches
        goto(at, page)
    assert at.query_params.get("slice") == "site=harbour" and _count(at) == planted_app["harbour_flips"]
    check(at.button(key="btn_clear_slice").click().run())
    assert _count(at) == planted_app["flips"] and "slice" not in at.query_params


def test_a_link_with_a_slice_opens_the_filtered_grid_and_a_bad_one_is_dropped(planted_app):
    cmp = planted_app["spec"].id
    at = run_app({"cmp": cmp, "slice": "site=harbour", "flip": ""}, page="flips_page.py")
    assert _count(at) == planted_app["harbour_size"]  # every image of the slice (no flip-type filter)
    assert at.query_params.get("slice") == "site=harbour"
    bad = run_app({"cmp": cmp, "slice": f"site={HOSTILE_VALUE}"}, page="flips_page.py")
    assert "slice" not in bad.query_params and _count(bad) == planted_app["flips"]
    chosen = run_app({"cmp": cmp}, page="flips_page.py")
    check(chosen.selectbox(key="w_slice").set_value("camera=A").run())
    assert chosen.query_params.get("slice") == "camera=A"


def test_the_bundled_sample_has_cluster_slices(report):
    at = run_app(page="slices_page.py")
    assert at.title[0].value == "Slices"
    # the bundled models export embeddings and no metadata: the clusters are the candidates
    titles = list(at.dataframe[0].value["title"])
    assert titles == [
        f"cluster {s['value']}" + titles[i][len(f"cluster {s['value']}") :]
        for i, s in enumerate(report["regression_slices"])
    ]
    assert all(t.startswith("cluster ") for t in titles)


@pytest.fixture()
def _fast_projection(monkeypatch):
    pca_instead_of_umap(monkeypatch)
    yield


def test_the_embeddings_map_colours_by_cluster_from_a_link(_fast_projection, report):
    at = run_app({"page": "embeddings", "colour": "cluster"})
    assert at.radio(key="w_emb_colour").value == "cluster"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = {t.get("name", "").split(",")[0] for t in spec["data"] if t.get("name")}
    n_clusters = sum(1 for s in report["regression_slices"] if s["kind"] == "embedding")
    assert len(names) == n_clusters and all(n.startswith("cluster ") for n in names)
    check(at.radio(key="w_emb_layout").set_value("side by side").run())
    assert at.query_params.get("colour") == "cluster"
