"""Streamed comparison of predictions tables against independent references.

References: NumPy brute force over the arrays the tables were written from (joint counts,
flip ids, per-slice counts), and the in-memory path (``load_predictions_table`` +
``compare_predictions``) for the flip-confidence split and for every error message.
Small ``batch_rows`` put batch boundaries everywhere.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graceful_core.comparing.predictions import compare_predictions
from graceful_core.errors import InputError
from graceful_core.io.tables import load_predictions_table, write_predictions_table
from graceful_core.metrics.counts import FlipCounts
from graceful_core.streaming import compare_tables_streamed, flip_page_count, read_flip_page
from graceful_core.types import Predictions
from tests.helpers import predictions

K = 4
CLASSES = ["ant", "bee", "cat", "dog"]  # natural order: CSV tables (no class list) read them alike


# --------------------------------------------------------------------------- data
def _arrays(n: int, seed: int, k: int = K):
    """ids, labels, old logits, new logits (with exact ties in some rows)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{i:05d}" for i in rng.permutation(n)], dtype=object)
    y = rng.integers(0, k, n)
    lo = rng.standard_normal((n, k)).astype(np.float32)
    ln = rng.standard_normal((n, k)).astype(np.float32)
    lo[np.arange(n), y] += rng.random(n).astype(np.float32) * 3  # mostly right, not always
    ln[np.arange(n), y] += rng.random(n).astype(np.float32) * 3
    if n > 3:
        ln[3, :] = 1.0  # a tie: argmax is class 0
    return ids, y, lo, ln


def _preds(ids, y, logits, classes=CLASSES, slices=None, labels=True) -> Predictions:
    return predictions(ids, classes=classes, labels=y if labels else None, scores=logits, source="mem", slices=slices)


def _write(p: Predictions, path, shards: list[int] | None = None, order=None) -> str:
    """Write ``p`` (rows in ``order``) as one file, or as Parquet shards of the given sizes in a folder."""
    if order is not None:
        p = Predictions(
            ids=p.ids[order],
            pred=p.pred[order],
            classes=p.classes,
            labels=None if p.labels is None else p.labels[order],
            scores=p.scores[order],
            score_kind=p.score_kind,
            source=p.source,
            extra={k: np.asarray(v)[order] for k, v in p.extra.items()},
        )
    path = str(path)
    if shards is None:
        write_predictions_table(p, path)
        return path
    os.makedirs(path, exist_ok=True)
    start = 0
    for j, size in enumerate(shards):
        idx = np.arange(start, start + size)
        part = Predictions(
            ids=p.ids[idx],
            pred=p.pred[idx],
            classes=p.classes,
            labels=None if p.labels is None else p.labels[idx],
            scores=p.scores[idx],
            score_kind=p.score_kind,
            source=p.source,
            extra={k: np.asarray(v)[idx] for k, v in p.extra.items()},
        )
        write_predictions_table(part, os.path.join(path, f"part-{j}.parquet"))
        start += size
    assert start == len(p.ids)
    return path


def _brute(ids, y, lo, ln, keep=None):
    """Joint counts, sorted negative/positive flip ids: plain NumPy on the source arrays."""
    o, n = np.argmax(lo, axis=1), np.argmax(ln, axis=1)
    if keep is not None:
        ids, y, o, n = ids[keep], y[keep], o[keep], n[keep]
    joint = np.zeros((K, K, K), dtype=np.int64)
    np.add.at(joint, (y, o, n), 1)
    neg = sorted(ids[(o == y) & (n != y)].tolist())
    pos = sorted(ids[(o != y) & (n == y)].tolist())
    return joint, neg, pos


def _in_memory(old_path, new_path):
    a = load_predictions_table(old_path)
    b = load_predictions_table(new_path, classes=a.classes)
    return compare_predictions(a, b)


def _marginals(joint):
    """FlipCounts' two arrays from the brute-force joint counts C[y, o, n]."""
    k = np.arange(joint.shape[0])
    per_class = np.stack(
        [joint.sum(axis=(1, 2)), joint[k, k, :].sum(axis=1), joint[k, :, k].sum(axis=1), joint[k, k, k]]
    )
    return joint.sum(axis=0), per_class


