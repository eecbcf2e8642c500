"""The churn floor against independent computations: brute-force NumPy counts,
scipy's binomial test and Wilson interval; the core, the API, the CLI, the HTML report and the app's specs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from graceful_core.errors import InputError
from graceful_core.metrics.churn import ChurnCounts, churn_floor
from tests.helpers import predictions, run_cli

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["a", "b", "c"]


def _case(seed: int, n: int = 400, new_noise: float = 0.15, ref_noise: float = 0.08):
    """Labels and three predictions: old ~80 % right, new and the reference each perturb it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    o = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
    nw = np.where(rng.random(n) < new_noise, (o + rng.integers(1, 3, n)) % 3, np.where(rng.random(n) < 0.5, y, o))
    r = np.where(rng.random(n) < ref_noise, (o + rng.integers(1, 3, n)) % 3, o)
    return y, o, nw, r


def _brute(y, o, nw, r):
    """Every count by a Python loop over the samples."""
    ref_nf = upd_nf = b = c = 0
    for yi, oi, ni, ri in zip(y.tolist(), o.tolist(), nw.tolist(), r.tolist()):
        if oi != yi:
            continue
        ref_nf += ri != yi
        upd_nf += ni != yi
        b += ni != yi and ri == yi
        c += ni == yi and ri != yi
    return ref_nf, upd_nf, b, c


# ------------------------------------------------------------------ the metric
@pytest.mark.parametrize("seed", range(6))
def test_churn_floor_equals_brute_force_counts_and_scipy(seed):
    y, o, nw, r = _case(seed, ref_noise=[0.02, 0.08, 0.2][seed % 3])
    n = len(y)
    ref_nf, upd_nf, b, c = _brute(y, o, nw, r)
    cf = churn_floor(y, o, nw, r, reference_name="o2")
    assert cf.n_samples == n and cf.n_negative_flips == ref_nf
    assert cf.negative_flip_rate == pytest.approx(ref_nf / n, abs=1e-15)
    assert cf.update_negative_flip_rate == pytest.approx(upd_nf / n, abs=1e-15)
    assert (cf.update_only_flips, cf.reference_only_flips) == (b, c)
    assert cf.excess == pytest.approx((b - c) / n, abs=1e-12)
    lo, hi = binomtest(ref_nf, n).proportion_ci(0.95, method="wilson")
    assert cf.negative_flip_rate_ci95 == pytest.approx((lo, hi), abs=1e-9)
    want_p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert cf.p_value == pytest.approx(want_p, rel=1e-9)
    want = "above" if want_p < 0.05 and b > c else "below" if want_p < 0.05 and b < c else "within"
    assert cf.verdict == want and cf.regresses_beyond_churn == (want == "above")


def test_verdict_above_within_below_by_hand():
    # 100 samples, the old model right on all; class 0
    y = np.zeros(100, dtype=int)
    o = y.copy()
    new = y.copy()
    new[:20] = 1  # the update breaks 20
    ref = y.copy()
    ref[:2] = 1  # the retrain breaks 2 of the same
    cf = churn_floor(y, o, new, ref)
    assert (cf.update_only_flips, cf.reference_only_flips) == (18, 0)
    assert cf.verdict == "above" and cf.regresses_beyond_churn
    assert cf.p_value == pytest.approx(2 * 0.5**18)  # binomtest(0, 18, 0.5), two-sided
    swapped = churn_floor(y, o, ref, new)
    assert swapped.verdict == "below" and not swapped.regresses_beyond_churn
    same = churn_floor(y, o, ref, ref)
    assert same.verdict == "within" and same.p_value == 1.0 and same.excess == 0.0


def test_samples_the_old_model_gets_wrong_never_count():
    y = np.array([0, 0, 0, 0])
    o = np.array([1, 1, 1, 1])  # old wrong everywhere: nothing can flip negatively
    cf = churn_floor(y, o, np.array([0, 2, 1, 0]), np.array([2, 2, 0, 1]))
    assert cf.negative_flip_rate == 0.0 and cf.update_negative_flip_rate == 0.0
    assert (cf.update_only_flips, cf.reference_only_flips, cf.p_value) == (0, 0, 1.0)
    assert cf.negative_flip_rate_ci95[0] == 0.0


