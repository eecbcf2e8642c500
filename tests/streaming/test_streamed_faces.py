"""The streamed path through every face: compare_sources, the CLI, the API, the grid, the HTML report, matrix.

References: the in-memory path (``stream=False``: both tables loaded, ``compare_predictions``)
for whole reports, which the engine-level tests (tests/streaming/test_streaming.py) check against NumPy
brute force; hand counts for the ids missing from one side; plain pandas over the source
arrays for the grid's pages. Batches of a few rows (``DEFAULT_BATCH_ROWS`` patched) put
batch boundaries everywhere.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graceful_core.cli import commands as cli
from graceful_core.comparing.sources import compare_sources, should_stream
from graceful_core.errors import InputError
from graceful_core.explore.selection import SORT_ORDERS, filter_samples, grid_page, sort_samples
from graceful_core.io.datasets import ImageDataset
from graceful_core.io.tables import write_predictions_table
from graceful_core.streaming import engine
from graceful_core.types import Predictions
from graceful_core.vocabulary import (
    FLIP_TYPES,
    STREAM_ROWS_ENV,
    STREAMED_GRID_NOTE,
    STREAMED_NO_CROSS_TEST,
    WHATIF_LINE_LABEL,
)
from tests.helpers import predictions, run_cli

CLASSES = ["ant", "bee", "cat", "dog"]
#: Report keys only a streamed comparison has (docs/metrics.md: the cap and the flip-id file).
STREAMED_ONLY = {"flip_ids_cap", "flip_ids_file"}
#: Report keys that differ by design and are left out on both sides: label issues and the what-if remedies
#: need every sample's probabilities; a streamed comparison reports only why it has no label issues and has
#: no what-if (docs/metrics.md, "Label issues", "What-if remedies").
DIFFERS_BY_DESIGN = {"label_issues", "mitigation_whatif"}


@pytest.fixture(autouse=True)
def small_batches(monkeypatch, tmp_path):
    monkeypatch.setattr(engine, "DEFAULT_BATCH_ROWS", 7)
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(STREAM_ROWS_ENV, raising=False)


# --------------------------------------------------------------------------- data
def _arrays(n: int, seed: int, k: int = len(CLASSES), emb: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{i:04d}" for i in rng.permutation(n)], dtype=object)
    y = rng.integers(0, k, n)
    lo, ln = (rng.standard_normal((n, k)).astype(np.float32) for _ in range(2))
    lo[np.arange(n), y] += rng.random(n).astype(np.float32) * 2.5
    ln[np.arange(n), y] += rng.random(n).astype(np.float32) * 2.5
    ln[2, :] = 1.0  # an exact tie: argmax is the lowest index
    e = [rng.standard_normal((n, emb)).astype(np.float32) for _ in range(2)] if emb else [None, None]
    return ids, y, lo, ln, e


def _preds(ids, y, logits, *, labels=True, emb=None, slices=None) -> Predictions:
    return predictions(
        ids,
        np.argmax(logits, axis=1),
        classes=CLASSES,
        labels=y if labels else None,
        scores=np.asarray(logits, dtype=np.float32),
        embedding=emb,
        source="mem",
        slices=slices,
    )


def _rows(p: Predictions, idx) -> Predictions:
    idx = np.asarray(idx)
    return Predictions(
        ids=p.ids[idx],
        pred=p.pred[idx],
        classes=p.classes,
        labels=None if p.labels is None else p.labels[idx],
        scores=p.scores[idx],
        score_kind=p.score_kind,
        embedding=None if p.embedding is None else p.embedding[idx],
        source=p.source,
        extra={k: np.asarray(v)[idx] for k, v in p.extra.items()},
    )


def _write(p: Predictions, path, shards=None) -> str:
    """One file, or Parquet shards of the given sizes in the folder ``path``."""
    path = str(path)
    if shards is None:
        write_predictions_table(p, path)
        return path
    os.makedirs(path)
    start = 0
    for j, size in enumerate(shards):
        write_predictions_table(_rows(p, np.arange(start, start + size)), os.path.join(path, f"part-{j}.parquet"))
        start += size
    assert start == len(p.ids)
    return path


def _pair(tmp_path, layout: str, n: int = 150, seed: int = 0, emb: int = 0) -> tuple[str, str]:
    ids, y, lo, ln, (eo, en) = _arrays(n, seed, emb=emb)
    old, new = _preds(ids, y, lo, emb=eo), _preds(ids, y, ln, emb=en)
    perm = np.random.default_rng(seed + 1).permutation(n)
    if layout == "same":
        return _write(old, tmp_path / "old.parquet"), _write(new, tmp_path / "new.parquet")
    if layout == "shuffled":
        return _write(old, tmp_path / "old.parquet"), _write(_rows(new, perm), tmp_path / "new.parquet")
    if layout == "shards":  # uneven, cut at other rows than the old table's, named by a folder and a glob
        o = _write(old, tmp_path / "old", shards=[11, 60, 79])
        _write(new, tmp_path / "new", shards=[3, 97, 1, 49])
        return o, str(tmp_path / "new" / "part-*.parquet")
    if layout == "csv":  # no class list in a CSV: names sort naturally, as CLASSES
        return _write(old, tmp_path / "old.csv"), _write(_rows(new, perm), tmp_path / "new.csv")
    if layout == "shuffled-unlabelled":  # the new table's scores go to the join (no labels of its own)
        return (
            _write(old, tmp_path / "old.parquet"),
            _write(_rows(_preds(ids, y, ln, labels=False), perm), tmp_path / "new.parquet"),
        )
    if layout == "slices":  # the old table's own slice column: the per-slice table from the per-slice sums
        sl = np.where(np.arange(n) % 4 == 0, "rain", np.where(np.arange(n) % 4 == 1, "fog", "clear"))
        return (
            _write(_preds(ids, y, lo, slices=sl), tmp_path / "old.parquet"),
            _write(_rows(new, perm), tmp_path / "new.parquet"),
        )
    if layout == "partial":  # each table lacks some ids of the other
        return (
            _write(_rows(old, np.arange(0, 130)), tmp_path / "old.parquet"),
            _write(_rows(new, perm[perm >= 12]), tmp_path / "new.parquet"),
        )
    raise ValueError(layout)


def _without(report: dict, keys=STREAMED_ONLY) -> dict:
    return {k: v for k, v in report.items() if k not in keys and k not in DIFFERS_BY_DESIGN}


def _both(old, new, data=None, **kw):
    streamed = compare_sources(old, new, data, stream=True, **kw)
    memory = compare_sources(old, new, data, stream=False, **kw)
    return streamed, memory


# --------------------------------------------------------------------------- compare_sources
@pytest.mark.parametrize("layout", ["same", "shuffled", "shuffled-unlabelled", "shards", "csv", "slices", "partial"])
def test_streamed_and_in_memory_reports_are_equal(tmp_path, layout):
    old, new = _pair(tmp_path, layout)
    s, m = _both(old, new, allow_missing=layout == "partial")  # rows only one side has: an error unless allowed
    assert s.arrays is None and m.arrays is not None
    rs, rm = s.to_report(), m.to_report()
    # regression slices need per-sample data: the in-memory report tests the old table's slice column,
    # the streamed one has no such key (docs/formats.md)
    assert "regression_slices" not in rs and ("regression_slices" in rm) == (layout == "slices")
    assert _without(rs) == _without(rm, ("regression_slices",))
    assert rs["flip_ids_cap"] == 1000 and "flip_ids_file" not in rs  # no file asked for
    assert s.key == m.key and s.key  # the same content identity
    assert s.summary == m.summary
    if layout == "slices":
        assert [r["slice"] for r in rs["per_slice"]] == ["clear", "fog", "rain"]
    if layout == "partial":  # old lacks 20 of new's ids; new lacks 12 of old's
        assert rs["ids_not_in_both"] == rm["ids_not_in_both"] == 12 + 20


def test_a_joined_batch_without_flips_from_a_table_without_labels(tmp_path):
    """The joined rows' probabilities come from the spilled scores of the unlabelled side: none are needed."""
    ids, y, lo, _, _ = _arrays(60, seed=6)
    old = _write(_preds(ids, y, lo), tmp_path / "old.parquet")
    new = _write(_rows(_preds(ids, y, lo, labels=False), np.arange(60)[::-1]), tmp_path / "new.parquet")
    s, m = _both(old, new)
    assert s.summary.n_negative_flips == s.summary.n_positive_flips == 0
    assert _without(s.to_report()) == _without(m.to_report(), ())