def _check_against(r, joint, neg, pos, reference=None, cap=None):
    transition, per_class = _marginals(joint)
    assert np.array_equal(r.counts.transition, transition) and np.array_equal(r.counts.per_class, per_class)
    assert r.negative_flips.count == len(neg) and r.positive_flips.count == len(pos)
    c = cap if cap is not None else r.negative_flips.cap
    assert list(r.negative_flips.first) == neg[:c] and list(r.positive_flips.first) == pos[:c]
    if reference is not None:
        s = reference.summary
        assert r.counts.negative_flips_near_boundary == s.negative_flips_near_boundary
        assert r.counts.negative_flips_confident == s.negative_flips_confident
        assert r.dropped_ids == reference.dropped_ids
        assert np.array_equal(r.transition_matrix, reference.transition_matrix)


# --------------------------------------------------------------------------- paths
@pytest.mark.parametrize("batch_rows", [1, 7, 64, 10_000])
def test_same_order_parquet_matches_numpy_and_in_memory(tmp_path, batch_rows):
    ids, y, lo, ln = _arrays(157, seed=1)
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    new = _write(_preds(ids, y, ln), tmp_path / "new.parquet")
    r = compare_tables_streamed(old, new, batch_rows=batch_rows, id_cap=10)
    _check_against(r, *_brute(ids, y, lo, ln), reference=_in_memory(old, new))
    assert r.aligned_rows == 157 and r.joined_rows == 0 and r.n_samples == 157
    assert r.classes == tuple(CLASSES) and r.old_name == "old" and r.new_name == "new"
    assert r.negative_flips.cap == 10 and r.flip_ids_path is None and not r.embeddings_skipped


@pytest.mark.parametrize("batch_rows", [5, 1000])
def test_shuffled_order_goes_through_the_join(tmp_path, batch_rows):
    ids, y, lo, ln = _arrays(203, seed=2)
    perm = np.random.default_rng(7).permutation(203)
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    new = _write(_preds(ids, y, ln), tmp_path / "new.parquet", order=perm)
    r = compare_tables_streamed(old, new, batch_rows=batch_rows)
    _check_against(r, *_brute(ids, y, lo, ln), reference=_in_memory(old, new))
    assert r.joined_rows + r.aligned_rows == 203 and r.joined_rows > 150


def test_partial_overlap_counts_dropped_ids(tmp_path):
    ids, y, lo, ln = _arrays(120, seed=3)
    old_rows = np.arange(0, 100)  # 100..119 only in new; 0..9 only in old
    new_rows = np.arange(10, 120)
    old = _write(_preds(ids[old_rows], y[old_rows], lo[old_rows]), tmp_path / "old.parquet")
    new = _write(_preds(ids[new_rows], y[new_rows], ln[new_rows]), tmp_path / "new.parquet")
    keep = np.zeros(120, dtype=bool)
    keep[10:100] = True
    r = compare_tables_streamed(old, new, batch_rows=16)
    _check_against(r, *_brute(ids, y, lo, ln, keep), reference=_in_memory(old, new))
    assert r.dropped_ids == 30 and r.n_old_rows == 100 and r.n_new_rows == 110


def test_shards_of_uneven_size_folder_and_glob(tmp_path):
    ids, y, lo, ln = _arrays(90, seed=4)
    old = _write(_preds(ids, y, lo), tmp_path / "old", shards=[5, 60, 1, 24])
    new_dir = _write(_preds(ids, y, ln), tmp_path / "new", shards=[33, 33, 24])
    (tmp_path / "new" / "_SUCCESS").write_text("")  # marker files are not shards
    new_glob = str(tmp_path / "new" / "part-*.parquet")
    brute = _brute(ids, y, lo, ln)
    for new in (new_dir, new_glob):
        r = compare_tables_streamed(old, new, batch_rows=7)
        _check_against(r, *brute, reference=_in_memory(old, new))
        assert r.aligned_rows == 90 and r.new_name == "new" and r.old_name == "old"
    # shards whose rows are in another order than the other table's
    perm = np.random.default_rng(0).permutation(90)
    shuffled = _write(_preds(ids, y, ln), tmp_path / "shuf", shards=[10, 70, 10], order=perm)
    r = compare_tables_streamed(old, shuffled, batch_rows=8)
    _check_against(r, *brute, reference=_in_memory(old, shuffled))