def test_counts_merge_by_addition_and_validate():
    y, o, nw, r = _case(3)
    whole = ChurnCounts.from_predictions(y, o, nw, r)
    parts = ChurnCounts.from_predictions(y[:150], o[:150], nw[:150], r[:150]) + ChurnCounts.from_predictions(
        y[150:], o[150:], nw[150:], r[150:]
    )
    assert np.array_equal(whole.table, parts.table) and whole.n_samples == len(y)
    with pytest.raises(ValueError):
        churn_floor(y, o, nw, r[:-1])
    with pytest.raises(ValueError):
        ChurnCounts(np.zeros((2, 2), dtype=int))


def test_empty_input_gives_nan_rates():
    cf = churn_floor([], [], [], [])
    assert np.isnan(cf.negative_flip_rate) and cf.p_value == 1.0 and cf.verdict == "within"


# ------------------------------------------------------------------ the comparison
def _preds(ids, pred, labels=None, classes=CLASSES, source="x.csv"):
    return predictions(ids, pred, classes=classes, labels=labels, source=source)


def test_compare_predictions_aligns_the_reference_by_id():
    from graceful_core.comparing.predictions import compare_predictions

    y, o, nw, r = _case(1)
    ids = np.array([f"s{i}" for i in range(len(y))], dtype=object)
    perm = np.random.default_rng(0).permutation(len(y))
    # the reference in another row order, with other class order and one extra row
    ref_classes = ["c", "a", "b"]
    to_ref = np.array([1, 2, 0])  # index in CLASSES -> index in ref_classes
    ref = _preds(np.append(ids[perm], "extra"), np.append(to_ref[r[perm]], 0), classes=ref_classes, source="old2.csv")
    comp = compare_predictions(_preds(ids, o, y), _preds(ids, nw), reference=ref, reference_name="old2.csv")
    ref_nf, upd_nf, b, c = _brute(y, o, nw, r)
    cf = comp.churn_floor
    assert (cf.n_negative_flips, cf.update_only_flips, cf.reference_only_flips) == (ref_nf, b, c)
    assert cf.update_negative_flip_rate == comp.summary.negative_flip_rate
    rep = comp.to_report()
    assert rep["churn_floor"] == pytest.approx(ref_nf / len(y)) and rep["churn_floor_reference"] == "old2.csv"
    assert rep["churn_verdict"] in ("above", "within", "below")
    json.dumps(rep, allow_nan=False)


@pytest.mark.parametrize("what", ["missing id", "classes", "label"])
def test_a_bad_reference_is_an_input_error_naming_its_file(what):
    from graceful_core.comparing.predictions import compare_predictions

    y, o, nw, r = _case(2, n=50)
    ids = [f"s{i}" for i in range(50)]
    ref = {
        "missing id": _preds(ids[:-1], r[:-1], source="old2.csv"),
        "classes": _preds(ids, r, classes=["a", "b", "z"], source="old2.csv"),
        "label": _preds(ids, r, labels=(y + 1) % 3, source="old2.csv"),
    }[what]
    with pytest.raises(InputError) as e:
        compare_predictions(_preds(ids, o, y), _preds(ids, nw), reference=ref)
    assert e.value.path == "old2.csv"
    assert {"missing id": "lacks 1 of the 50", "classes": "class names differ", "label": "label of id"}[
        what
    ] in e.value.problem


def test_api_compare_takes_a_reference_array():
    import graceful_core

    y, o, nw, r = _case(4, n=120)
    comp = graceful_core.compare(o, nw, (None, y), reference=r, reference_name="seed 2")
    ref_nf, _upd, b, c = _brute(y, o, nw, r)
    assert comp.churn_floor.reference_name == "seed 2"
    assert (
        comp.churn_floor.n_negative_flips,
        comp.churn_floor.update_only_flips,
        comp.churn_floor.reference_only_flips,
    ) == (ref_nf, b, c)
    with pytest.raises(InputError) as e:
        graceful_core.compare(o, nw, (None, y), reference=r[:-1])
    assert e.value.path == "reference"


