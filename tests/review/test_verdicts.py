"""Flip verdicts: kept with the review in SQLite, two writers at once lose nothing, exported everywhere."""

import json
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from graceful_core.comparing.predictions import compare_predictions
from graceful_core.report import label_review
from graceful_core.report.html import render_html_report
from graceful_core.review import store as review
from graceful_core.review import verdicts
from graceful_core.types import Predictions
from tests.helpers import run_cli


def _writer(db: str, who: str, n: int) -> None:
    for i in range(n):
        verdicts.set_verdict("shared", f"{who}-{i}", verdicts.FLIP_VERDICTS[i % 4], note=f"by {who}", author=who, db=db)
        verdicts.set_verdict("shared", "both", "real regression" if who == "a" else "label wrong", author=who, db=db)


def test_two_sessions_writing_at_once_keep_every_verdict(tmp_path):
    db = str(tmp_path / "r.sqlite")
    review.add_note("shared", "the review itself", db=db)  # the same file holds the review
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w, 60)) for w in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = verdicts.get_verdicts("shared", db=db)
    want = {f"{w}-{i}": verdicts.FLIP_VERDICTS[i % 4] for w in ("a", "b") for i in range(60)}
    assert {k: v.verdict for k, v in got.items() if k != "both"} == want
    with sqlite3.connect(db) as con:  # independently of get_verdicts: every write is a row
        assert con.execute("SELECT COUNT(*) FROM flip_verdict WHERE key = 'shared'").fetchone()[0] == 240
        last = con.execute(
            "SELECT verdict FROM flip_verdict WHERE sample_id = 'both' ORDER BY rowid DESC LIMIT 1"
        ).fetchone()[0]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert got["both"].verdict == last  # the image both marked: the last committed write is the verdict
    assert [n.text for n in review.get_review("shared", db=db).notes] == ["the review itself"]


def test_latest_wins_clear_and_refusals(tmp_path):
    db = tmp_path / "r.sqlite"
    verdicts.set_verdict("k", "x", "ambiguous", db=db)  # control
    verdicts.set_verdict("k", "x", "label wrong", corrected_label="Coat", note="  a coat  ", db=db)
    v = verdicts.get_verdicts("k", db=db)["x"]
    assert (v.verdict, v.corrected_label, v.note) == ("label wrong", "Coat", "a coat")
    verdicts.set_verdict("k", "x", "acceptable", corrected_label="Coat", db=db)
    assert verdicts.get_verdicts("k", db=db)["x"].corrected_label == ""  # only "label wrong" keeps one
    verdicts.clear_verdict("k", "x", db=db)
    assert verdicts.get_verdicts("k", db=db) == {} and verdicts.get_verdicts("other", db=db) == {}
    with pytest.raises(ValueError, match="verdict must be one of"):
        verdicts.set_verdict("k", "x", "maybe", db=db)
    with pytest.raises(ValueError, match="sample id"):
        verdicts.set_verdict("k", "", "ambiguous", db=db)
    with pytest.raises(ValueError, match="key"):
        verdicts.set_verdict("", "x", "ambiguous", db=db)
    with pytest.raises(ValueError, match="at most"):
        verdicts.set_verdict("k", "x", "ambiguous", note="n" * (review.MAX_NOTE_CHARS + 1), db=db)


def _comp(key: str):
    y = np.arange(40) % 2
    ids = np.array([f"s{i:02d}" for i in range(40)], dtype=object)
    old_pred = y.copy()
    new_pred = y.copy()
    new_pred[:6] = 1 - y[:6]  # s00..s05: negative flips
    old = Predictions(ids=ids, pred=old_pred, classes=["cat", "dog"], labels=y)
    new = Predictions(ids=ids, pred=new_pred, classes=["cat", "dog"])
    comp = compare_predictions(old, new, with_slices=False)
    object.__setattr__(comp, "key", key)  # a content key, as files would give
    return comp


def test_counts_nfr_json_html_and_corrected_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    comp = _comp("k-html")
    for sid, v in (
        ("s00", "label wrong"),
        ("s01", "label wrong"),
        ("s02", "real regression"),
        ("s03", "ambiguous"),
        ("s20", "label wrong"),
    ):  # s20 is no flip: it still leaves the rate
        verdicts.set_verdict(comp.key, sid, v, note=f"<i>why {sid}</i>")
    got = label_review.load_verdicts(comp)
    c = label_review.counts_of(comp, got)
    assert (c.n_negative_flips, c.reviewed) == (6, 4)
    assert c.by_verdict == {"label wrong": 2, "real regression": 1, "ambiguous": 1}
    assert c.negative_flip_rate_excluding_label_wrong == pytest.approx((6 - 2) / (40 - 3))
    rep = label_review.flip_verdicts_report(comp)
    assert json.loads(json.dumps(rep))["counts"]["by_verdict"] == {
        "real regression": 1,
        "label wrong": 2,
        "ambiguous": 1,
        "acceptable": 0,
    }
    assert [v["id"] for v in rep["verdicts"]] == ["s00", "s01", "s02", "s03", "s20"]
    html = render_html_report(comp, verdicts=got)
    assert "of 6 negative flips: 4 reviewed: 1 real regression, 2 label wrong, 1 ambiguous" in html
    assert "<i>why s00</i>" not in html and "&lt;i&gt;why s00&lt;/i&gt;" in html  # notes are escaped
    assert "No verdict on any flipped image yet." in render_html_report(comp, verdicts={})
    csv = verdicts.corrected_labels_csv(got, {"s00": "cat"}, {"s00": "dog"}).decode().splitlines()
    assert csv[0] == "id,given_label,corrected_label,note,author" and csv[1].startswith("s00,cat,dog,")
    assert len(csv) == 4  # the three "label wrong"