def test_in_memory_loader_reads_shards_as_one_table(tmp_path):
    ids, y, lo, _ = _arrays(40, seed=5)
    folder = _write(_preds(ids, y, lo), tmp_path / "t", shards=[3, 30, 7])
    p = load_predictions_table(folder)
    assert list(p.ids) == list(ids) and np.array_equal(p.labels, y) and np.array_equal(p.scores, lo)
    assert p.classes == CLASSES and p.extra["model_name"] == "t"
    g = load_predictions_table(str(tmp_path / "t" / "part-*.parquet"))
    assert list(g.ids) == list(ids)


def test_csv_and_mixed_inputs(tmp_path):
    ids, y, lo, ln = _arrays(75, seed=6)
    perm = np.random.default_rng(1).permutation(75)
    old_csv = _write(_preds(ids, y, lo), tmp_path / "old.csv")
    new_csv = _write(_preds(ids, y, ln), tmp_path / "new.csv", order=perm)
    new_pq = _write(_preds(ids, y, ln), tmp_path / "new.parquet")
    brute = _brute(ids, y, lo, ln)
    for old, new in ((old_csv, new_csv), (old_csv, new_pq)):
        r = compare_tables_streamed(old, new, batch_rows=9)
        _check_against(r, *brute, reference=_in_memory(old, new))
    # a CSV glob of shards
    for j, rows in enumerate(np.array_split(np.arange(75), 3)):
        _write(_preds(ids[rows], y[rows], ln[rows]), tmp_path / f"n-{j}.csv")
    r = compare_tables_streamed(old_csv, str(tmp_path / "n-*.csv"))
    _check_against(r, *brute)


def test_new_table_with_another_class_order(tmp_path):
    ids, y, lo, ln = _arrays(60, seed=8)
    ln[3] = [1.0, 2.0, 3.0, 4.0]  # no tie: a tie goes to the lowest index in the file's own class order
    order = [2, 0, 3, 1]  # the new file lists the classes as cat, ant, dog, bee
    new_p = _preds(ids, [order.index(c) for c in y], ln[:, order], classes=[CLASSES[j] for j in order])
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    new = _write(new_p, tmp_path / "new.parquet", order=np.random.default_rng(2).permutation(60))
    r = compare_tables_streamed(old, new, batch_rows=11)
    _check_against(r, *_brute(ids, y, lo, ln), reference=_in_memory(old, new))


def test_labels_from_one_table_only_and_probabilities(tmp_path):
    """The old table has no labels: they come from the new one (also in the join, where the
    old side's true-class probability is computed after the join)."""
    ids, y, lo, ln = _arrays(80, seed=9)
    probs = np.exp(ln) / np.exp(ln).sum(axis=1, keepdims=True)
    new_p = _preds(ids, y, probs.astype(np.float32))
    new_p.score_kind = "probs"
    old = _write(_preds(ids, y, lo, labels=False), tmp_path / "old.parquet")
    for name, order in (("same", None), ("shuf", np.random.default_rng(3).permutation(80))):
        new = _write(new_p, tmp_path / f"{name}.parquet", order=order)
        r = compare_tables_streamed(old, new, batch_rows=13)
        ref = _in_memory(old, new)
        _check_against(r, *_brute(ids, y, lo, probs), reference=ref)
        assert r.new_score_kind == "probs" and r.old_score_kind == "logits"


def test_pred_only_tables_have_no_confidence_split(tmp_path):
    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 1, 1, 0], "pred": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "old.csv", index=False)
    df.assign(pred=[1, 1, 1, 0]).iloc[::-1].to_csv(tmp_path / "new.csv", index=False)
    r = compare_tables_streamed(tmp_path / "old.csv", tmp_path / "new.csv", batch_rows=2)
    assert r.counts.negative_flips_near_boundary is None and r.counts.negative_flips_confident is None
    assert r.negative_flips.first == ("a",) and r.positive_flips.first == (
        "c",
        "d",
    )  # old right on a, b; new on b, c, d
    assert r.classes == ("0", "1")