def test_capped_flip_lists_are_the_first_ids_and_the_file_holds_every_flip(tmp_path):
    old, new = _pair(tmp_path, "shuffled", n=200)
    flips = tmp_path / "flips.parquet"
    s = compare_sources(old, new, stream=True, id_cap=5, flip_ids_path=flips)
    m = compare_sources(old, new, stream=False)
    assert s.flip_ids.cap == 5 and s.flip_ids.parquet == str(flips)
    assert s.flip_ids.negative == m.flip_ids.negative[:5] and s.flip_ids.positive == m.flip_ids.positive[:5]
    assert (s.flip_ids.n_negative, s.flip_ids.n_positive) == (len(m.flip_ids.negative), len(m.flip_ids.positive))
    got = pq.read_table(flips).to_pandas()
    want = m.samples()
    want = want[want["flip"].isin(FLIP_TYPES[:2])].set_index("id")
    got = got.set_index("id").loc[want.index]
    assert (got["flip"] + " flip").tolist() == want["flip"].tolist()
    for c in ("label", "old_pred", "new_pred"):
        assert got[c].astype(str).tolist() == want[c].tolist(), c
    np.testing.assert_allclose(got["old_p_true"], want["old_p_true"], rtol=1e-6)


def test_embeddings_are_not_read_when_streamed_and_the_report_says_why(tmp_path):
    old, new = _pair(tmp_path, "same", emb=8)
    s, m = _both(old, new)
    rs, rm = s.to_report(), m.to_report()
    assert rs["compatibility"] == {"reason": STREAMED_NO_CROSS_TEST} and "top1" in rm["compatibility"]
    assert rs["embedding_overlap"] is None and rm["embedding_overlap"] is not None
    assert "regression_slices" not in rs and "regression_slices" in rm  # the old embeddings' clusters
    assert _without(rs, STREAMED_ONLY | {"compatibility", "embedding_overlap"}) == _without(
        rm, {"compatibility", "embedding_overlap", "regression_slices"}
    )
    # tables without embeddings: no compatibility key on either path
    (tmp_path / "plain").mkdir()
    o2, n2 = _pair(tmp_path / "plain", "same")
    assert "compatibility" not in compare_sources(o2, n2, stream=True).to_report()