# ------------------------------------------------------------------ the app (two sessions, one store)
def _one(elements, label):
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, [e.label for e in elements]
    return found[0]


def test_two_app_sessions_mark_flips_and_a_third_sees_both(tmp_path, monkeypatch):
    from graceful_ui.bundled_specs import bundled_specs
    from tests.apptest import check, run_app

    if not any(s.id == "sample:new" for s in bundled_specs()):
        pytest.skip("bundled sample data is missing")
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    from graceful_ui import store
    from graceful_ui.spec_ids import resolve_spec

    a = run_app(page="sample_page.py")
    comp = store.load_comparison(resolve_spec("sample:new"))  # the comparison the page shows (same server cache)
    neg = list(comp.flip_ids.negative)
    assert len(neg) >= 2 and comp.label_issues is not None
    b = run_app(page="sample_page.py")
    for at, sid, verdict in ((a, neg[0], "label wrong"), (b, neg[1], "real regression")):
        at.session_state["sample"] = sid
        check(at.run())
        _one(at.selectbox, "Verdict").set_value(verdict).run()
        if verdict == "label wrong":  # the corrected label defaults to the class both models prefer
            suggested = comp.classes[int(comp.label_issues.suggested[comp.arrays.row_of[sid]])]
            assert _one(at.selectbox, "Corrected label").value == suggested
        _one(at.text_input, "Note (optional)").input(f"note on {sid}").run()
        check(_one(at.button, "Save verdict").click().run())
        assert any(s.value == f"Verdict saved on {sid}: {verdict}." for s in at.success), [s.value for s in at.success]
    got = verdicts.get_verdicts(comp.key, db=tmp_path / "reviews.sqlite")
    assert {k: (v.verdict, v.note) for k, v in got.items()} == {
        neg[0]: ("label wrong", f"note on {neg[0]}"),
        neg[1]: ("real regression", f"note on {neg[1]}"),
    }
    c = run_app()  # a third session, on the Overview
    text = " ".join(m.value for m in c.markdown).replace("\\", "")  # the page escapes Markdown
    assert f"of {len(neg)} negative flips: 2 reviewed: 1 real regression, 1 label wrong" in text, text


def test_cli_json_summary_and_html_carry_label_issues_and_verdicts(tmp_path):
    """``compare --json --html`` of two tables: label issues always, verdicts once someone gave one."""

    import pandas as pd

    from graceful_core.comparing.sources import comparison_key

    rng = np.random.default_rng(1)
    n, classes = 90, ["ant", "bee", "cat"]
    y = np.arange(n) % 3
    paths = []
    for side in ("old", "new"):
        logits = rng.normal(size=(n, 3)) + 3 * np.eye(3)[y]
        logits[8] = [6.0, 0.0, 0.0]  # s008 is labelled cat; both models are sure it is an ant
        p = tmp_path / f"{side}.parquet"
        pd.DataFrame(
            {
                "id": [f"s{i:03d}" for i in range(n)],
                "label": [classes[k] for k in y],
                "pred": [classes[k] for k in logits.argmax(1)],
                "logits": list(logits),
            }
        ).to_parquet(p)
        paths.append(p)

    def cli():
        cache = tmp_path / "cache"
        run_cli(
            "compare", *paths, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html", cache=cache, check=True
        )
        out = run_cli("compare", *paths, cache=cache, check=True).stdout
        return json.loads((tmp_path / "r.json").read_text()), (tmp_path / "r.html").read_text(), out

    rep, html, out = cli()
    assert "s008" in rep["label_issues"]["flagged"] and "flip_verdicts" not in rep
    assert "label issues: " in out and "Label issues and flip verdicts" in html
    key = comparison_key(str(paths[0]), str(paths[1]), None)
    neg = rep["negative_flips"]
    assert neg, "the case needs a negative flip"
    verdicts.set_verdict(key, neg[0], "label wrong", note="relabel", db=tmp_path / "cache" / "reviews.sqlite")
    rep, html, out = cli()
    assert rep["flip_verdicts"]["verdicts"][0]["id"] == neg[0]
    assert rep["flip_verdicts"]["counts"]["by_verdict"]["label wrong"] == 1
    assert f"of {len(neg)} negative flips: 1 reviewed: 1 label wrong" in html
    assert f"of {len(neg)} negative flips: 1 reviewed: 1 label wrong" in out