# ------------------------------------------------------------------ files: API, CLI, HTML
def _write_tables(folder: Path, seed: int = 5, n: int = 300) -> tuple[Path, Path, Path, tuple]:
    y, o, nw, r = _case(seed, n=n)
    ids = [f"img{i:04d}" for i in range(n)]
    names = np.array(CLASSES, dtype=object)
    paths = []
    for name, pred, lab in (("old", o, y), ("new", nw, None), ("old2", r, y)):
        df = pd.DataFrame({"id": ids, "pred": names[pred]})
        if lab is not None:
            df["label"] = names[lab]
        p = folder / f"{name}.csv"
        df.to_csv(p, index=False)
        paths.append(p)
    return (*paths, (y, o, nw, r))


def test_compare_sources_and_api_on_tables(tmp_path):
    import graceful_core
    from graceful_core.comparing.sources import compare_sources

    old, new, ref, arrays = _write_tables(tmp_path)
    ref_nf, _upd, b, c = _brute(*arrays)
    for comp in (compare_sources(old, new, reference=ref), graceful_core.compare(str(old), str(new), reference=ref)):
        cf = comp.churn_floor
        assert cf.reference_name == "old2.csv"
        assert (cf.n_negative_flips, cf.update_only_flips, cf.reference_only_flips) == (ref_nf, b, c)
    plain = compare_sources(old, new)
    assert plain.churn_floor is None and plain.key == comp.key  # the reference is an analysis, not an input


def test_cli_compare_reference_json_keys_text_and_html(tmp_path):
    old, new, ref, arrays = _write_tables(tmp_path)
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    res = run_cli("compare", old, new, "--reference", ref, "--json", out, "--html", html, cache=tmp_path / "c")
    assert res.returncode in (0, 1), res.stderr
    rep = json.loads(out.read_text())
    ref_nf, upd_nf, b, c = _brute(*arrays)
    n = len(arrays[0])
    want_p = binomtest(b, b + c, 0.5).pvalue
    assert rep["churn_floor"] == pytest.approx(ref_nf / n)
    assert rep["churn_floor_ci95"] == pytest.approx(list(binomtest(ref_nf, n).proportion_ci(method="wilson")))
    assert rep["churn_floor_negative_flips"] == ref_nf and rep["churn_floor_reference"] == "old2.csv"
    assert (rep["churn_update_only_flips"], rep["churn_reference_only_flips"]) == (b, c)
    assert rep["churn_excess"] == pytest.approx((upd_nf - ref_nf) / n)
    assert rep["churn_p_value"] == pytest.approx(want_p)
    assert rep["regresses_beyond_churn"] == (want_p < 0.05 and b > c)
    assert rep["churn_verdict"] in ("above", "within", "below")
    assert "churn floor" in res.stdout and f"{100 * ref_nf / n:.2f} %" in res.stdout
    page = html.read_text()
    assert "Churn floor" in page and "old2.csv" in page and f"{100 * ref_nf / n:.2f} %" in page
    docs = (ROOT / "docs" / "metrics.md").read_text() + (ROOT / "docs" / "formats.md").read_text()
    missing = [k for k in rep if k.startswith("churn") or k == "regresses_beyond_churn" if f"`{k}`" not in docs]
    assert missing == []


def test_cli_reference_errors_exit_2_naming_the_file(tmp_path):
    old, new, ref, _ = _write_tables(tmp_path)
    short = tmp_path / "short.csv"
    pd.read_csv(ref).iloc[:-3].to_csv(short, index=False)
    res = run_cli("compare", old, new, "--reference", short, cache=tmp_path / "c")
    assert res.returncode == 2 and "short.csv" in res.stderr and "lacks 3 of the 300" in res.stderr
    res = run_cli("compare", old, new, "--reference", tmp_path / "nope.csv", cache=tmp_path / "c")
    assert res.returncode == 2 and "nope.csv" in res.stderr
    # streamed comparisons keep no per-sample predictions: refused, clearly
    res = run_cli("compare", old, new, "--reference", ref, "--stream", "always", cache=tmp_path / "c")
    assert res.returncode == 2 and "old2.csv" in res.stderr and "--stream never" in res.stderr