def _dataset(tmp_path, ids, labels, slices=None) -> ImageDataset:
    files = []
    for i in ids:  # content_hash reads the files' bytes; nothing decodes them here
        f = tmp_path / "images" / f"{i}.png"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(i.encode())
        files.append(str(f))
    return ImageDataset(
        name="ds",
        ids=list(ids),
        labels=labels,
        classes=CLASSES,
        files=files,
        slices=slices,
        source=str(tmp_path / "images"),
    )


def test_ids_not_in_both_count_rows_of_either_table_missing_from_the_other_or_the_dataset(tmp_path):
    """Hand counts: old = A ∪ X, new = A ∪ Y ∪ Z; the dataset has A and Z, not X and Y."""
    ids, y, lo, ln, _ = _arrays(120, seed=3)
    a, x, yy, z = np.arange(0, 90), np.arange(90, 97), np.arange(97, 110), np.arange(110, 120)
    old = _write(_rows(_preds(ids, y, lo, labels=False), np.r_[a, x]), tmp_path / "old.parquet")
    new = _write(_rows(_preds(ids, y, ln, labels=False), np.r_[z, yy, a[::-1]]), tmp_path / "new.parquet")
    keep = np.r_[a, z]
    slices = np.where(np.arange(keep.size) % 3 == 0, "night", "day").astype(object)
    ds = _dataset(tmp_path, ids[keep], y[keep], slices)
    s = compare_sources(old, new, dataset=ds, stream=True, allow_missing=True)
    m = compare_sources(old, new, dataset=ds, stream=False, allow_missing=True)
    with pytest.raises(InputError, match="7 rows of old.parquet"):  # not without the flag
        compare_sources(old, new, dataset=ds, stream=False)
    expected = len(x) + len(yy) + len(z)  # X (old, not in the dataset), Y (new, not in it), Z (new only)
    assert s.dropped_ids == m.dropped_ids == expected
    assert s.n_samples == m.n_samples == len(a)
    assert _without(s.to_report()) == _without(m.to_report(), ())
    assert s.per_slice.groups == m.per_slice.groups == ("day", "night")
    assert s.per_slice.to_frame().equals(m.per_slice.to_frame())


