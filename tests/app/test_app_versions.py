"""AppTest of the Versions page: the numbers shown equal graceful_core.comparing.lineage's report.

The expected report is computed here with ``model_matrix_report`` on the bundled files and
formatted in the test (``f"{100 * x:.2f} %"``), independently of the page's formatting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apptest import ROOT, check, run_app

MODELS = ROOT / "sample_data" / "models"
DATA = ROOT / "sample_data" / "digits" / "test"
CHAIN = ["old.pt", "new.pt", "v3.pt", "edge.pt"]


def _report(models: list[str]) -> dict:
    from graceful_core.comparing.lineage import model_matrix_report

    if not DATA.is_dir() or not all((MODELS / m).is_file() for m in models):
        pytest.skip("bundled sample models/digits are missing")
    return model_matrix_report([str(MODELS / m) for m in models], DATA).to_report()


@pytest.fixture(scope="module")
def report():
    return _report(CHAIN)


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def run_versions(query: dict | None = None):
    return run_app(query, page="versions_page.py")


NFR_COL = "Negative flip rate: old \\ new"
BTC_COL = "Backward trust compatibility: old \\ new"
CROSS_COL = "Cross-test Hit@1: query \\ gallery"


def frames(at) -> dict:
    """The page's dataframes, by the name of their first column."""
    return {str(d.value.columns[0]): d.value for d in at.dataframe}


def test_default_chain_numbers_equal_the_core_report(report):
    at = run_versions()
    assert at.title[0].value == "Versions"
    assert list(at.multiselect(key="w_versions").value) == CHAIN
    tables = frames(at)
    models = tables["model"]
    assert list(models["model"]) == CHAIN
    assert list(models["accuracy"]) == [pct(a) for a in report["accuracy"]]
    assert list(models["self-test Hit@1"]) == [pct(a) for a in report["self_top1"]]
    assert list(models["old.pt right, this wrong"]) == [str(x) for x in report["lineage"]["regressions_from_first"]]
    assert list(models["ever wrong since old.pt"]) == [str(x) for x in report["lineage"]["ever_regressed_from_first"]]
    for first_col, key in (
        (NFR_COL, "negative_flip_rate"),
        (BTC_COL, "backward_trust_compatibility"),
        (CROSS_COL, "cross_top1"),
    ):
        df = tables[first_col]
        assert list(df[first_col]) == CHAIN
        for i, row in enumerate(report[key]):
            assert [df[c].iloc[i] for c in CHAIN] == [pct(x) for x in row], (key, i)
    md = " ".join(m.value for m in at.markdown)
    assert f"**4 models** on **{report['n_samples']} images**" in md
    for s in report["can_share_index"]:
        assert f"**{s['query']} → {s['gallery']}**: {pct(s['cross_top1'])}" in md
    caps = " ".join(c.value for c in at.caption)
    last = report["lineage"]["regressions_from_first"][-1]
    assert f"Regressions from old.pt: {last} image" in caps and "under edge.pt" in caps


def test_every_subheader_has_help():
    at = run_versions()
    assert len(at.subheader) >= 5
    assert all(h.proto.help for h in at.subheader), [h.value for h in at.subheader if not h.proto.help]


def test_reordering_the_selection_changes_the_lineage():
    at = run_versions()
    chosen = ["v3.pt", "edge.pt", "new-bct.pt"]
    check(at.multiselect(key="w_versions").set_value(chosen).run())
    expected = _report(chosen)
    models = frames(at)["model"]
    assert list(models["model"]) == chosen
    assert list(models["v3.pt right, this wrong"]) == [str(x) for x in expected["lineage"]["regressions_from_first"]]
    nfr = frames(at)[NFR_COL]
    assert [nfr[c].iloc[0] for c in chosen] == [pct(x) for x in expected["negative_flip_rate"][0]]


def test_one_model_asks_for_two():
    at = run_versions()
    check(at.multiselect(key="w_versions").set_value(["new.pt"]).run())
    assert any("at least two" in i.value for i in at.info)


def test_pair_link_opens_any_two_bundled_models_on_the_overview():
    from graceful_core.comparing.sources import compare_sources
    from graceful_ui.bundled_specs import pair_spec
    from graceful_ui.spec_ids import resolve_spec

    spec = resolve_spec("pair:new:v3")
    assert spec is not None and Path(spec.old).name == "new.pt" and Path(spec.new).name == "v3.pt"
    assert pair_spec("old", "v3").id == "sample:v3"  # old.pt pairs are the bundled specs
    assert resolve_spec("pair:new:../../etc/passwd") is None and resolve_spec("pair:new") is None
    at = run_app({"cmp": "pair:new:v3"})
    rep = compare_sources(spec.old, spec.new, spec.data).to_report()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Negative flip rate (NFR)"] == pct(rep["negative_flip_rate"])
    assert shown["Old accuracy"] == pct(rep["old"]["accuracy"])