def test_slices_match_per_slice_reference(tmp_path):
    ids, y, lo, ln = _arrays(100, seed=10)
    sl = np.array(["day", "night", "dusk"] * 34, dtype=object)[:100]
    old = _write(_preds(ids, y, lo, slices=sl), tmp_path / "old.parquet")
    new = _write(_preds(ids, y, ln), tmp_path / "new.parquet", order=np.random.default_rng(4).permutation(100))
    r = compare_tables_streamed(old, new, batch_rows=6)
    o, n = np.argmax(lo, axis=1), np.argmax(ln, axis=1)
    assert r.slices.names == ("day", "dusk", "night")
    for j, s in enumerate(r.slices.names):
        m = sl == s
        assert r.slices.support[j] == m.sum()
        assert r.slices.negative_flips[j] == ((o == y) & (n != y) & m).sum()
        assert r.slices.positive_flips[j] == ((o != y) & (n == y) & m).sum()


def test_dataset_labels_and_rows_outside_the_dataset(tmp_path):
    from graceful_core.io.datasets import ImageDataset

    ids, y, lo, ln = _arrays(50, seed=11)
    ds_rows = np.arange(5, 50)  # the dataset lacks the first five ids
    ds = ImageDataset(
        name="d",
        ids=list(ids[ds_rows]),
        labels=y[ds_rows],
        classes=CLASSES,
        files=[f"/nowhere/{i}.png" for i in ds_rows],
        slices=np.array(["a", "b"] * 25)[ds_rows],
        source="d.csv",
    )
    old = _write(_preds(ids, y, lo, labels=False), tmp_path / "old.parquet")
    new = _write(_preds(ids, y, ln, labels=False), tmp_path / "new.parquet", order=np.arange(50)[::-1])
    keep = np.zeros(50, dtype=bool)
    keep[5:] = True
    r = compare_tables_streamed(old, new, dataset=ds, batch_rows=4)
    _check_against(r, *_brute(ids, y, lo, ln, keep))
    assert r.dropped_ids == 10 and r.slices.names == ("a", "b") and r.slices.support.sum() == 45
    # a table label that contradicts the dataset
    bad_y = y.copy()
    bad_y[40] = (bad_y[40] + 1) % K
    bad = _write(_preds(ids, bad_y, ln), tmp_path / "bad.parquet")
    with pytest.raises(InputError) as e:
        compare_tables_streamed(old, bad, dataset=ds, batch_rows=4)
    assert (
        e.value.path == bad
        and f"label of id {ids[40]!r} is {CLASSES[bad_y[40]]!r} but the dataset says" in e.value.problem
    )


def test_flip_id_file_and_pages(tmp_path):
    ids, y, lo, ln = _arrays(300, seed=12)
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    new = _write(_preds(ids, y, ln), tmp_path / "new.parquet", order=np.random.default_rng(5).permutation(300))
    out = tmp_path / "report.flips.parquet"
    r = compare_tables_streamed(old, new, batch_rows=32, id_cap=3, flip_ids_path=out)
    _, neg, pos = _brute(ids, y, lo, ln)
    assert r.flip_ids_path == str(out) and r.negative_flips.first == tuple(neg[:3]) and not r.negative_flips.complete
    t = pq.read_table(out)
    assert json.loads(t.schema.metadata[b"graceful.classes"]) == CLASSES
    got = t.to_pandas()
    assert sorted(got.loc[got["flip"] == "negative", "id"]) == neg
    assert sorted(got.loc[got["flip"] == "positive", "id"]) == pos
    ref = _in_memory(old, new).samples().set_index("id")
    row = got.set_index("id").loc[neg[0]]
    assert row["label"] == ref.loc[neg[0], "label"] and row["new_pred"] == ref.loc[neg[0], "new_pred"]
    assert row["old_p_true"] == pytest.approx(ref.loc[neg[0], "old_p_true"], abs=0)
    # pages sorted by confidence drop: the in-memory order, page by page
    expect = (
        ref[ref["flip"] == "negative flip"]
        .reset_index()
        .sort_values(["confidence_drop", "id"], ascending=[False, True])
    )
    pages = [
        read_flip_page(out, flip="negative", offset=o, limit=7, order_by="confidence_drop", descending=True)
        for o in range(0, len(neg), 7)
    ]
    assert [i for p in pages for i in p.column("id").to_pylist()] == expect["id"].tolist()
    assert flip_page_count(out, flip="negative") == len(neg) and flip_page_count(out, flip=None) == len(neg) + len(pos)
    assert flip_page_count(out, flip="negative", label="dog") == int((expect["label"] == "dog").sum())
    assert sorted(os.listdir(tmp_path)) == ["new.parquet", "old.parquet", "report.flips.parquet"]  # no temp files


