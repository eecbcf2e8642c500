"""AppTest of every page: the numbers shown equal the core's report; filters and links work.

The expected values come from the core's report computed here, independently of the
app (``compare_sources(...).to_report()``), and are formatted in the test itself.
"""

from __future__ import annotations

from tests.apptest import goto, grid_ids, run_app, shown_count


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# ---------------------------------------------------------------- overview
def test_overview_shows_the_digits_sample_from_its_link(report):
    at = run_app()  # ?cmp=sample:new (the app's own default, Fashion-MNIST, is tests/app/test_app_fashion.py's)
    assert at.title[0].value == "Overview"
    assert at.query_params.get("cmp") == "sample:new"
    shown = metrics(at)
    expected = {
        "Old accuracy": pct(report["old"]["accuracy"]),
        "New accuracy": pct(report["new"]["accuracy"]),
        "Negative flip rate (NFR)": pct(report["negative_flip_rate"]),
        "Positive flip rate (PFR)": pct(report["positive_flip_rate"]),
        "Backward trust (BTC)": pct(report["backward_trust_compatibility"]),
        "Backward error (BEC)": pct(report["backward_error_compatibility"]),
        "Old-error persistence": pct(report["old_error_persistence"]),
        "Negative flip impact (NFI)": pct(report["negative_flip_impact"]),
        "McNemar p-value": f"{report['mcnemar_p_value']:.3g}",
    }
    rel = report["relative_negative_flip_rate"]
    expected["Relative NFR"] = "n/a" if rel is None else f"{rel:.3f}"
    for label, value in expected.items():
        assert shown[label] == value, label


def test_overview_per_class_table_shows_the_reports_rates_in_percent(report):
    import numpy as np

    at = run_app()
    table = next(d.value for d in at.dataframe if "negative_flip_rate" in d.value.columns)
    assert table["class"].tolist() == [r["class"] for r in report["per_class"]]
    assert table["support"].tolist() == [r["support"] for r in report["per_class"]]
    assert table["negative_flips"].tolist() == [r["negative_flips"] for r in report["per_class"]]
    expected = np.array([100 * r["negative_flip_rate"] for r in report["per_class"]])
    assert np.allclose(table["negative_flip_rate"].to_numpy(dtype=float), expected, rtol=0, atol=1e-9)


def test_overview_states_interval_counts_and_verdict(report):
    at = run_app()
    captions = " ".join(c.value for c in at.caption)
    lo, hi = report["negative_flip_rate_ci95"]
    assert f"95 % CI {pct(lo)} – {pct(hi)}" in captions
    n = report["n_samples"]
    assert f"of all {n} images: {report['n_negative_flips']} go old ✓ → new ✗" in captions
    head = at.subheader[0].value
    assert f"fixes {report['n_positive_flips']} image" in head and f"breaks {report['n_negative_flips']} image" in head
    p, nf, pf = report["mcnemar_p_value"], report["n_negative_flips"], report["n_positive_flips"]
    word = "better" if p < 0.05 and pf > nf else "worse" if p < 0.05 and nf > pf else "not distinguishable"
    colour = {"better": "green", "worse": "red", "not distinguishable": "orange"}[word]
    verdict = next(m.value for m in at.markdown if m.value.startswith("**Significance:**"))
    assert word in verdict and f":{colour}-background[" in verdict
    help_text = next(m.help for m in at.metric if m.label == "Old-error persistence")
    assert "BackwardCompatibilityML" in help_text and "error compatibility score" in help_text


def test_downloads_are_the_report_and_the_sample_table(report, sample_spec):
    import io
    import json

    import pandas as pd

    from graceful_core.comparing.sources import compare_sources
    from graceful_ui import store

    at = run_app()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download report (JSON)", "Download per-sample table (CSV)", "Download report (HTML)"]
    comp = store.load_comparison(sample_spec)
    assert json.loads(store.report_json(comp)) == report
    table = pd.read_csv(io.BytesIO(store.samples_csv(comp)), dtype={"id": str, "label": str})
    spec = sample_spec
    ref = compare_sources(spec.old, spec.new, spec.data).samples()
    assert table["id"].tolist() == ref["id"].tolist()
    assert sorted(table.loc[table["flip"] == "negative flip", "id"]) == report["negative_flips"]


# ------------------------------------------------------------------- flips
def test_flips_grid_defaults_to_negative_flips(report):
    at = goto(run_app(), "flips_page.py")
    assert at.title[0].value == "Flips"
    assert shown_count(at) == len(report["negative_flips"])
    ids = grid_ids(at)
    assert len(ids) == min(24, len(report["negative_flips"]))
    assert set(ids) <= set(report["negative_flips"])


def test_flip_type_and_class_filters_change_the_grid(report):
    at = goto(run_app(), "flips_page.py")
    at.multiselect(key="w_flips").set_value(["positive flip"]).run()
    assert shown_count(at) == len(report["positive_flips"])
    assert set(grid_ids(at)) <= set(report["positive_flips"])
    assert at.query_params.get("flip") == "pos"

    row = max(report["per_class"], key=lambda r: r["support"])
    at.multiselect(key="w_flips").set_value([]).run()
    at.multiselect(key="w_classes").set_value([row["class"]]).run()
    assert shown_count(at) == row["support"]
    # in the class-per-folder layout the id starts with the true class
    assert all(i.split("/")[0] == row["class"] for i in grid_ids(at))
    assert at.query_params.get("cls") == row["class"]


def test_matrix_cell_filter_shows_that_cell(report):
    classes, m = report["classes"], report["transition_matrix"]
    # an off-diagonal cell with images: old predicted a, new predicts b
    a, b = max(((i, j) for i in range(len(m)) for j in range(len(m)) if i != j), key=lambda ij: m[ij[0]][ij[1]])
    at = goto(run_app({"old": classes[a], "new": classes[b], "flip": ""}), "flips_page.py")
    assert shown_count(at) == m[a][b]


