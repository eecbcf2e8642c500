"""Regression slices end to end: metadata columns of tables and manifests reach the comparison,
the JSON report, the CLI summary and the ``--max-slice-nfr`` gate.

Every p-value is checked against SciPy on counts made independently with pandas (group-by of
the planted table), never against the code's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control, fisher_exact

from graceful_core.cli.commands import main
from graceful_core.comparing.sources import compare_sources
from graceful_core.io.datasets import load_dataset
from graceful_core.io.metadata import SampleMetadata
from graceful_core.io.tables import load_predictions_table
from graceful_core.metrics.slices import JSON_KEYS
from graceful_core.vocabulary import EXIT_GATE, EXIT_INPUT, EXIT_OK
from tests.helpers import SITES, planted_tables, run_cli

ROOT = Path(__file__).resolve().parents[2]
DIGITS, MODELS = ROOT / "sample_data" / "digits" / "test", ROOT / "sample_data" / "models"
SAMPLE = ROOT / "sample_data"
OLD_CSV, NEW_CSV = SAMPLE / "predictions" / "old.csv", SAMPLE / "predictions" / "new.csv"
TEST_DATA = SAMPLE / "digits" / "test"


def reference_slices(
    truth: pd.DataFrame, columns: tuple[str, ...]
) -> dict[tuple[str, str], tuple[float, float, int, int]]:
    """(column, value) -> (Fisher p, BH-adjusted p, size, flips), from group-by counts and SciPy."""
    n, f = len(truth), int(truth["flip"].sum())
    rows = []
    for col in columns:
        for value, g in truth.groupby(col):
            fs, ns = int(g["flip"].sum()), len(g)
            p = fisher_exact([[fs, ns - fs], [f - fs, n - ns - (f - fs)]], alternative="greater").pvalue
            rows.append(((col, str(value)), float(p), ns, fs))
    adj = false_discovery_control([p for _, p, _, _ in rows], method="bh")
    return {k: (p, float(a), ns, fs) for (k, p, ns, fs), a in zip(rows, adj)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return planted_tables(tmp_path_factory.mktemp("planted"))


# --------------------------------------------------------------------------- metadata
def test_a_tables_extra_columns_are_typed_metadata_and_follow_the_join(tmp_path):
    ids = ["a", "b", "c", "d"]
    pd.DataFrame(
        {
            "id": ids,
            "label": [0, 1, 0, 1],
            "pred": [0, 1, 1, 1],
            "logit_0": [1.0, 0.0, 0.0, 0.0],
            "logit_1": [0.0, 1.0, 2.0, 1.0],
            "site": ["x", "y", None, "x"],
            "lux": [1, 2, 3, 4],
            "gain": [0.5, None, 1.5, 2.0],
            "emb_0": [1.0, 2.0, 3.0, 4.0],
        }
    ).to_csv(tmp_path / "o.csv", index=False)
    p = load_predictions_table(tmp_path / "o.csv")
    meta = p.extra["metadata"]
    assert meta.names == ("site", "lux", "gain")  # id, label, pred, scores and embedding are not metadata
    assert meta.column("site").tolist() == ["x", "y", None, "x"]
    assert meta.column("lux").dtype == np.int64 and np.isnan(meta.column("gain")[1])
    with pytest.raises(ValueError):
        meta.column("site")[0] = "z"  # read-only
    # the new table in another order, missing "b": the comparison's rows follow old's order, without "b"
    pd.DataFrame({"id": ["d", "c", "a"], "pred": [0, 0, 0]}).to_csv(tmp_path / "n.csv", index=False)
    comp = compare_sources(tmp_path / "o.csv", tmp_path / "n.csv", allow_missing=True)
    assert comp.arrays.ids.tolist() == ["a", "c", "d"]
    assert comp.arrays.metadata.column("site").tolist() == ["x", None, "x"]
    assert comp.arrays.metadata.column("lux").tolist() == [1, 3, 4]


def test_a_parquet_tables_metadata_keep_their_types_and_list_columns_are_left_out(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table(
        {
            "id": ["a", "b", "c"],
            "pred": [0, 1, 1],
            "label": [0, 1, 0],
            "night": [True, False, True],
            "cam": pa.array(["A", "B", "A"]).dictionary_encode(),
            "tags": [[1, 2], [3], []],
            "embedding": [[0.1, 0.2]] * 3,
            "iso": pa.array([100, None, 400]),
        }
    )
    pq.write_table(t, tmp_path / "o.parquet")
    meta = load_predictions_table(tmp_path / "o.parquet").extra["metadata"]
    assert meta.names == ("night", "cam", "iso")
    assert meta.column("night").dtype == bool and meta.column("cam").tolist() == ["A", "B", "A"]
    assert meta.column("iso").dtype == np.float64 and np.isnan(meta.column("iso")[1])


def _manifest(folder: Path, extra: dict, suffix: str = ".csv", n: int = 120) -> Path:
    """A manifest in ``folder`` over the first ``n`` digits test images (through a link ``images``
    to the test split: a manifest's paths may not leave its folder)."""
    ds = load_dataset(TEST_DATA)
    if not (folder / "images").exists():
        (folder / "images").symlink_to(TEST_DATA, target_is_directory=True)
    rows = pd.DataFrame(
        {
            "id": ds.ids[:n],
            "path": [f"images/{i}" for i in ds.ids[:n]],
            "label": [ds.classes[i] for i in ds.labels[:n]],
            **{k: v[:n] for k, v in extra.items()},
        }
    )
    out = folder / f"manifest{suffix}"
    (rows.to_csv(out, index=False) if suffix == ".csv" else rows.to_parquet(out))
    return out


def test_a_manifests_extra_columns_are_typed_metadata(tmp_path):
    n = 30
    lux = [str(i % 7) if i % 5 else "" for i in range(n)]
    site = ["a", "b", "c"] * 10
    ds = load_dataset(_manifest(tmp_path, {"site": site, "lux": lux, "slice": ["p", "q"] * 15}, n=n))
    assert ds.metadata.names == ("site", "lux", "slice")
    assert ds.metadata.column("site").tolist() == site
    lux_col = ds.metadata.column("lux")
    assert lux_col.dtype == np.float64 and np.isnan(lux_col[0]) and lux_col[1] == 1.0  # "" is missing
    assert ds.slices.tolist() == ["p", "q"] * 15  # the slice column still gives the per-slice table


def test_a_parquet_manifest_keeps_its_types_and_a_folder_slices_file_is_a_slice_column(tmp_path):
    ds = load_dataset(
        _manifest(tmp_path, {"night": [i % 2 == 0 for i in range(20)], "iso": list(range(20))}, ".parquet", n=20)
    )
    assert ds.metadata.names == ("night", "iso")
    assert ds.metadata.column("night").dtype == bool and ds.metadata.column("iso").tolist() == list(range(20))
    # a folder with slices.csv: one metadata column "slice"; unlisted images are "(none)" as before
    import shutil

    root = tmp_path / "folder"
    shutil.copytree(TEST_DATA / "0", root / "0")
    shutil.copytree(TEST_DATA / "1", root / "1")
    first = sorted(p.name for p in (root / "0").iterdir())[0]
    (root / "slices.csv").write_text(f"id,slice\n0/{first},dark\n")
    ds = load_dataset(root)
    assert ds.metadata.names == ("slice",)
    assert ds.metadata.column("slice").tolist().count("dark") == 1 and set(ds.metadata.column("slice")) == {
        "dark",
        "(none)",
    }


# --------------------------------------------------------------------------- the acceptance
def _check_against_scipy(slices: list[dict], truth: pd.DataFrame) -> None:
    ref = reference_slices(truth, ("site", "camera"))
    assert len(slices) == len(ref) == len(SITES) + 3  # exactly the site and camera values: no clusters, no other
    for s in slices:
        assert tuple(s) == JSON_KEYS
        p, adj, size, flips = ref[(s["column"], s["value"])]
        assert (s["size"], s["negative_flips"]) == (size, flips)
        assert s["p_value"] == pytest.approx(p, rel=1e-12, abs=0)
        assert s["p_adjusted"] == pytest.approx(adj, rel=1e-12, abs=0)
    adjusted = [s["p_adjusted"] for s in slices]
    assert adjusted == sorted(adjusted)  # most significant first


def test_a_planted_site_is_reported_first_with_scipys_p_values(planted):
    old, new, truth = planted
    comp = compare_sources(old, new)
    rep = comp.to_report()["regression_slices"]
    assert (rep[0]["kind"], rep[0]["column"], rep[0]["value"]) == ("metadata", "site", "harbour")
    assert rep[0]["p_adjusted"] < 1e-10
    _check_against_scipy(rep, truth)
    top = comp.regression_slices.slices[0]
    assert top.title == "site = harbour" and top.key == "site=harbour"
    assert comp.regression_slices.by_key("site=harbour") is top
    assert np.array_equal(top.indices, np.flatnonzero(comp.arrays.metadata.column("site") == "harbour"))


def test_the_cli_json_reports_the_planted_site_and_the_gate_fails_on_it(planted, tmp_path):
    old, new, truth = planted
    out = tmp_path / "r.json"
    r = run_cli("compare", old, new, "--json", out, "--max-slice-nfr", "0.1", cache=tmp_path / "cache")
    assert r.returncode == EXIT_GATE, r.stderr
    report = json.loads(out.read_text())
    assert report["regression_slices"][0]["value"] == "harbour"
    _check_against_scipy(report["regression_slices"], truth)
    gate = report["gates"][0]
    assert gate["gate"] == "max-slice-nfr" and not gate["passed"] and "site = harbour" in gate["detail"]
    assert "gate max-slice-nfr: FAILED" in r.stdout and "site = harbour" in r.stdout
    # the summary lists the significant slice
    assert "1 of 8 slices has significantly more negative flips than the rest" in r.stdout


def test_the_slice_gate_passes_below_the_slices_rate_and_bad_values_exit_2(planted, tmp_path, capsys):
    old, new, _ = planted
    harbour = compare_sources(old, new).regression_slices.slices[0].negative_flip_rate
    assert main(["compare", str(old), str(new), "--max-slice-nfr", f"{harbour + 0.01:.4f}"]) == EXIT_OK
    assert "gate max-slice-nfr: passed" in capsys.readouterr().out
    assert main(["compare", str(old), str(new), "--max-slice-nfr", f"{harbour - 0.01:.4f}"]) == EXIT_GATE
    with pytest.raises(SystemExit) as e:  # argparse: a rate must be in [0, 1]
        main(["compare", str(old), str(new), "--max-slice-nfr", "1.5"])
    assert e.value.code == EXIT_INPUT
    assert main(["compare", str(tmp_path / "missing.csv"), str(new), "--max-slice-nfr", "0.1"]) == EXIT_INPUT


def test_without_an_effect_no_slice_is_significant_and_the_gate_passes(tmp_path, capsys):
    old, new, truth = planted_tables(tmp_path, effect=False, seed=3)
    comp = compare_sources(old, new)
    assert comp.regression_slices.significant() == ()
    _check_against_scipy(comp.to_report()["regression_slices"], truth)
    assert main(["compare", str(old), str(new), "--max-slice-nfr", "0"]) == EXIT_OK
    assert "no slice has significantly more negative flips than the rest" in capsys.readouterr().out


def test_without_candidates_there_is_no_slice_key_and_the_gate_says_so(tmp_path, capsys):
    ids = [f"s{i}" for i in range(30)]
    pd.DataFrame({"id": ids, "label": [i % 3 for i in range(30)], "pred": [i % 3 for i in range(30)]}).to_csv(
        tmp_path / "o.csv", index=False
    )
    pd.DataFrame({"id": ids, "pred": [(i % 3) * (i % 4 != 0) for i in range(30)]}).to_csv(
        tmp_path / "n.csv", index=False
    )
    comp = compare_sources(tmp_path / "o.csv", tmp_path / "n.csv")
    assert comp.regression_slices is None and "regression_slices" not in comp.to_report()
    assert "cluster" not in comp.samples().columns
    out = tmp_path / "r.json"
    assert (
        main(["compare", str(tmp_path / "o.csv"), str(tmp_path / "n.csv"), "--max-slice-nfr", "0", "--json", str(out)])
        == EXIT_OK
    )
    gate = json.loads(out.read_text())["gates"][0]
    assert gate["passed"] and "no slices to test" in gate["detail"]
    assert "regression slices" not in capsys.readouterr().out


# --------------------------------------------------------------------------- the manifest route
def test_a_manifests_column_is_tested_with_the_clusters_and_wins_over_the_tables(tmp_path):
    """Committed tables (old with embeddings) on a manifest of all test digits with a ``site`` column."""
    ds = load_dataset(TEST_DATA)
    n = len(ds)
    rng = np.random.default_rng(7)
    site = rng.choice(["x", "y", "z"], n)
    manifest = _manifest(tmp_path, {"site": site}, n=n)
    # an old table with a "site" column of other values: the manifest's column wins
    old = pd.read_csv(OLD_CSV, dtype={"id": str})
    old["site"] = "table-value"
    old["shift"] = np.where(np.arange(len(old)) % 2 == 0, "day", "night")
    old.to_csv(tmp_path / "old.csv", index=False)
    comp = compare_sources(tmp_path / "old.csv", NEW_CSV, manifest)
    meta = comp.arrays.metadata
    assert meta.names == ("site", "shift")
    by_id = dict(zip(ds.ids, site))
    assert meta.column("site").tolist() == [by_id[i] for i in comp.arrays.ids]
    rep = comp.regression_slices
    kinds = [s.kind for s in rep.slices]
    assert kinds.count("metadata") == 3 + 2 and kinds.count("embedding") == rep.clustering.n_clusters >= 2
    # p of each metadata slice from SciPy on counts of the joined ids; BH over every reported slice
    flips = pd.Series(comp.arrays.negative_flip_mask, index=comp.arrays.ids)
    N, F = len(flips), int(flips.sum())
    p_all = []
    for s in rep.slices:
        if s.kind == "metadata":
            members = [i for i, v in zip(comp.arrays.ids, meta.column(s.column)) if v == s.value]
        else:
            members = comp.arrays.ids[comp.samples()["cluster"].to_numpy() == s.value].tolist()
        fs, ns = int(flips[members].sum()), len(members)
        assert (s.size, s.negative_flips) == (ns, fs)
        p = fisher_exact([[fs, ns - fs], [F - fs, N - ns - (F - fs)]], alternative="greater").pvalue
        assert s.p_value == pytest.approx(p, rel=1e-12)
        p_all.append(p)
    adj = false_discovery_control(p_all, method="bh")
    assert [s.p_adjusted for s in rep.slices] == pytest.approx(list(adj), rel=1e-12)
    # each cluster's central images are samples of that cluster
    for c in rep.clustering.clusters:
        assert len(c.central_indices) == min(6, c.size)
        assert (rep.clustering.assignment[list(c.central_indices)] == c.cluster).all()


def test_the_slice_column_keeps_its_per_slice_table_and_is_one_metadata_column(tmp_path):
    ids = [f"s{i}" for i in range(40)]
    y = [i % 2 for i in range(40)]
    pd.DataFrame({"id": ids, "label": y, "pred": y, "slice": ["a"] * 20 + ["b"] * 20}).to_csv(
        tmp_path / "o.csv", index=False
    )
    pd.DataFrame({"id": ids, "pred": [1 - v if i < 6 else v for i, v in enumerate(y)]}).to_csv(
        tmp_path / "n.csv", index=False
    )
    rep = compare_sources(tmp_path / "o.csv", tmp_path / "n.csv").to_report()
    assert [r["slice"] for r in rep["per_slice"]] == ["a", "b"] and rep["per_slice"][0]["negative_flips"] == 6
    assert {(s["column"], s["value"]) for s in rep["regression_slices"]} == {("slice", "a"), ("slice", "b")}
    first = rep["regression_slices"][0]
    ref = fisher_exact([[6, 14], [0, 20]], alternative="greater").pvalue
    assert first["value"] == "a" and first["p_value"] == pytest.approx(ref, rel=1e-12)


def test_a_dataset_that_drops_table_rows_realigns_the_tables_metadata(tmp_path):
    """attach_dataset_labels keeps the table rows the dataset has: its metadata and slices follow."""
    from graceful_core.comparing.sources import attach_dataset_labels

    ds = load_dataset(TEST_DATA)
    ids = ds.ids[:5] + ["not-in-the-dataset"]
    p = load_predictions_table(OLD_CSV)
    rows = [p.ids.tolist().index(i) for i in ds.ids[:5]]
    df = pd.DataFrame({"id": ids, "pred": list(p.pred[rows]) + [0], "cam": list("ABCDEZ"), "slice": list("pqpqpz")})
    df.to_csv(tmp_path / "t.csv", index=False)
    got = attach_dataset_labels(load_predictions_table(tmp_path / "t.csv", classes=list(ds.classes)), ds)
    assert got.extra["metadata"].column("cam").tolist() == list("ABCDE")
    assert got.extra["slices"].tolist() == list("pqpqp") and got.extra["dropped_ids"] == 1


def test_sample_metadata_checks_its_shape():
    with pytest.raises(ValueError, match="more than once"):
        SampleMetadata(("a", "a"), (np.zeros(2), np.zeros(2)))
    with pytest.raises(ValueError, match="differ in length"):
        SampleMetadata(("a", "b"), (np.zeros(2), np.zeros(3)))
    m = SampleMetadata(("n", "t"), (np.array([1, 2]), np.array(["x", "y"], dtype=object)))
    got = m.take([1, -1])
    assert np.isnan(got.column("n")[1]) and got.column("t").tolist() == ["y", None]


def test_the_clusters_are_cached_on_disk_under_the_comparisons_key(tmp_path, monkeypatch):
    """A second comparison of the same files reads the clusters back: same clusters, no k-means."""
    import graceful_core.comparing.analyses as comparison

    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    first = compare_sources(OLD_CSV, NEW_CSV).regression_slices
    monkeypatch.setattr(comparison, "clusters_in_embedding_order", lambda *a, **k: pytest.fail("clustered again"))
    again = compare_sources(OLD_CSV, NEW_CSV).regression_slices
    assert np.array_equal(first.clustering.assignment, again.clustering.assignment)
    assert [(c.title, c.central_indices) for c in first.clustering.clusters] == [
        (c.title, c.central_indices) for c in again.clustering.clusters
    ]
    assert first.to_json() == again.to_json()
    assert (tmp_path / "cache" / comparison.CLUSTERS_CACHE).is_dir()


def test_cached_clusters_follow_the_rows_when_the_same_data_comes_in_another_order(tmp_path, monkeypatch):
    """A folder and a manifest of the same images share the comparison's content key but not the row
    order: the clusters cached by one must not be read for the other's rows."""
    import shutil

    from graceful_core.comparing.analyses import row_key
    from graceful_core.metrics.slices import embedding_clusters

    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(DIGITS, tmp_path / "test")
    folder = load_dataset(tmp_path / "test")
    order = np.random.default_rng(0).permutation(len(folder))
    pd.DataFrame(
        {
            "id": [folder.ids[i] for i in order],
            "path": [f"test/{folder.ids[i]}" for i in order],
            "label": [folder.classes[folder.labels[i]] for i in order],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    first = compare_sources(str(MODELS / "old.pt"), str(MODELS / "new.pt"), str(tmp_path / "test"))
    second = compare_sources(str(MODELS / "old.pt"), str(MODELS / "new.pt"), str(tmp_path / "m.csv"))
    assert first.key == second.key  # same content ...
    assert row_key(first.key, first.arrays.ids) != row_key(second.key, second.arrays.ids)  # ... other rows
    for comp in (first, second):  # each row's cluster is that of its own embedding (fit again, rows sorted by
        a = comp.arrays  # their embedding vectors, lexicographically)
        by_id = np.array(sorted(range(len(a.ids)), key=lambda i: tuple(a.old_embedding[i])))
        want = np.empty(len(a.ids), dtype=np.int64)
        want[by_id] = embedding_clusters(a.old_embedding[by_id], a.labels[by_id], comp.classes).assignment
        got = comp.regression_slices.clustering.assignment
        assert np.array_equal(np.asarray(got), want)
    # ... and the same images get the same clusters and slices in either order
    by_sid = lambda c: dict(zip(map(str, c.arrays.ids), c.regression_slices.clustering.assignment))  # noqa: E731
    assert by_sid(first) == by_sid(second)
    assert [(s.key, s.negative_flips, s.size) for s in first.regression_slices.slices] == [
        (s.key, s.negative_flips, s.size) for s in second.regression_slices.slices
    ]