def test_text_labels_switch_to_indices_in_a_later_batch(tmp_path):
    """A CSV column whose first rows are class names ("1", "2") and a later row a number that is
    no class name ("0") is read as indices throughout, as the in-memory loader reads it."""
    classes = ["1", "2", "3"]
    n = 30
    rng = np.random.default_rng(13)
    y = rng.integers(0, 3, n)
    y[:10] = rng.integers(1, 3, 10)  # indices 1, 2 only: their text "1", "2" are class names too
    y[25] = 0  # "0": no class name
    lo = rng.standard_normal((n, 3)).astype(np.float32)
    ids = np.array([f"r{i:02d}" for i in range(n)], dtype=object)
    old = _write(_preds(ids, y, lo, classes=classes), tmp_path / "old.parquet")  # carries the class list
    df = pd.DataFrame({"id": ids, "label": y.astype(str), "pred": np.argmax(lo, axis=1).astype(str)})
    df.to_csv(tmp_path / "new.csv", index=False)
    r = compare_tables_streamed(old, tmp_path / "new.csv", batch_rows=4)
    ref = _in_memory(old, str(tmp_path / "new.csv"))
    assert r.counts == FlipCounts.from_predictions(
        ref.arrays.labels,
        ref.arrays.old_pred,
        ref.arrays.new_pred,
        3,
        negative_flips_near_boundary=r.counts.negative_flips_near_boundary,
        negative_flips_confident=r.counts.negative_flips_confident,
    )
    assert r.counts.negative_flips == 0 and r.counts.positive_flips == 0  # same predictions: the labels agree


# --------------------------------------------------------------------------- errors
def _both_errors(old, new, **kw) -> tuple[InputError, InputError]:
    with pytest.raises(InputError) as mem:
        _in_memory(str(old), str(new))
    with pytest.raises(InputError) as streamed:
        compare_tables_streamed(old, new, **kw)
    return mem.value, streamed.value


def _pair(tmp_path, n=40, seed=20):
    ids, y, lo, ln = _arrays(n, seed=seed)
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    return ids, y, lo, ln, old


@pytest.mark.parametrize("shuffled", [False, True])
def test_duplicate_id_in_a_later_batch(tmp_path, shuffled):
    ids, y, lo, ln, _ = _pair(tmp_path)
    dup_ids = ids.copy()
    dup_ids[37] = ids[2]
    old = _write(_preds(dup_ids, y, lo), tmp_path / "dupold.parquet")
    new = _write(
        _preds(dup_ids, y, ln),
        tmp_path / "dupnew.parquet",
        order=np.random.default_rng(0).permutation(40) if shuffled else None,
    )
    mem, st_ = _both_errors(old, new, batch_rows=5)
    assert st_.message == mem.message and st_.path == old and f"duplicate id {ids[2]!r}" in st_.problem
    # only in the new table
    clean_old = _write(_preds(ids, y, lo), tmp_path / "clean.parquet")
    mem, st_ = _both_errors(clean_old, new, batch_rows=5)
    assert st_.message == mem.message and st_.path == new


def test_duplicate_ids_found_after_spilling_hashes_to_disk(tmp_path, monkeypatch):
    import graceful_core.streaming.engine as engine

    monkeypatch.setattr(engine, "ID_HASH_MEMORY", 64)  # 8 hashes in memory, the rest on disk
    ids, y, lo, ln, _ = _pair(tmp_path, n=200)
    dup_ids = ids.copy()
    dup_ids[199] = ids[0]
    old = _write(_preds(dup_ids, y, lo), tmp_path / "d.parquet")
    new = _write(_preds(ids, y, ln), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=f"duplicate id {ids[0]!r}"):
        compare_tables_streamed(old, new, batch_rows=16)
    ok = _write(_preds(ids, y, lo), tmp_path / "ok.parquet")
    assert compare_tables_streamed(ok, new, batch_rows=16).n_samples == 200