def _shift(path, tmp_path, mutate) -> str:
    """A copy of the Parquet table at ``path`` with ``mutate(df)`` applied (list columns kept)."""
    t = pq.read_table(path)
    df = t.to_pandas()
    mutate(df)
    out = str(tmp_path / ("bad-" + os.path.basename(path)))
    pq.write_table(pa.Table.from_pandas(df, schema=t.schema, preserve_index=False), out)
    return out


@pytest.mark.parametrize(
    "problem", ["duplicate id in a later batch", "label conflict in a later batch", "NaN in the last row"]
)
def test_errors_found_while_streaming_keep_the_in_memory_message(tmp_path, problem):
    old, new = _pair(tmp_path, "same")

    def mutate(df):
        if problem.startswith("duplicate"):
            df.loc[120, "id"] = df.loc[3, "id"]
        elif problem.startswith("label"):
            df.loc[100, "label"] = next(c for c in CLASSES if c != df.loc[100, "label"])
        else:
            df.at[len(df) - 1, "logits"] = np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32)

    bad = _shift(new, tmp_path, mutate)
    messages = []
    for stream in (True, False):
        with pytest.raises(InputError) as e:
            compare_sources(old, bad, stream=stream)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert os.path.basename(bad) in messages[0]


# --------------------------------------------------------------------------- the rule
def test_the_rule_streams_two_tables_above_the_row_threshold(tmp_path, monkeypatch):
    old, new = _pair(tmp_path, "shards")  # 150 rows each (Parquet footers)
    assert not should_stream([old, new])  # below the default million
    monkeypatch.setenv(STREAM_ROWS_ENV, "149")
    assert should_stream([old, new])
    monkeypatch.setenv(STREAM_ROWS_ENV, "150")
    assert not should_stream([old, new]) and should_stream([old, new], True)
    monkeypatch.setenv(STREAM_ROWS_ENV, "0")
    assert should_stream([old, new]) and not should_stream([old, new], False)
    assert compare_sources(old, new).arrays is None  # the env variable reaches compare_sources
    monkeypatch.setenv(STREAM_ROWS_ENV, "lots")
    with pytest.raises(InputError, match=STREAM_ROWS_ENV):
        should_stream([old, new])


