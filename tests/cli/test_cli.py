"""The command line end to end on the bundled sample data, and its handling of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from tests import bad_inputs as bad
from tests.helpers import DIGITS_NEW as NEW
from tests.helpers import DIGITS_NEW_CSV as NEW_CSV
from tests.helpers import DIGITS_OLD as OLD
from tests.helpers import DIGITS_OLD_CSV as OLD_CSV
from tests.helpers import DIGITS_TEST as TEST_DATA
from tests.helpers import ROOT, assert_reports_equal, run_cli


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def model_report(cache_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("out") / "report.json"
    r = run_cli("compare", OLD, NEW, "--data", TEST_DATA, "--json", out, cache=cache_dir)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def _independent_metrics() -> dict:
    """The metrics of docs/metrics.md recomputed with plain NumPy/SciPy from the committed tables."""
    o, n = pd.read_csv(OLD_CSV, dtype={"id": str}), pd.read_csv(NEW_CSV, dtype={"id": str})
    m = o.merge(n, on="id", suffixes=("_o", "_n"))
    y = m["label_o"].astype(str).to_numpy()
    op, np_ = m["pred_o"].astype(str).to_numpy(), m["pred_n"].astype(str).to_numpy()
    N = len(m)
    oc, nc = op == y, np_ == y
    nf, pf = int((oc & ~nc).sum()), int((~oc & nc).sum())
    er_o, er_n = 1 - oc.mean(), 1 - nc.mean()
    return {
        "n": N,
        "nf": nf,
        "pf": pf,
        "er_o": er_o,
        "er_n": er_n,
        "nfr": nf / N,
        "pfr": pf / N,
        "btc": (oc & nc).sum() / oc.sum(),
        "bec": (~oc & ~nc).sum() / (~nc).sum() if (~nc).sum() else None,
        "rel": (nf / N) / ((1 - er_o) * er_n) if er_n else None,
        "p": binomtest(min(nf, pf), nf + pf, 0.5).pvalue if nf + pf else 1.0,
        "neg_ids": sorted(m.loc[oc & ~nc, "id"]),
    }


def test_compare_models_matches_independent_computation(model_report):
    ind = _independent_metrics()
    r = model_report
    assert r["n_samples"] == ind["n"]
    assert r["old"]["error_rate"] == pytest.approx(ind["er_o"])
    assert r["new"]["error_rate"] == pytest.approx(ind["er_n"])
    assert r["old"]["accuracy"] == pytest.approx(1 - ind["er_o"])
    assert r["negative_flip_rate"] == pytest.approx(ind["nfr"])
    assert r["positive_flip_rate"] == pytest.approx(ind["pfr"])
    assert r["backward_trust_compatibility"] == pytest.approx(ind["btc"])
    assert r["backward_error_compatibility"] == pytest.approx(ind["bec"])
    assert r["relative_negative_flip_rate"] == pytest.approx(ind["rel"])
    assert r["mcnemar_p_value"] == pytest.approx(ind["p"], rel=1e-9)
    assert r["negative_flips"] == ind["neg_ids"]
    # The sample update is better on average and still breaks real images.
    assert ind["er_n"] < ind["er_o"] and ind["nf"] >= 3


def test_report_has_design_keys(model_report):
    r = model_report
    for key in [
        "n_samples",
        "classes",
        "negative_flip_rate",
        "positive_flip_rate",
        "relative_negative_flip_rate",
        "negative_flip_impact",
        "backward_trust_compatibility",
        "backward_error_compatibility",
        "old_error_persistence",
        "mcnemar_p_value",
        "negative_flip_rate_ci95",
        "negative_flips_near_boundary",
        "negative_flips_confident",
        "negative_flips",
        "positive_flips",
        "transition_matrix",
        "per_class",
    ]:
        assert key in r, key
    assert set(r["old"]) >= {"accuracy", "error_rate"} and set(r["new"]) >= {"accuracy", "error_rate"}
    k = len(r["classes"])
    tm = np.array(r["transition_matrix"])
    assert tm.shape == (k, k) and tm.sum() == r["n_samples"]
    assert sum(pc["support"] for pc in r["per_class"]) == r["n_samples"]
    assert sum(pc["negative_flips"] for pc in r["per_class"]) == len(r["negative_flips"])
    for pc in r["per_class"]:
        assert set(pc.keys()) >= {"class", "support", "negative_flips", "positive_flips", "negative_flip_rate"}
    lo, hi = r["negative_flip_rate_ci95"]
    assert lo <= r["negative_flip_rate"] <= hi
    c = r["compatibility"]
    for m in ("top1", "top5", "map"):
        assert set(c[m]) >= {"old_old", "new_new", "new_old"}
    assert isinstance(c["compatible"], bool) and "retrieval_negative_flips" in c and "update_gain" in c
    nb, cf = r["negative_flips_near_boundary"], r["negative_flips_confident"]
    assert 0 <= nb + cf <= len(r["negative_flips"])


def test_tables_give_the_same_report_as_models(model_report, cache_dir, tmp_path):
    out = tmp_path / "t.json"
    r = run_cli("compare", OLD_CSV, NEW_CSV, "--json", out, cache=cache_dir)
    assert r.returncode == 0, r.stderr
    t = json.loads(out.read_text())

    def strip(d):
        d = {k: v for k, v in d.items() if k not in ("old", "new")}
        # a table has no classifier head to apply to the new embeddings
        d["compatibility"] = {k: v for k, v in d["compatibility"].items() if k != "old_head_on_new_embeddings"}
        return d

    assert_reports_equal(strip(model_report), strip(t), rel=1e-5, abs=1e-6)
    for side in ("old", "new"):
        assert t[side]["accuracy"] == pytest.approx(model_report[side]["accuracy"])


def test_gates_and_stdout(cache_dir, tmp_path):
    ind = _independent_metrics()
    ok = run_cli("compare", OLD_CSV, NEW_CSV, "--max-nfr", "1", "--min-btc", "0", cache=cache_dir)
    assert ok.returncode == 0, ok.stderr
    assert "breaks" in ok.stdout and "negative flip rate" in ok.stdout
    out = tmp_path / "r.json"
    fail = run_cli("compare", OLD_CSV, NEW_CSV, "--max-nfr", "0", "--json", out, cache=cache_dir)
    assert ind["nf"] > 0 and fail.returncode == 1
    assert "FAILED" in fail.stdout
    assert json.loads(out.read_text())["gates"][0]["passed"] is False
    btc = run_cli("compare", OLD_CSV, NEW_CSV, "--min-btc", "1", cache=cache_dir)
    assert btc.returncode == 1


def test_predict_writes_a_table_compare_accepts(cache_dir, tmp_path, model_report):
    a, b = tmp_path / "old.parquet", tmp_path / "new.csv"
    for model, out in ((OLD, a), (NEW, b)):
        r = run_cli("predict", model, "--data", TEST_DATA, "--out", out, cache=cache_dir)
        assert r.returncode == 0, r.stderr
    out = tmp_path / "r.json"
    r = run_cli("compare", a, b, "--json", out, cache=cache_dir)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["negative_flips"] == model_report["negative_flips"]
    assert rep["transition_matrix"] == model_report["transition_matrix"]


def test_help_is_useful():
    r = subprocess.run(
        [sys.executable, "-m", "graceful_core", "compare", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0
    for word in ("--max-nfr", "--min-btc", "--json", "--data", "OLD", "NEW"):
        assert word in r.stdout


# ----------------------------------------------------------------- bad input
def _bad_cases(tmp: Path):
    """(name, argv builder, file the error must name) for each hostile/broken input."""
    ids = [str(p.relative_to(TEST_DATA)) for p in sorted(TEST_DATA.rglob("*.png"))]
    cases = []

    def case(name, argv, culprit):
        cases.append(pytest.param(argv, culprit, id=name))

    txt = tmp / "notes.pt"
    txt.write_text("this is not a model")
    case("text-renamed-pt", ["compare", txt, NEW, "--data", TEST_DATA], txt)
    case("missing-file", ["compare", tmp / "nope.pt", NEW, "--data", TEST_DATA], tmp / "nope.pt")
    ck = bad.pickled_checkpoint(tmp / "ckpt.pt")
    case("pickled-checkpoint", ["compare", OLD, ck, "--data", TEST_DATA], ck)
    z1 = bad.zip_with_member(tmp / "dotdot.zip", "../evil.png")
    case("zip-dotdot", ["compare", OLD, NEW, "--data", z1], z1)
    z2 = bad.zip_with_member(tmp / "abs.zip", "/tmp/evil.png")
    case("zip-absolute", ["compare", OLD, NEW, "--data", z2], z2)
    z3 = bad.zip_bomb(tmp / "bomb.zip")
    case("zip-bomb", ["compare", OLD, NEW, "--data", z3], z3)
    d1 = bad.copy_dataset(TEST_DATA, tmp / "trunc")
    p1 = bad.first_png(d1)
    p1.write_bytes(p1.read_bytes()[:40])
    case("truncated-png", ["compare", OLD, NEW, "--data", d1], p1.name)
    d2 = bad.copy_dataset(TEST_DATA, tmp / "huge")
    p2 = bad.png_header_only(bad.first_png(d2), 50000, 50000)
    case("huge-png-header", ["compare", OLD, NEW, "--data", d2], p2.name)
    df = bad.scores_frame(ids, 10)
    dup = bad.table(tmp / "dup.csv", pd.concat([df, df.iloc[:1]]))
    case("duplicate-ids", ["compare", OLD_CSV, dup], dup)
    other = bad.scores_frame([f"x/{i}.png" for i in range(20)], 10)
    other["label"] = 0
    disj = bad.table(tmp / "disjoint.parquet", other)
    case("no-shared-ids", ["compare", OLD_CSV, disj], disj)
    nopred = bad.table(tmp / "nopred.csv", pd.DataFrame({"id": ids, "label": 0}))
    case("no-pred-column", ["compare", OLD_CSV, nopred], nopred)
    nan = df.copy()
    nan.loc[3, "logit_2"] = float("nan")
    nanf = bad.table(tmp / "nan.csv", nan)
    case("nan-scores", ["compare", OLD_CSV, nanf], nanf)
    wide = bad.table(tmp / "wide.csv", bad.scores_frame(ids, 12))
    case("more-classes-than-model", ["compare", OLD_CSV, wide], wide)
    d3 = tmp / "renamed"
    bad.copy_dataset(TEST_DATA, d3)
    os.rename(d3 / "3", d3 / "three")
    case("class-names-differ", ["compare", OLD, NEW, "--data", d3], d3)
    empty = tmp / "empty"
    (empty / "0").mkdir(parents=True)
    case("empty-dataset", ["compare", OLD, NEW, "--data", empty], empty)
    return cases


def pytest_generate_tests(metafunc):
    if "bad_argv" in metafunc.fixturenames:
        tmp = Path(os.environ.get("GRACEFUL_TEST_TMP") or __import__("tempfile").mkdtemp(prefix="graceful-bad-"))
        params = _bad_cases(tmp)
        metafunc.parametrize(("bad_argv", "culprit"), params)


def test_bad_input_exits_2_with_one_line(bad_argv, culprit, cache_dir, tmp_path):
    out = tmp_path / "report.json"
    r = run_cli(*bad_argv, "--json", out, cache=cache_dir)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert os.path.basename(str(culprit)) in err[0], err[0]
    assert not out.exists()


def test_old_head_on_new_embeddings_matches_torch(model_report):
    """The old model's exported head on the new embeddings, recomputed with torch from the tables."""
    import torch

    n = pd.read_csv(NEW_CSV, dtype={"id": str, "label": str})
    emb = torch.tensor(n[[f"emb_{j}" for j in range(64)]].to_numpy(np.float32))
    old = torch.jit.load(str(OLD), map_location="cpu")
    with torch.no_grad():
        pred = old.head(emb).argmax(1).numpy()
    classes = model_report["classes"]
    expected = float(np.mean(np.array(classes)[pred] == n["label"].to_numpy()))
    got = model_report["compatibility"]["old_head_on_new_embeddings"]
    assert got["accuracy"] == pytest.approx(expected)
    assert got["old_model_accuracy"] == pytest.approx(model_report["old"]["accuracy"])
    assert expected < 0.5  # independently trained: the old classifier does not fit the new space