@pytest.mark.parametrize("budget", [1 << 30, 200])
def test_duplicate_finder_against_brute_force(tmp_path, budget):
    from graceful_core.streaming.ids import DuplicateFinder

    rng = np.random.default_rng(0)
    shared = rng.integers(0, 2**63, 500, dtype=np.uint64)
    old = rng.integers(0, 2**63, 300, dtype=np.uint64)
    new = rng.integers(0, 2**63, 300, dtype=np.uint64)
    old[7] = shared[3]  # a repeat across groups (old's own rows and the shared ones)
    new[10] = new[250]  # a repeat within new's own rows
    f = DuplicateFinder(str(tmp_path / "ids"), memory_budget=budget)
    for group, h in (("shared", shared), ("old", old), ("new", new)):
        for part in np.array_split(h, 7):
            f.add(group, part)
    assert f.candidates("old").tolist() == [shared[3]]
    assert f.candidates("new").tolist() == [new[250]]
    assert (f.spilled_bytes > 0) == (budget == 200)


def test_hash_collisions_are_not_reported_as_duplicates():
    from graceful_core.streaming.ids import confirm_duplicate
    from graceful_core.streaming.kernels import hash_strings

    ids = pa.array(["a", "b", "c", "b"])
    h = hash_strings(ids)
    assert confirm_duplicate(np.array([h[0], h[1]]), [ids.slice(0, 2), ids.slice(2)]) == "b"
    assert confirm_duplicate(np.array([h[0], h[2]]), [ids]) is None  # "candidates" seen once each


@pytest.mark.parametrize("shuffled", [False, True])
def test_label_conflict_in_a_later_batch(tmp_path, shuffled):
    ids, y, lo, ln, old = _pair(tmp_path)
    y2 = y.copy()
    y2[36] = (y2[36] + 1) % K
    new = _write(
        _preds(ids, y2, ln),
        tmp_path / "new.parquet",
        order=np.random.default_rng(1).permutation(40) if shuffled else None,
    )
    mem, st_ = _both_errors(old, new, batch_rows=5)
    assert st_.message == mem.message and st_.path == new
    assert f"label of id {ids[36]!r} is {CLASSES[y2[36]]!r} here but {CLASSES[y[36]]!r} in old.parquet" in st_.problem


