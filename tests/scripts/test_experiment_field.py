"""The field-settings remedy experiment (scripts/experiment_field.py) on a tiny IDX: protocol and numbers.

Tiny budgets: a smoke test of the protocol plus independent checks of its arithmetic (brute-force
NumPy flip counts, the McNemar test by hand, the choice rule), not a result.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.scripts.tiny_fashion import write_tiny_fashion

ROOT = Path(__file__).resolve().parents[2]


def _load():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("experiment_field", ROOT / "scripts" / "experiment_field.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


ef = _load()


def test_pair_numbers_equal_a_brute_force_count():
    rng = np.random.default_rng(0)
    y, old, new = rng.integers(0, 10, 500), rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    got = ef.pair_numbers(y, old, new)
    nf = sum(1 for a, b, t in zip(old, new, y, strict=True) if a == t and b != t)
    pf = sum(1 for a, b, t in zip(old, new, y, strict=True) if a != t and b == t)
    assert got["negative_flips"] == nf and got["positive_flips"] == pf
    assert got["negative_flip_rate"] == pytest.approx(nf / 500) and got["error_rate"] == pytest.approx(
        np.mean(new != y)
    )


def test_paired_mcnemar_counts_discordant_images_over_seeds():
    y = np.array([0, 0, 0, 0, 1, 1])
    old = np.array([0, 0, 0, 0, 0, 1])  # right on 0-3 and 5
    base = [np.array([1, 1, 0, 0, 1, 0]), np.array([1, 0, 0, 0, 0, 1])]
    meth = [np.array([0, 1, 0, 1, 0, 1]), np.array([0, 0, 0, 0, 0, 1])]
    got = ef.paired_mcnemar(y, old, base, meth)
    # seed 1: baseline breaks 0, 1, 5; method breaks 1, 3 -> only baseline {0, 5}, only method {3};
    # seed 2: baseline breaks 0; method none -> only baseline {0}.
    assert (got["flips_only_baseline"], got["flips_only_method"]) == (3, 1)
    assert got["flips_p"] == pytest.approx(stats.binomtest(1, 4, 0.5).pvalue)
    # errors: seed 1 baseline wrong on 0, 1, 5 (4 is right), method wrong on 1, 3, 4; seed 2 baseline wrong on 0, 4.
    assert (got["errors_only_baseline"], got["errors_only_method"]) == (2 + 1, 2 + 0)


def test_t_summary_is_scipys_paired_t():
    d = [-0.01, -0.02, -0.005]
    got = ef.t_summary(d)
    assert got["t_p"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)
    half = stats.t.ppf(0.975, 2) * np.std(d, ddof=1) / np.sqrt(3)
    assert got["ci95"] == pytest.approx([np.mean(d) - half, np.mean(d) + half])


def test_every_run_of_the_protocol_and_its_dependencies():
    setup = ef.FieldSetup()
    runs = ef.field_runs(setup)
    n_trained = sum(len(getattr(setup, g)) for _, g in ef.FAMILIES.values())
    assert len(runs) == 1 + len(setup.seeds) + len(setup.ensemble_extra) + len(setup.seeds) * (n_trained + 1)
    for s in setup.seeds:
        elodi = runs[f"{ef.ELODI} λ={setup.elodi_lambdas[0]:g} s{s}"]
        assert len(elodi.refs) == 3 and f"plain s{s}" not in elodi.refs and elodi.old is None
        assert runs[f"{ef.FD} λ={setup.fd_lambdas[0]:g} s{s}"].train["temperature"] == 100.0
        assert runs[f"ft s{s}"].init == "old" and runs[f"ft s{s}"].arch == runs["old"].arch
    # The first seed's plain run is the sample build's selection-time new model (same cache key).
    assert runs[f"plain s{setup.seeds[0]}"].config() == {
        "arch": "large-cnn-28",
        "data": "fit",
        "train": {"batch_size": 64, "epochs": 12, "seed": 3},
    }


def test_quick_run_writes_a_report_whose_endpoints_equal_the_baselines(tmp_path):
    src = tmp_path / "idx"
    write_tiny_fashion(src, train_per_class=10, test_per_class=3)
    out = tmp_path / "out"
    assert (
        ef.main(
            [
                "--quick",
                "--no-png",
                "--fashion-dir",
                str(src),
                "--jobs",
                "1",
                "--cache",
                str(tmp_path / "c"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    payload = json.loads((out / "mitigation-fashion.json").read_text())
    fams = payload["families"]
    assert set(fams) == {f.name for f in ef.families(ef.QUICK)}
    plain = payload["baselines"]["plain"]["per_seed"]["test"]
    ft = payload["baselines"]["fine-tuned"]["per_seed"]["test"]
    # Mixing at w_new = 1 is the plain new model; BCWI at α = 1 is the fine-tuned model; at w = 0 / α = 0, old.
    assert fams[ef.MIX]["candidates"][-1]["per_seed"]["test"] == plain
    assert fams[ef.BCWI]["candidates"][-1]["per_seed"]["test"] == ft
    for fam in (ef.MIX, ef.BCWI):
        assert all(r["negative_flips"] == 0 for r in fams[fam]["candidates"][0]["per_seed"]["test"])
    # The choice is the rule's, on validation.
    for name, r in fams.items():
        base = payload["baselines"][r["baseline"]]["mean"]["val"]["error_rate"]
        ok = [i for i, c in enumerate(r["candidates"]) if c["mean"]["val"]["error_rate"] <= base + 0.005 + 1e-12]
        assert [c["qualifies"] for c in r["candidates"]] == [i in ok for i in range(len(r["candidates"]))], name
        if ok:
            best = min(r["candidates"][i]["mean"]["val"]["negative_flip_rate"] for i in ok)
            assert r["candidates"][r["chosen"]]["mean"]["val"]["negative_flip_rate"] == best
        else:
            assert r["chosen"] is None
    trained = {f.name for f in ef.families(ef.QUICK) if f.needs_training and fams[f.name]["chosen"] is not None}
    if trained:
        val_nfr = {n: fams[n]["candidates"][fams[n]["chosen"]]["mean"]["val"]["negative_flip_rate"] for n in trained}
        assert val_nfr[payload["best_single_model"]["family"]] == min(val_nfr.values())
    else:
        assert payload["best_single_model"] is None
    md = (out / "mitigation-fashion.md").read_text()
    assert "## Verdicts" in md and "nan" not in md.lower() and md.count("chosen on validation") >= 1
