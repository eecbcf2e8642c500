"""Review state: survives reopening, and concurrent writers never lose a note."""

import multiprocessing as mp

import pytest

from graceful_core import review


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
    for i in range(n):
        review.add_note("shared", f"{who}-{i}", author=who, db=db)


def test_concurrent_writers_lose_nothing(tmp_path):
    db = str(tmp_path / "r.sqlite")
    review.get_review("shared", db=db)  # create the schema first
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w, 40)) for w in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    texts = {n.text for n in review.get_review("shared", db=db).notes}
    assert texts == {f"{w}-{i}" for w in ("a", "b") for i in range(40)}
