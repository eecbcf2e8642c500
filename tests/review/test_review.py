"""Review state: survives reopening and restarts, concurrent writers never lose a note, and the app.

The app part is an AppTest of the Overview page: set the status and add a note, then a
fresh AppTest (a new session, as after a server restart) with the same cache folder
shows both; the SQLite file itself is read back independently with ``sqlite3``.
"""

import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from graceful_core.review import store as review
from tests.apptest import ROOT, run_app


def test_default_is_needs_review(tmp_path):
    r = review.get_review("k1", db=tmp_path / "r.sqlite")
    assert r.status == "needs review" and r.notes == ()


def test_status_and_notes_persist(tmp_path):
    db = tmp_path / "r.sqlite"
    review.set_status("k1", "approved", author="ana", db=db)
    review.add_note("k1", "flips in class 8 are all smudged scans", author="ana", db=db)
    review.add_note("k2", "other comparison", db=db)
    r = review.get_review("k1", db=db)  # a fresh connection, as after a restart
    assert r.status == "approved" and r.status_by == "ana"
    assert [n.text for n in r.notes] == ["flips in class 8 are all smudged scans"]
    review.set_status("k1", "rejected", db=db)
    assert review.get_review("k1", db=db).status == "rejected"


def test_bad_status_and_empty_note(tmp_path):
    with pytest.raises(ValueError, match="status must be one of"):
        review.set_status("k", "maybe", db=tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="empty note"):
        review.add_note("k", "   ", db=tmp_path / "r.sqlite")


def _writer(db: str, who: str, n: int) -> None:
    try:
        for i in range(n):
            review.add_note("shared", f"{who}-{i}", author=who, db=db)
    except BaseException:  # a spawned child's stderr is not captured: keep its traceback for the assertion
        Path(f"{db}.{who}.err").write_text(traceback.format_exc())
        raise


def test_concurrent_writers_lose_nothing(tmp_path):
    db = str(tmp_path / "r.sqlite")
    review.get_review("shared", db=db)  # create the schema first
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w, 50)) for w in ("a", "b")]
    for p in procs:
        p.start()
    for w, p in zip(("a", "b"), procs):
        p.join(120)
        err = Path(f"{db}.{w}.err")
        assert p.exitcode == 0, err.read_text() if err.exists() else f"writer {w} exit code {p.exitcode}"
    notes = review.get_review("shared", db=db).notes
    assert len(notes) == 100
    assert {n.text for n in notes} == {f"{w}-{i}" for w in ("a", "b") for i in range(50)}
    for w in ("a", "b"):  # each writer's notes keep their own order
        assert [n.text for n in notes if n.author == w] == [f"{w}-{i}" for i in range(50)]
    with sqlite3.connect(db) as con:  # independently of get_review
        assert con.execute("SELECT COUNT(*) FROM note WHERE key = 'shared'").fetchone()[0] == 100
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_survives_a_new_process(tmp_path):
    db = tmp_path / "r.sqlite"
    review.set_status("k", "rejected", author="ana", db=db)
    review.add_note("k", "breaks class 3", db=db)
    code = (
        "import sys; from graceful_core.review import store as review; r = review.get_review('k', db=sys.argv[1]); "
        "print(r.status, '|', r.status_by, '|', ';'.join(n.text for n in r.notes))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], cwd=ROOT, capture_output=True, text=True, timeout=600, check=True
    ).stdout.strip()
    assert out == "rejected | ana | breaks class 3"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from graceful_core.review import store as review; "
            "review.add_note('k', 'from another process', db=sys.argv[1])",
            str(db),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    assert [n.text for n in review.get_review("k", db=db).notes] == ["breaks class 3", "from another process"]


def test_latest_status_wins_and_history_is_kept(tmp_path):
    db = tmp_path / "r.sqlite"
    for s in ("approved", "rejected", "needs review", "approved"):
        review.set_status("k", s, db=db)
    assert review.get_review("k", db=db).status == "approved"
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("SELECT status FROM status ORDER BY rowid")] == [
            "approved",
            "rejected",
            "needs review",
            "approved",
        ]