def test_a_model_file_is_never_streamed(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    old, _ = _pair(tmp_path, "same")
    assert not should_stream([old, model])
    with pytest.raises(InputError, match="only predictions tables are streamed"):
        should_stream([old, model], True)


def test_csv_rows_are_estimated_from_the_size(tmp_path):
    from graceful_core.streaming import estimated_rows

    ids, y, lo, ln, _ = _arrays(30_000, seed=4)
    path = _write(_preds(ids, y, lo), tmp_path / "big.csv")  # > 1 MiB: estimated from the first lines
    assert os.path.getsize(path) > 1 << 20
    assert abs(estimated_rows(path) - 30_000) < 30_000 * 0.02
    small = _write(_preds(ids[:5], y[:5], lo[:5]), tmp_path / "small.csv")
    assert estimated_rows(small) == 5


# --------------------------------------------------------------------------- CLI and API
def _cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("layout", ["shuffled", "shards"])
def test_cli_reports_are_equal_and_the_flip_file_is_next_to_the_json(tmp_path, capsys, layout):
    old, new = _pair(tmp_path, layout)
    out = tmp_path / "out"
    out.mkdir()  # outputs go into existing folders only
    code, text, _ = _cli(capsys, "compare", old, new, "--json", out / "s.json", "--stream", "always")
    assert code == 0
    code_m, text_m, _ = _cli(capsys, "compare", old, new, "--json", out / "m.json", "--stream", "never")
    assert code_m == 0
    rs, rm = json.loads((out / "s.json").read_text()), json.loads((out / "m.json").read_text())
    assert _without(rs) == _without(rm, ())
    assert rs["flip_ids_cap"] == 1000 and rs["flip_ids_file"] == "s.flips.parquet"
    assert sorted(os.listdir(out)) == ["m.json", "s.flips.parquet", "s.json"]  # nothing else, no temporaries
    flips = pq.read_table(out / rs["flip_ids_file"])
    assert sorted(flips.column("id").to_pylist()) == sorted(rm["negative_flips"] + rm["positive_flips"])
    # the same summary; only the in-memory comparison has the remedy (its what-if needs per-sample scores)
    in_memory = [line for line in text_m.splitlines() if not line.startswith(WHATIF_LINE_LABEL.lower() + ":")]
    assert text.splitlines()[:8] == in_memory[:8]


def test_cli_writes_no_flip_file_when_the_comparison_fails(tmp_path, capsys):
    old, new = _pair(tmp_path, "same")
    bad = _shift(new, tmp_path, lambda df: df.__setitem__("id", df["id"].where(df.index != 140, df.loc[0, "id"])))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _cli(
        capsys, "compare", old, bad, "--json", out / "r.json", "--html", out / "r.html", "--stream", "always"
    )
    assert code == 2 and err.splitlines()[-1].startswith("error: ") and "duplicate id" in err
    assert os.listdir(out) == []


def test_cli_gate_failure_still_writes_the_report_and_its_flip_file(tmp_path, capsys):
    old, new = _pair(tmp_path, "same")
    code, text, _ = _cli(
        capsys, "compare", old, new, "--json", tmp_path / "r.json", "--max-nfr", "0", "--stream", "always"
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and report["n_negative_flips"] > 0 and (tmp_path / "r.flips.parquet").is_file()
    assert "gate max-nfr: FAILED" in text


def test_cli_auto_streams_through_the_environment_in_a_real_process(tmp_path):

    old, new = _pair(tmp_path, "shards")
    r = run_cli("compare", old, new, "--json", tmp_path / "r.json", cache=tmp_path / "c", env={STREAM_ROWS_ENV: "100"})
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["flip_ids_file"] == "r.flips.parquet"


def test_api_compare_streams_two_table_paths(tmp_path):
    from graceful_core.api import compare

    old, new = _pair(tmp_path, "shards")
    comp = compare(old, new, stream=True, flip_ids_path=tmp_path / "f.parquet")
    assert comp.arrays is None and comp.flip_ids.parquet == str(tmp_path / "f.parquet")
    assert _without(comp.to_report()) == _without(compare(old, new).to_report(), ())
    with pytest.raises(InputError, match="only two predictions tables"):
        compare(np.array([0, 1]), np.array([1, 1]), (None, np.array([0, 1])), stream=True)


# --------------------------------------------------------------------------- the grid and the HTML report
FILTERS = [
    {},
    {"flip_types": [FLIP_TYPES[0]]},
    {"flip_types": [FLIP_TYPES[1]], "classes": ["bee", "dog"]},
    {"classes": ["cat"]},
    {"old_pred": "ant", "new_pred": "bee"},
]


@pytest.fixture(scope="module")
def grid_pair(tmp_path_factory):
    """A streamed comparison with its flip-id file and the in-memory one of the same tables."""
    tmp = tmp_path_factory.mktemp("grid")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "DEFAULT_BATCH_ROWS", 7)
        mp.setenv("GRACEFUL_CACHE_DIR", str(tmp / "cache"))
        old, new = _pair(tmp, "shuffled", n=300)
        return (
            compare_sources(old, new, stream=True, flip_ids_path=tmp / "f.parquet"),
            compare_sources(old, new, stream=False),
        )


@pytest.mark.parametrize("order", SORT_ORDERS)
@pytest.mark.parametrize("filters", FILTERS)
def test_grid_pages_of_a_streamed_comparison_equal_the_per_sample_tables(grid_pair, order, filters):
    s, m = grid_pair
    # the reference: plain pandas over the per-sample table, restricted to flips (all the file holds)
    table = m.samples()
    kinds = filters.get("flip_types") or FLIP_TYPES[:2]
    ref = sort_samples(filter_samples(table, **{**filters, "flip_types": kinds}), order)
    per_page = 20
    n_pages = max(1, -(-len(ref) // per_page))
    for page in range(1, n_pages + 2):  # one past the end: clamped to the last page
        g = grid_page(s, order=order, page=page, per_page=per_page, **filters)
        start = (min(page, n_pages) - 1) * per_page
        want = ref.iloc[start : start + per_page]
        assert g.n_matching == len(ref) and g.n_pages == n_pages and g.start == start and g.note == STREAMED_GRID_NOTE
        assert g.rows["id"].tolist() == want["id"].tolist(), (page, order, filters)
        for c in ("label", "old_pred", "new_pred", "flip"):
            assert g.rows[c].tolist() == want[c].tolist(), c
        np.testing.assert_allclose(g.rows["confidence_drop"], want["confidence_drop"], rtol=1e-5, atol=1e-7)
        right_old = want["flip"] == FLIP_TYPES[0]  # the confidence known: that of the model that is right
        np.testing.assert_allclose(g.rows["old_conf"][right_old.to_numpy()], want["old_conf"][right_old], rtol=1e-6)
    # the in-memory comparison's own page is the same function
    g = grid_page(m, order=order, page=1, per_page=per_page, **{**filters, "flip_types": kinds})
    assert g.rows["id"].tolist() == ref["id"].iloc[:per_page].tolist() and g.note is None


def test_grid_of_a_streamed_comparison_without_its_file_lists_the_capped_ids(tmp_path):
    old, new = _pair(tmp_path, "same")
    s = compare_sources(old, new, stream=True, id_cap=4)
    g = grid_page(s, per_page=3)
    assert g.n_matching == 8 and g.rows["id"].tolist() == sorted(s.flip_ids.negative + s.flip_ids.positive)[:3]
    assert grid_page(s, classes=["ant"]).n_matching == 0
    assert grid_page(s, flip_types=[FLIP_TYPES[2]]).n_matching == 0


def test_html_report_of_a_streamed_comparison_lists_the_negative_flips_of_the_file(tmp_path):
    from graceful_core.report.html import render_html_report

    old, new = _pair(tmp_path, "shuffled", n=200)
    s = compare_sources(old, new, stream=True, flip_ids_path=tmp_path / "f.parquet")
    m = compare_sources(old, new, stream=False)
    hs, hm = (render_html_report(c, max_flips=5, generated_at=0) for c in (s, m))
    for sid in m.flip_ids.negative:  # the same five tiles and the cap stated alike
        assert (f"<b>{sid}</b>" in hs) == (f"<b>{sid}</b>" in hm)
    assert f"Showing 5 of {m.summary.n_negative_flips}" in hs and f"Showing 5 of {m.summary.n_negative_flips}" in hm


# --------------------------------------------------------------------------- matrix
def _model_set_tables(tmp_path, n=160, m=4):
    """``m`` models' tables of the same samples: shards, a shuffled file, a glob, a CSV."""
    rng = np.random.default_rng(9)
    ids = np.array([f"s{i:04d}" for i in range(n)], dtype=object)
    y = rng.integers(0, len(CLASSES), n)
    paths = []
    for j in range(m):
        lg = rng.standard_normal((n, len(CLASSES))).astype(np.float32)
        lg[np.arange(n), y] += rng.random(n).astype(np.float32) * (2 + j)
        p = _preds(ids, y, lg, labels=j != 1)  # a streamed pair takes labels from either of its tables
        if j == 0:
            paths.append(_write(p, tmp_path / "m0", shards=[50, 3, 107]))
        elif j == 1:
            paths.append(_write(_rows(p, rng.permutation(n)), tmp_path / "m1.parquet"))
        elif j == 2:
            _write(p, tmp_path / "m2", shards=[80, 80])
            paths.append(str(tmp_path / "m2" / "part-*.parquet"))
        else:
            paths.append(_write(_rows(p, rng.permutation(n)), tmp_path / f"m{j}.csv"))
    return paths


def test_matrix_of_shards_streamed_equals_the_in_memory_model_set(tmp_path):
    from graceful_core.comparing.lineage import model_matrix_report

    paths = _model_set_tables(tmp_path)
    s = model_matrix_report(paths, stream=True).to_report()
    m = model_matrix_report(paths, stream=False).to_report()
    assert s["lineage"].pop("regressed_from_first_ids_cap") == 1000
    assert s.pop("cross_top1_reason") == [[STREAMED_NO_CROSS_TEST] * 4] * 4
    m.pop("cross_top1_reason")  # no embeddings in these tables: "no embedding" there
    assert s == m
    assert m["lineage"]["ever_regressed_from_first"][-1] > m["lineage"]["regressions_from_first"][-1] > 0


def test_matrix_cli_streams_and_refuses_tables_of_other_samples(tmp_path, capsys):
    paths = _model_set_tables(tmp_path, m=3)
    code, text, _ = _cli(capsys, "matrix", *paths, "--json", tmp_path / "m.json", "--stream", "always")
    assert code == 0 and json.loads((tmp_path / "m.json").read_text())["n_samples"] == 160 and "3 models" in text
    other = str(tmp_path / "other.parquet")  # the second model's table without its last 10 rows
    pq.write_table(pq.read_table(paths[1]).slice(0, 150), other)
    code, _, err = _cli(capsys, "matrix", paths[0], other, "--stream", "always")
    assert code == 2 and "holds other samples than" in err.splitlines()[-1]


# --------------------------------------------------------------------------- the app
def test_app_pages_through_a_streamed_comparisons_flip_file(tmp_path, monkeypatch):
    """`graceful app OLD NEW` on shards: the Flips grid pages through the flip-id file; per-sample pages say why not."""
    from tests.apptest import check, goto, grid_ids, run_app, shown_count

    old, new = _pair(tmp_path, "shards", n=150)
    for key, value in cli.app_environment(old, new, None).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(STREAM_ROWS_ENV, "0")
    ref = compare_sources(old, new, stream=False)
    flips = sorted(ref.flip_ids.negative + ref.flip_ids.positive)
    assert len(flips) > 24  # more than one page
    at = goto(run_app({"flip": ""}, sample=None), "flips_page.py")
    assert STREAMED_GRID_NOTE in [c.value for c in at.caption]
    assert shown_count(at) == len(flips)
    seen = []
    for page in range(1, -(-len(flips) // 24) + 1):
        if page > 1:
            check(at.get("pagination")[0].set_value(page).run())
        seen += grid_ids(at)
    assert sorted(seen) == flips and len(seen) == len(set(seen))
    at.multiselect(key="w_flips").set_value([FLIP_TYPES[0]]).run()
    assert shown_count(at) == len(ref.flip_ids.negative) and set(grid_ids(at)) <= set(ref.flip_ids.negative)
    for page in ("sample_page.py", "embeddings_page.py", "retrieval_page.py"):
        at = goto(at, page)
        assert any("streamed" in i.value for i in at.info), page