# ------------------------------------------------------------------ the app's specs
def test_bundled_reseed_is_offered_and_resolves(tmp_path, monkeypatch):
    from graceful_ui import bundled_specs as inputs
    from graceful_ui.spec_ids import resolve_spec

    preds = tmp_path / "predictions"
    preds.mkdir()
    old, new, ref, _ = _write_tables(preds)
    os.replace(ref, preds / "old-reseed.csv")
    (tmp_path / "digits" / "test").mkdir(parents=True)  # a bundled sample has its test data (samples.present)
    monkeypatch.setenv("GRACEFUL_SAMPLE_DATA", str(tmp_path))
    base = next(s for s in inputs.bundled_specs() if s.new == str(new))
    assert inputs.bundled_reference(base) == str(preds / "old-reseed.csv")
    spec = resolve_spec(base.id + inputs.RESEED_MARK)
    assert spec.reference == str(preds / "old-reseed.csv") and spec.old == base.old and spec.id != base.id
    assert inputs.bundled_reference(spec) is None  # no reference of a reference
    other = next(s for s in inputs.bundled_specs() if s.new.endswith("old-reseed.csv"))
    assert inputs.bundled_reference(other) == str(preds / "old-reseed.csv")  # fine: old vs its reseed
    os.remove(preds / "old-reseed.csv")
    assert resolve_spec(base.id + inputs.RESEED_MARK) is None


def test_uploaded_reference_joins_the_spec_and_its_id(tmp_path):
    from graceful_ui.spec_ids import resolve_spec
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload

    old, new, ref, _ = _write_tables(tmp_path)
    up = {p.name: Upload(p.name, p.read_bytes()) for p in (old, new, ref)}
    plain = spec_from_uploads(up["old.csv"], up["new.csv"])
    with_ref = spec_from_uploads(up["old.csv"], up["new.csv"], reference=up["old2.csv"])
    assert plain.reference is None and with_ref.reference is not None and plain.id != with_ref.id
    assert resolve_spec(with_ref.id) == with_ref and with_ref.display_name(with_ref.reference) == "old2.csv"
    with pytest.raises(InputError) as e:
        spec_from_uploads(up["old.csv"], up["new.csv"], reference=Upload("old2.txt", b"x"))
    assert e.value.path == "old2.txt"


def test_app_overview_shows_floor_and_verdict_with_the_vocabulary_help(tmp_path):
    from graceful_core.comparing.sources import compare_sources
    from graceful_core.report.sentences import churn_verdict
    from graceful_core.vocabulary import METRICS
    from graceful_ui.upload_specs import spec_from_uploads
    from graceful_ui.uploaded_files import Upload
    from tests.apptest import run_app

    old, new, ref, arrays = _write_tables(tmp_path, seed=7)
    spec = spec_from_uploads(
        *(Upload(p.name, p.read_bytes()) for p in (old, new)), reference=Upload(ref.name, ref.read_bytes())
    )
    ref_nf, *_ = _brute(*arrays)
    at = run_app({"cmp": spec.id})
    shown = {m.label: m for m in at.metric}
    m = METRICS["churn_floor"]
    assert shown[m.label].value == f"{100 * ref_nf / len(arrays[0]):.2f} %"
    assert shown[m.label].help == m.help
    cf = compare_sources(old, new, reference=ref).churn_floor  # the words of the verdict come from the core
    assert any(churn_verdict(cf).words in md.value for md in at.markdown)
    assert any("old2.csv breaks" in c.value for c in at.caption)


FASHION = ROOT / "sample_data" / "fashion" / "predictions"


@pytest.mark.skipif(
    not (FASHION / "old-reseed.parquet").is_file(), reason="the Fashion-MNIST predictions are not built"
)
def test_fashion_churn_floor_equals_numpy_on_the_sample_tables():
    from graceful_core.comparing.sources import compare_sources

    t = {
        k: pd.read_parquet(FASHION / f"{k}.parquet", columns=["id", "label", "pred"]).set_index("id")
        for k in ("old", "new", "old-reseed")
    }
    ids = t["old"].index
    y, o = t["old"]["label"].to_numpy(), t["old"]["pred"].to_numpy()
    n, r = t["new"]["pred"].reindex(ids).to_numpy(), t["old-reseed"]["pred"].reindex(ids).to_numpy()
    ok = o == y
    b, c = int((ok & (n != y) & (r == y)).sum()), int((ok & (n == y) & (r != y)).sum())
    cf = compare_sources(
        FASHION / "old.parquet", FASHION / "new.parquet", reference=FASHION / "old-reseed.parquet"
    ).churn_floor
    assert cf.n_samples == len(ids) == 10_000
    assert cf.n_negative_flips == int((ok & (r != y)).sum()) > 0
    assert (cf.update_only_flips, cf.reference_only_flips) == (b, c)
    assert cf.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