def test_grid_is_paginated(report):
    at = goto(run_app({"flip": ""}), "flips_page.py")  # every image
    n = report["n_samples"]
    assert shown_count(at) == n and len(grid_ids(at)) == min(24, n)
    if n > 24:
        first = grid_ids(at)
        at.get("pagination")[0].set_value(2).run()
        second = grid_ids(at)
        assert not set(first) & set(second)
        assert any("Showing **25–" in m.value for m in at.markdown)


def test_bar_click_callback_filters_class_and_flip_type(report):
    """The Plotly bar selection (curve 0 = negative flips) sets class and flip-type filters."""
    row = max(report["per_class"], key=lambda r: r["negative_flips"])
    at = goto(run_app(), "flips_page.py")
    # Same state the on_select callback writes when a bar is clicked.
    at.session_state["classes"], at.session_state["flips"] = [row["class"]], ["negative flip"]
    at.run()
    assert shown_count(at) == row["negative_flips"]


# ------------------------------------------------------------------ sample
def test_sample_page_from_a_deep_link(report):
    sid = report["negative_flips"][0] if report["negative_flips"] else report["positive_flips"][0]
    at = run_app({"page": "sample", "sample": sid, "cmp": "sample:new"})
    assert at.title[0].value == "Sample"
    assert at.selectbox(key="w_sample").value == sid
    text = " ".join(m.value for m in at.markdown)
    assert f"**True label:** {sid.split('/')[0]}" in text
    assert len(at.get("plotly_chart")) == 1  # top-5 of both models
    assert any("nearest to this one" in c.value for c in at.caption)
    assert at.query_params.get("sample") == sid


def test_link_state_is_carried_across_page_switches(report):
    cls = report["classes"][1]
    at = run_app({"cls": cls, "flip": "pos"})
    for page in ("flips_page.py", "sample_page.py", "inputs_page.py", "overview_page.py"):
        goto(at, page)
        assert at.query_params.get("cls") == cls and at.query_params.get("flip") == "pos", page
        assert at.query_params.get("cmp") == "sample:new"
    goto(at, "flips_page.py")
    assert at.multiselect(key="w_classes").value == [cls]


def test_unknown_comparison_link_warns_and_shows_the_sample(tmp_path, monkeypatch):
    from tests.apptest import ROOT

    # a sample folder with digits only, so the default it falls back to is the small digits pair
    for name in ("digits", "models", "predictions"):
        (tmp_path / name).symlink_to(ROOT / "sample_data" / name)
    monkeypatch.setenv("GRACEFUL_SAMPLE_DATA", str(tmp_path))
    at = run_app({"cmp": "upload:doesnotexist"})
    assert any("does not know" in w.value for w in at.warning)
    assert at.metric  # the bundled comparison is still shown


# ------------------------------------------------------------------ inputs
def test_inputs_page_lists_bundled_pairs_and_states_the_upload_limit(sample_spec):
    at = goto(run_app(), "inputs_page.py")
    assert at.radio(key="w_bundled").value == "sample:new"
    text = " ".join(m.value for m in at.markdown)
    assert "up to 200 MB" in text
    assert len(at.get("file_uploader")) == 5  # old, new, dataset, a manifest's images, the optional reference


def test_bad_upload_shows_the_error_and_keeps_the_previous_result(report):
    at = goto(run_app(), "inputs_page.py")
    at.file_uploader(key="up_old").upload("broken-model.pt", b"this is not a TorchScript archive").run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("broken-model.pt: "), errors
    assert at.button(key="btn_compare").disabled
    # the previous comparison stays on screen, and on the overview
    assert any("Now showing" in i.value for i in at.info)
    goto(at, "overview_page.py")
    assert metrics(at)["Negative flip rate (NFR)"] == pct(report["negative_flip_rate"])


def test_hostile_link_values_are_shown_literally_or_dropped(sample_spec):
    """A shared link cannot inject Markdown links/images, and odd values do not crash the session."""
    from graceful_ui.fmt import md

    assert "](" not in md("![x](http://evil.example/b.png)").replace("\\](", "")
    at = run_app(
        {"cmp": sample_spec.id, "old": "zzz", "new": "[x](http://evil.example)", "p": "²"}, page="flips_page.py"
    )
    texts = [m.value for m in at.markdown] + [i.value for i in at.info] + [c.value for c in at.caption]
    assert not any("](http" in t for t in texts)
    assert shown_count(at) is not None  # the grid is drawn, without the bogus cell filter


def test_sort_order_survives_a_page_switch_and_is_in_the_link(sample_spec):
    at = run_app({"cmp": sample_spec.id})
    goto(at, "flips_page.py")
    at.selectbox(key="w_sort").set_value("id").run()
    first = grid_ids(at)
    assert first == sorted(first)
    assert at.query_params.get("sort") in ("id", ["id"])
    goto(at, "sample_page.py")
    goto(at, "flips_page.py")
    assert at.selectbox(key="w_sort").value == "id" and grid_ids(at) == first


def test_pages_live_in_app_pages_not_in_a_pages_folder():
    """Streamlit 1.67 treats a ``pages/`` folder next to app.py as the old multipage layout and then answers a
    deep link such as ``/flips?cmp=...`` with "Page not found" (README, "How it works")."""
    from tests.apptest import ROOT

    assert not (ROOT / "pages").exists(), "move the pages to app_pages/: a pages/ folder breaks deep links"
    assert sorted(p.name for p in (ROOT / "app_pages").glob("*_page.py"))
