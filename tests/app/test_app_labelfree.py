"""The app on a comparison without labels: the Overview shows churn and says what is missing; other pages say why they are empty."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.apptest import ROOT, goto, run_app

PRED = ROOT / "sample_data" / "predictions"


@pytest.fixture()
def unlabelled_pair(tmp_path, monkeypatch):
    paths = []
    for name in ("old", "new"):
        df = pd.read_csv(PRED / f"{name}.csv", dtype={"id": str})
        out = tmp_path / f"{name}.csv"
        df.drop(columns=["label"]).to_csv(out, index=False)
        paths.append(out)
    monkeypatch.setenv("GRACEFUL_APP_OLD", str(paths[0]))
    monkeypatch.setenv("GRACEFUL_APP_NEW", str(paths[1]))
    old = pd.read_csv(PRED / "old.csv", usecols=["id", "pred"], dtype={"id": str})
    new = pd.read_csv(PRED / "new.csv", usecols=["id", "pred"], dtype={"id": str})
    both = old.merge(new, on="id")
    return int((both["pred_x"] != both["pred_y"]).sum()), len(both)


def test_overview_without_labels_shows_churn_and_says_what_does_not_exist(unlabelled_pair):
    changed, n = unlabelled_pair
    at = run_app(sample=None)
    assert any("without labels" in c.value for c in at.caption)
    assert any(m.label == "Prediction churn" and m.value == f"{100 * changed / n:.2f} %" for m in at.metric)
    warning = " ".join(w.value for w in at.warning)
    assert "No true labels" in warning and "McNemar" in warning
    assert not any(m.label.startswith("Negative flip rate") for m in at.metric)
    at = goto(at, "flips_page.py")
    assert any("compares predictions with true labels" in i.value for i in at.info)


def test_mitigate_without_labels_says_why_there_are_no_remedies_and_keeps_training(unlabelled_pair):
    at = goto(run_app(sample=None), "mitigate_page.py")
    assert not at.exception
    info = " ".join(i.value for i in at.info)
    assert "without labels" in info and "negative flips" in info
    assert not any(c.value.startswith("Each point: the remedy") for c in at.caption)
    assert any(r.label == "Method" for r in at.radio), "the training form below still shows"


def test_versions_does_not_call_the_bundled_dataset_the_comparisons_when_the_tables_have_no_images(unlabelled_pair):
    at = goto(run_app(sample=None), "versions_page.py")
    dataset = [c.value for c in at.caption if c.value.startswith("Dataset:")]
    assert dataset and "bundled" in dataset[0], dataset
    assert "the current comparison's" not in dataset[0]


def test_the_sidebar_offers_the_label_free_html_report(unlabelled_pair):
    """The HTML download of a comparison without labels holds the label-free sections (not the labelled report's)."""
    at = run_app(sample=None)
    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert {"Download report (JSON)", "Download per-sample table (CSV)", "Download report (HTML)"} <= set(buttons)
    assert "prediction churn" in buttons["Download report (HTML)"].help
    assert "negative flips" not in buttons["Download report (HTML)"].help