def test_bad_key_and_long_note(tmp_path):
    db = tmp_path / "r.sqlite"
    with pytest.raises(ValueError, match="key"):
        review.add_note("", "x", db=db)
    with pytest.raises(ValueError, match="key"):
        review.get_review(None, db=db)
    with pytest.raises(ValueError, match="at most"):
        review.add_note("k", "x" * (review.MAX_NOTE_CHARS + 1), db=db)
    review.add_note("k", "  padded  ", db=db)
    assert review.get_review("k", db=db).notes[0].text == "padded"


# ------------------------------------------------------------------ the app
@pytest.fixture(scope="module")
def app_cache(tmp_path_factory):
    """A fresh cache folder for the app runs (so the review starts empty)."""
    old = os.environ.get("GRACEFUL_CACHE_DIR")
    path = tmp_path_factory.mktemp("review-app-cache")
    os.environ["GRACEFUL_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GRACEFUL_CACHE_DIR", None)
    else:
        os.environ["GRACEFUL_CACHE_DIR"] = old


def _one(elements, label):
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, [e.label for e in elements]
    return found[0]


def test_app_review_survives_a_restart(app_cache):
    from graceful_ui.bundled_specs import bundled_specs

    if not any(s.id == "sample:new" for s in bundled_specs()):
        pytest.skip("bundled sample data is missing")
    note = "Flips in class 8 look like *smudged* scans <b>check</b>"
    at = run_app()
    assert _one(at.selectbox, "Review status").value == "needs review"
    assert any("No notes yet." in c.value for c in at.caption)
    _one(at.text_input, "Your name (optional)").input("ana").run()
    _one(at.selectbox, "Review status").set_value("approved").run()
    assert not at.exception
    assert any(s.value == "Status saved: approved." for s in at.success)
    _one(at.text_area, "Note").input(note).run()
    _one(at.button, "Add note").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert _one(at.text_area, "Note").value == ""  # cleared after adding
    assert any(s.value == "Note added." for s in at.success)

    # the SQLite file, read independently
    with sqlite3.connect(app_cache / "reviews.sqlite") as con:
        assert con.execute("SELECT status, author FROM status").fetchall() == [("approved", "ana")]
        assert con.execute("SELECT text, author FROM note").fetchall() == [(note, "ana")]

    fresh = run_app()  # a new session on the same cache folder: a simulated restart
    assert _one(fresh.selectbox, "Review status").value == "approved"
    assert any(t.value == f"{note}\n— ana" for t in fresh.text), [t.value for t in fresh.text]
    assert any(m.value == "**Notes** (1)" for m in fresh.markdown)
    _one(fresh.button, "Add note").click().run()  # an empty note is refused, not saved
    assert any("empty note" in w.value for w in fresh.warning)
    with sqlite3.connect(app_cache / "reviews.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM note").fetchone()[0] == 1


def test_downloaded_report_follows_the_review(tmp_path, monkeypatch):
    import numpy as np

    from graceful_core.comparing.predictions import compare_predictions
    from graceful_core.types import Predictions
    from graceful_ui.review_ui import html_report_bytes

    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    ids = np.array(["x", "y", "z"], dtype=object)
    comp = compare_predictions(
        Predictions(ids=ids, pred=np.array([0, 1, 0]), classes=["a", "b"], labels=np.array([0, 1, 1])),
        Predictions(ids=ids, pred=np.array([1, 1, 1]), classes=["a", "b"]),
        old_name="old",
        new_name="new",
        key="cmp-key",
    )
    first = html_report_bytes(comp)
    assert b"Status: <b>needs review</b>" in first and b"No notes." in first
    assert html_report_bytes(comp) is first  # unchanged review: rendered once
    review.add_note("cmp-key", "ship <it>", author="bo")
    review.set_status("cmp-key", "approved")
    again = html_report_bytes(comp)
    assert b"ship &lt;it&gt;" in again and b"Status: <b>approved</b>" in again
    assert (tmp_path / "reviews.sqlite").exists()
