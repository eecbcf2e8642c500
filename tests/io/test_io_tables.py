"""Predictions tables: reading (CSV/Parquet, indices/names), writing, joining, and every error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graceful_core.errors import InputError
from graceful_core.io.tables import join_predictions, load_predictions_table, write_predictions_table
from graceful_core.types import Predictions
from tests.helpers import predictions


def _csv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def _random_preds(n: int = 30, k: int = 4, d: int = 3, seed: int = 0, classes=None) -> Predictions:
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, k)).astype(np.float32)
    return Predictions(
        ids=np.array([f"img/{i:03d}.png" for i in range(n)], dtype=object),
        pred=np.argmax(scores, axis=1).astype(np.int64),
        classes=list(classes or [f"c{j}" for j in range(k)]),
        labels=rng.integers(0, k, n).astype(np.int64),
        scores=scores,
        score_kind="logits",
        embedding=rng.standard_normal((n, d)).astype(np.float32),
        source="mem",
    )


# --------------------------------------------------------------------------- reading
def test_hand_made_csv_argmax_with_ties_to_lowest(tmp_path):
    f = _csv(
        tmp_path / "m.csv",
        pd.DataFrame(
            {
                "id": ["007", "b", "c"],
                "label": [0, 2, 1],
                "logit_0": [1.0, 0.5, 3.0],
                "logit_1": [2.0, 0.5, 3.0],  # row b: tie 0/1 -> 0 ; row c: tie 0/1 (3.0) beats 2 -> 0
                "logit_2": [0.0, 0.1, -1.0],
            }
        ),
    )
    p = load_predictions_table(f)
    assert list(p.ids) == ["007", "b", "c"]  # ids stay strings ("007", not 7)
    assert p.pred.tolist() == [1, 0, 0] and p.pred.dtype == np.int64
    assert p.labels.tolist() == [0, 2, 1]
    assert p.classes == ["0", "1", "2"] and p.score_kind == "logits"
    assert p.scores.dtype == np.float32 and p.scores[0].tolist() == [1.0, 2.0, 0.0]
    assert p.embedding is None and p.extra["model_name"] == "m" and p.source == str(f)


def test_probs_and_embedding_wide_columns(tmp_path):
    f = _csv(
        tmp_path / "p.csv",
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "prob_0": [0.2, 0.9],
                "prob_1": [0.8, 0.1],
                "emb_0": [1.5, 2.5],
                "emb_1": [0.0, -1.0],
            }
        ),
    )
    p = load_predictions_table(f)
    assert p.score_kind == "probs" and p.pred.tolist() == [1, 0] and p.labels is None
    assert p.embedding.tolist() == [[1.5, 0.0], [2.5, -1.0]] and p.embedding.dtype == np.float32


def test_names_and_indices_give_identical_arrays(tmp_path):
    classes = ["2", "10", "cat"]
    idx = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 1, 2, 1], "pred": [0, 2, 2, 1]})
    names = idx.assign(label=[classes[k] for k in idx["label"]], pred=[classes[k] for k in idx["pred"]])
    pi = load_predictions_table(_csv(tmp_path / "i.csv", idx), classes=classes)
    pn = load_predictions_table(_csv(tmp_path / "n.csv", names), classes=classes)
    assert pi.pred.tolist() == pn.pred.tolist() == [0, 2, 2, 1]
    assert pi.labels.tolist() == pn.labels.tolist() == [0, 1, 2, 1]
    derived = load_predictions_table(tmp_path / "n.csv")  # classes from the names, naturally sorted
    assert derived.classes == ["2", "10", "cat"] and derived.pred.tolist() == [0, 2, 2, 1]


def test_integer_classes_without_scores_are_max_label_plus_one(tmp_path):
    # A prediction beyond every label is refused, not taken as evidence of more classes.
    with pytest.raises(InputError, match="'pred' of id 'b' is 4, outside the classes 0..3"):
        load_predictions_table(
            _csv(tmp_path / "t.csv", pd.DataFrame({"id": ["a", "b"], "pred": [0, 4], "label": [3, 3]}))
        )
    p = load_predictions_table(
        _csv(tmp_path / "u.csv", pd.DataFrame({"id": ["a", "b"], "pred": [0, 2], "label": [3, 3]}))
    )
    assert p.classes == ["0", "1", "2", "3"] and p.scores is None and p.score_kind is None
    p = load_predictions_table(_csv(tmp_path / "v.csv", pd.DataFrame({"id": ["a", "b"], "pred": [0, 4]})))
    assert p.classes == ["0", "1", "2", "3", "4"]  # no labels: the predictions are all there is


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    src = _random_preds(classes=["b", "a", "10", "9"])  # an order no sort would produce
    src.extra["slices"] = np.array(["x", "y"] * 15, dtype=object)
    f = tmp_path / f"model{suffix}"
    write_predictions_table(src, f)
    p = load_predictions_table(f, classes=src.classes)
    assert list(p.ids) == list(src.ids) and p.classes == src.classes
    assert np.array_equal(p.pred, src.pred) and np.array_equal(p.labels, src.labels)
    assert np.array_equal(p.scores, src.scores) and np.array_equal(p.embedding, src.embedding)
    assert list(p.extra["slices"]) == list(src.extra["slices"])
    if suffix == ".parquet":  # the file carries its class list
        assert load_predictions_table(f).classes == src.classes
        raw = pq.read_table(f)
        assert json.loads(raw.schema.metadata[b"graceful.classes"]) == src.classes
        assert raw.column("label").to_pylist()[:3] == [src.classes[k] for k in src.labels[:3]]
    else:
        raw = pd.read_csv(f, dtype=str)
        assert list(raw["pred"][:3]) == [src.classes[k] for k in src.pred[:3]]  # written as names


def test_parquet_and_csv_give_identical_predictions(tmp_path):
    src = _random_preds(seed=3)
    write_predictions_table(src, tmp_path / "a.parquet")
    write_predictions_table(src, tmp_path / "a.csv")
    a = load_predictions_table(tmp_path / "a.parquet")
    b = load_predictions_table(tmp_path / "a.csv", classes=a.classes)
    for name in ("pred", "labels", "scores", "embedding"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert list(a.ids) == list(b.ids)


def test_parquet_wide_form_is_accepted(tmp_path):
    df = pd.DataFrame({"id": ["a", "b"], "logit_0": [0.0, 5.0], "logit_1": [1.0, 0.0]})
    df.to_parquet(tmp_path / "w.parquet")
    assert load_predictions_table(tmp_path / "w.parquet").pred.tolist() == [1, 0]


def test_file_class_order_is_mapped_onto_the_requested_order(tmp_path):
    t = pa.table(
        {
            "id": ["a", "b"],
            "label": ["cat", "ant"],
            "logits": pa.array([[0.0, 9.0, 1.0], [5.0, 0.0, 1.0]], type=pa.list_(pa.float32())),
        },
        metadata={b"graceful.classes": json.dumps(["cat", "dog", "ant"]).encode()},
    )
    pq.write_table(t, tmp_path / "o.parquet")
    p = load_predictions_table(tmp_path / "o.parquet", classes=["ant", "cat", "dog"])
    assert p.classes == ["ant", "cat", "dog"]
    assert [p.classes[k] for k in p.pred] == ["dog", "cat"] and [p.classes[k] for k in p.labels] == ["cat", "ant"]
    assert p.scores.tolist() == [[1.0, 0.0, 9.0], [1.0, 5.0, 0.0]]  # columns follow the requested names


# --------------------------------------------------------------------------- errors
def _err(path, classes=None) -> InputError:
    with pytest.raises(InputError) as e:
        load_predictions_table(path, classes=classes)
    assert e.value.path == str(path), e.value.message
    return e.value


def test_error_cases_name_the_file(tmp_path):
    base = pd.DataFrame({"id": ["a", "b", "c"], "logit_0": [0.0, 1.0, 2.0], "logit_1": [1.0, 0.0, 0.0]})
    cases = {
        "noid.csv": (base.rename(columns={"id": "name"}), "no 'id' column"),
        "dup.csv": (pd.concat([base, base.iloc[1:2]]), "duplicate id 'b'"),
        "nopred.csv": (base[["id"]].assign(label=0), "no 'pred' column and no class scores"),
        "nan.csv": (base.assign(logit_1=[1.0, np.nan, 0.0]), "for id 'b'"),
        "inf.csv": (base.assign(emb_0=[0.0, 0.0, np.inf]), "infinite embedding value for id 'c'"),
        "nanlabel.csv": (base.assign(label=[0, np.nan, 1]), "missing (NaN or empty) 'label' for id 'b'"),
        "range.csv": (base.assign(label=[0, 1, 7]), "'label' of id 'c' is 7, outside the 2 classes"),
        "argmax.csv": (base.assign(pred=[1, 1, 0]), "'pred' of id 'b' is '1' but the highest score is for '0'"),
        "gap.csv": (base.rename(columns={"logit_1": "logit_2"}), "numbered 0..1"),
    }
    for name, (df, words) in cases.items():
        e = _err(_csv(tmp_path / name, df))
        assert words in e.problem, (name, e.message)
    empty = tmp_path / "empty.csv"
    empty.write_text("id,pred\n")
    assert "empty" in _err(empty).problem
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"not parquet at all")
    assert "not a readable Parquet table" in _err(garbage).problem
    assert "no such file" in _err(tmp_path / "gone.csv").problem
    txt = tmp_path / "t.txt"
    txt.write_text("id\n")
    assert "expected .csv or .parquet" in _err(txt).problem


def test_class_list_errors(tmp_path):
    wide = _csv(tmp_path / "wide.csv", pd.DataFrame({"id": ["a"], **{f"logit_{j}": [float(j)] for j in range(12)}}))
    assert "has 12 score columns but the other side has 10 classes" in _err(wide, [str(k) for k in range(10)]).problem
    unknown = _csv(tmp_path / "u.csv", pd.DataFrame({"id": ["a", "b"], "pred": ["cat", "cow"]}))
    assert "'pred' of id 'b' is 'cow', not one of the classes" in _err(unknown, ["cat", "dog"]).problem
    mixed = _csv(tmp_path / "mix.csv", pd.DataFrame({"id": ["a"], "pred": ["cat"], "label": [0]}))
    assert "mix class indices and class names" in _err(mixed).problem


def test_ragged_list_column(tmp_path):
    t = pa.table({"id": ["a", "b"], "logits": pa.array([[0.0, 1.0], [1.0]], type=pa.list_(pa.float32()))})
    pq.write_table(t, tmp_path / "r.parquet")
    assert "ragged 'logits' column: id 'b' has 1 values" in _err(tmp_path / "r.parquet").problem
    t = pa.table({"id": ["a", "b"], "embedding": pa.array([[0.0], None], type=pa.list_(pa.float32())), "pred": [0, 0]})
    pq.write_table(t, tmp_path / "n.parquet")
    assert "missing 'embedding' for id 'b'" in _err(tmp_path / "n.parquet").problem


def test_list_column_with_offsets_and_chunks(tmp_path):
    """Flatten must respect slicing and multiple chunks (values checked against the input lists)."""
    rows = [[float(i), float(-i), 0.5] for i in range(10)]
    arr = pa.array(rows, type=pa.list_(pa.float32()))
    t = pa.Table.from_batches(
        [
            pa.record_batch({"id": [str(i) for i in range(2, 5)], "logits": arr.slice(2, 3)}),
            pa.record_batch({"id": [str(i) for i in range(7, 10)], "logits": arr.slice(7, 3)}),
        ]
    )
    pq.write_table(t, tmp_path / "c.parquet", row_group_size=3)
    p = load_predictions_table(tmp_path / "c.parquet")
    assert p.scores.tolist() == [rows[i] for i in (2, 3, 4, 7, 8, 9)]


def test_same_ids_in_two_tables_share_one_array_and_other_ids_are_checked_afresh(tmp_path):
    """Tables with byte-identical ids share one read-only array; any other id column gets
    its own full check (same bytes split differently, a duplicate, another order)."""

    def table(name, ids):
        path = tmp_path / name
        pq.write_table(pa.table({"id": ids, "pred": [0] * len(ids)}), path)
        return path

    a = load_predictions_table(table("a.parquet", ["ab", "c", "d"]))
    b = load_predictions_table(table("b.parquet", ["ab", "c", "d"]))
    assert b.ids is a.ids and not a.ids.flags.writeable
    assert join_predictions(a, b)[0].ids.tolist() == ["ab", "c", "d"]
    split = load_predictions_table(table("s.parquet", ["a", "bc", "d"]))  # same bytes "abcd", other ids
    assert split.ids.tolist() == ["a", "bc", "d"]
    assert load_predictions_table(table("r.parquet", ["d", "c", "ab"])).ids.tolist() == ["d", "c", "ab"]
    with pytest.raises(InputError, match="duplicate id 'c'"):
        load_predictions_table(table("dup.parquet", ["ab", "c", "c"]))


def test_id_fingerprint_ignores_buffer_offsets():
    from graceful_core.io.tables.reading import string_fingerprint

    whole = pa.array(["zz", "ab", "c", "d", "yy"])
    assert string_fingerprint(whole.slice(1, 3)) == string_fingerprint(pa.array(["ab", "c", "d"]))
    assert string_fingerprint(pa.array(["ab", "c"])) != string_fingerprint(pa.array(["a", "bc"]))
    assert string_fingerprint(pa.array(["ab", "c"], type=pa.large_string())) == string_fingerprint(
        pa.array(["ab", "c"])
    )


@pytest.mark.parametrize("threaded_from", [1, 10**9])
def test_duplicates_found_with_and_without_the_checking_thread(tmp_path, monkeypatch, threaded_from):
    import graceful_core.io.tables.reading as tables

    monkeypatch.setattr(tables, "_THREADED_ID_CHECK_ROWS", threaded_from)
    ids = [f"img{i}" for i in range(5000)]
    ids[4321] = "img17"
    pq.write_table(pa.table({"id": ids, "pred": [0] * len(ids)}), tmp_path / "d.parquet")
    assert "duplicate id 'img17'" in _err(tmp_path / "d.parquet").problem
    ok = [f"img{i}" for i in range(5000)]
    pq.write_table(pa.table({"id": ok, "pred": [0] * len(ok)}), tmp_path / "ok.parquet")
    assert load_predictions_table(tmp_path / "ok.parquet").ids.tolist() == ok


def test_non_finite_score_found_beyond_the_first_block_of_rows(tmp_path):
    """The finite check runs in row blocks (2**18 values each): a NaN far down is still named."""
    n, k = 70_000, 10  # 700,000 values: three blocks
    logits = np.zeros((n, k), dtype=np.float32)
    logits[:, 1] = 1.0
    logits[65_432, 3] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), k)
    pq.write_table(pa.table({"id": [f"s{i}" for i in range(n)], "logits": col}), tmp_path / "nan.parquet")
    assert "NaN, missing or infinite logits value for id 's65432'" in _err(tmp_path / "nan.parquet").problem


# --------------------------------------------------------------------------- joining
def _preds(ids, labels=None, source="x.csv", slices=None) -> Predictions:
    n = len(ids)
    return predictions(
        ids,
        np.arange(n) % 3,
        classes=["a", "b", "c"],
        labels=labels,
        scores=np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        source=source,
        slices=slices,
    )


def test_join_identical_ids():
    o, n = _preds(["x", "y"], [0, 1], "old.csv"), _preds(["x", "y"], [0, 1], "new.csv")
    oj, nj = join_predictions(o, n)
    assert list(oj.ids) == ["x", "y"] and oj.extra["dropped_ids"] == nj.extra["dropped_ids"] == 0


def test_join_partial_overlap_in_old_order():
    o = _preds(["p", "q", "r", "s"], [0, 1, 2, 0], "old.csv", slices=["s1", "s2", "s3", "s4"])
    n = _preds(["s", "zz", "q"], [0, 2, 1], "new.csv")  # q and s shared; r, p missing; zz extra
    oj, nj = join_predictions(o, n)
    assert list(oj.ids) == list(nj.ids) == ["q", "s"]
    assert oj.pred.tolist() == [1, 0] and nj.pred.tolist() == [2, 0]  # rows 1,3 of old; rows 2,0 of new
    assert nj.scores.tolist() == [[6, 7, 8], [0, 1, 2]]
    assert list(oj.extra["slices"]) == ["s2", "s4"]
    assert oj.extra["dropped_ids"] == nj.extra["dropped_ids"] == 3  # p, r from old; zz from new


def test_join_without_shared_ids_names_the_new_file():
    with pytest.raises(InputError) as e:
        join_predictions(_preds(["a"], source="/d/old.csv"), _preds(["b"], source="/d/disjoint.parquet"))
    assert e.value.path == "/d/disjoint.parquet" and "shares no sample id with old.csv" in e.value.problem


def test_join_label_disagreement_names_id_and_both_labels():
    with pytest.raises(InputError) as e:
        join_predictions(_preds(["a", "b"], [0, 1], "old.csv"), _preds(["b", "a"], [2, 0], "new.csv"))
    assert e.value.path == "new.csv"
    assert "'b'" in e.value.problem and "'c' here" in e.value.problem and "'b' in old.csv" in e.value.problem


# --------------------------------------------------------------------------- writing
def test_write_is_atomic_and_rejects_unknown_suffix(tmp_path):
    f = tmp_path / "out.csv"
    f.write_text("old content")
    write_predictions_table(_random_preds(n=5), f)
    assert load_predictions_table(f).ids.tolist()[0] == "img/000.png"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]  # no temporary file left behind
    with pytest.raises(InputError, match="expected .csv or .parquet") as e:
        write_predictions_table(_random_preds(n=5), tmp_path / "out.xlsx")
    assert "out.xlsx" in e.value.message and not (tmp_path / "out.xlsx").exists()