def _raw_parquet(path, ids, y, logits) -> str:
    """A table written with pyarrow directly (any values, no ``pred`` column)."""
    col = pa.FixedSizeListArray.from_arrays(pa.array(logits.astype(np.float32).reshape(-1)), logits.shape[1])
    t = pa.table(
        {"id": list(ids), "label": [CLASSES[j] for j in y], "logits": col.cast(pa.list_(pa.float32()))},
        metadata={b"graceful.classes": json.dumps(CLASSES).encode()},
    )
    pq.write_table(t, path)
    return str(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_score_in_the_last_row(tmp_path, value):
    ids, y, lo, ln, old = _pair(tmp_path)
    ln[-1, 2] = value
    new = _raw_parquet(tmp_path / "new.parquet", ids, y, ln)
    mem, st_ = _both_errors(old, new, batch_rows=6)
    assert st_.message == mem.message and st_.path == new
    assert f"NaN, missing or infinite logits value for id {ids[-1]!r}" in st_.problem


def test_errors_match_the_in_memory_messages(tmp_path):
    ids, y, lo, ln, old = _pair(tmp_path)

    def csv(name, df):
        df.to_csv(tmp_path / name, index=False)
        return str(tmp_path / name)

    # 'pred' present: the old side names its classes, so numbered scores alone would be refused (last case)
    base = pd.DataFrame({"id": ids, "label": y, "pred": np.argmax(ln, 1), **{f"logit_{j}": ln[:, j] for j in range(K)}})
    cases = {
        "unnamed.csv": base.drop(columns=["pred"]),
        "disjoint.csv": base.assign(id=[f"other{i}" for i in range(40)]),
        "argmax.csv": base.assign(pred=np.where(np.arange(40) == 33, (np.argmax(ln, 1) + 1) % K, np.argmax(ln, 1))),
        "wide.csv": base.assign(logit_4=0.0),
        "noid.csv": base.rename(columns={"id": "name"}),
        "emptyid.csv": base.assign(id=[*ids[:30], "", *ids[31:]]),
        "nanlabel.csv": base.assign(label=np.where(np.arange(40) == 38, np.nan, y)),
        "range.csv": base.assign(label=np.where(np.arange(40) == 39, 9, y)),
        "nopred.csv": base[["id", "label"]],
    }
    for name, df in cases.items():
        new = csv(name, df)
        mem, st_ = _both_errors(old, new, batch_rows=7)
        assert st_.message == mem.message, name
    # class names that differ (Parquet metadata)
    other = _write(_preds(ids, y, ln, classes=["ant", "bee", "cat", "cow"]), tmp_path / "cow.parquet")
    mem, st_ = _both_errors(old, other)
    assert st_.message == mem.message and "class names differ" in st_.problem
    # no labels anywhere
    a = _write(_preds(ids, y, lo, labels=False), tmp_path / "a.parquet")
    b = _write(_preds(ids, y, ln, labels=False), tmp_path / "b.parquet")
    mem, st_ = _both_errors(a, b)
    assert st_.message == mem.message and "no true labels" in st_.problem
    # an empty table
    empty = tmp_path / "empty.csv"
    empty.write_text("id,label,pred\n")
    mem, st_ = _both_errors(old, empty)
    assert st_.message == mem.message


def test_shard_errors_name_the_shard(tmp_path):
    ids, y, lo, ln, old = _pair(tmp_path)
    folder = _write(_preds(ids, y, ln), tmp_path / "new", shards=[20, 20])
    t = pq.read_table(os.path.join(folder, "part-1.parquet"))
    pq.write_table(t.drop_columns(["pred"]), os.path.join(folder, "part-1.parquet"))
    with pytest.raises(InputError) as e:
        compare_tables_streamed(old, folder)
    assert e.value.path == os.path.join(folder, "part-1.parquet") and "columns" in e.value.problem
    with pytest.raises(InputError, match="no file matches this pattern"):
        compare_tables_streamed(old, str(tmp_path / "nothing-*.parquet"))
    (tmp_path / "void").mkdir()
    with pytest.raises(InputError, match="folder without Parquet files"):
        compare_tables_streamed(old, tmp_path / "void")


# --------------------------------------------------------------------------- property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 9),
    shuffle=st.booleans(),
    drop_old=st.integers(0, 3),
    drop_new=st.integers(0, 3),
    csv=st.booleans(),
)
def test_property_streamed_equals_in_memory(tmp_path_factory, n, seed, batch, shuffle, drop_old, drop_new, csv):
    d = tmp_path_factory.mktemp("prop")
    ids, y, lo, ln = _arrays(n + 6, seed=seed)
    o_rows = np.arange(drop_old, n + 6)
    n_rows = np.arange(0, n + 6 - drop_new)
    if shuffle:
        n_rows = np.random.default_rng(seed).permutation(n_rows)
    suffix = ".csv" if csv else ".parquet"
    old = _write(_preds(ids[o_rows], y[o_rows], lo[o_rows]), d / f"old{suffix}")
    new = _write(_preds(ids[n_rows], y[n_rows], ln[n_rows]), d / "new.parquet")
    keep = np.zeros(n + 6, dtype=bool)
    keep[drop_old : n + 6 - drop_new] = True
    try:
        r = compare_tables_streamed(old, new, batch_rows=batch, id_cap=5)
    except InputError as e:  # e.g. a short CSV whose names miss a class: both paths refuse it alike
        with pytest.raises(InputError) as mem:
            _in_memory(old, new)
        assert e.message == mem.value.message
        return
    _check_against(r, *_brute(ids, y, lo, ln, keep), reference=_in_memory(old, new))
