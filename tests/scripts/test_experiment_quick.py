"""The mitigation experiment: its metric wrappers against brute force, --quick runs on digits and on a tiny
Fashion-MNIST written by the test."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.helpers import brute_force_hit1
from tests.scripts.tiny_fashion import write_tiny_fashion

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "experiment_mitigation", ROOT / "scripts" / "experiment_mitigation.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


exp = _load_script()


def _one_hot_logits(pred: np.ndarray, k: int) -> np.ndarray:
    z = np.zeros((len(pred), k), dtype=np.float32)
    z[np.arange(len(pred)), pred] = 1.0
    return z


def test_flip_metrics_hand_case():
    y = np.array([0, 1, 2, 0, 1])
    old = np.array([0, 1, 0, 0, 2])  # right, right, wrong, right, wrong
    new = np.array([0, 2, 2, 1, 2])  # right, wrong, right, wrong, wrong
    emb = np.zeros((5, 2), dtype=np.float32)
    m = exp.flip_metrics(y, exp.Outputs(_one_hot_logits(old, 3), emb), exp.Outputs(_one_hot_logits(new, 3), emb), 3)
    assert m["negative_flips"] == 2 and m["negative_flip_rate"] == pytest.approx(2 / 5)
    assert m["error_rate"] == pytest.approx(3 / 5) and m["old_error_rate"] == pytest.approx(2 / 5)
    assert m["relative_negative_flip_rate"] == pytest.approx((2 / 5) / ((3 / 5) * (3 / 5)))
    assert m["backward_trust_compatibility"] == pytest.approx(1 / 3)


def test_retrieval_hits_brute_force():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 3, 0])  # label 3 has one sample: left out
    logits = np.zeros((12, 4), dtype=np.float32)
    h = exp.retrieval_hits(labels, exp.Outputs(logits, g), exp.Outputs(logits, q))

    assert h["n_queries"] == 11
    assert h["cross_test_hit1"] == pytest.approx(brute_force_hit1(q, g, labels))
    assert h["self_test_hit1"] == pytest.approx(brute_force_hit1(q, q, labels))
    assert h["old_self_test_hit1"] == pytest.approx(brute_force_hit1(g, g, labels))


def test_paired_test_is_scipys_paired_t_and_wilcoxon():
    a = np.array([0.031, 0.029, 0.035, 0.030, 0.033])
    b = np.array([0.025, 0.027, 0.026, 0.028, 0.024])
    r = exp.paired_test(list(b - a))
    assert r["mean"] == pytest.approx(np.mean(b - a)) and r["std"] == pytest.approx(np.std(b - a, ddof=1))
    assert r["t_p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(0.0625)  # all five differences negative: 2 / 2**5
    assert exp.paired_test([0.0, 0.0, 0.0]) | {"mean": 0} == {"mean": 0, "std": 0.0, "t_p": None, "wilcoxon_p": None}


def test_quick_digits_run_writes_table_and_json(tmp_path):
    assert exp.main(["--quick", "--subset", "160", "--jobs", "1", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "mitigation.json").read_text())
    assert payload["n_samples"] == 160
    assert list(payload["summary"]) == ["plain", "distill", "focal-distillation", "bct"]
    for _method, rows in payload["per_seed"].items():
        assert len(rows) == 2  # --quick: 2 seeds
        for row in rows:
            for key in ("error_rate", "negative_flip_rate", "backward_trust_compatibility", "cross_test_hit1"):
                assert math.isfinite(row[key]) and 0.0 <= row[key] <= 1.0
            # identity of docs/metrics.md: NFR <= ER_new and NFR <= 1 - ER_old
            assert row["negative_flip_rate"] <= row["error_rate"] + 1e-12
            assert row["negative_flip_rate"] <= 1 - row["old_error_rate"] + 1e-12
            assert row["negative_flips"] == round(row["negative_flip_rate"] * 160)
    md = (tmp_path / "mitigation.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4  # header, separator, one row per method
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "nan" not in md.lower()


def test_quick_fashion_run_on_a_tiny_idx(tmp_path):
    src = tmp_path / "idx"
    write_tiny_fashion(src, train_per_class=10, test_per_class=3)
    out = tmp_path / "out"
    args = [
        "--dataset",
        "fashion",
        "--quick",
        "--fashion-dir",
        str(src),
        "--jobs",
        "1",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--lambdas",
        "0.5",
        "1",
        "--no-png",
    ]
    assert exp.main(args) == 0
    payload = json.loads((out / "mitigation-fashion-2000.json").read_text())
    assert payload["n_samples"] == 30 and payload["n_train"] == 40
    names = list(payload["summary"])
    assert names[0] == "plain" and names[-1] == "bct (λ 1)" and len(names) == 1 + 3 * 2 + 1
    for rows in payload["per_seed"].values():
        assert len(rows) == 2
        for row in rows:
            assert row["negative_flip_rate"] <= row["error_rate"] + 1e-12
            assert row["negative_flips"] == round(row["negative_flip_rate"] * 30)
    for name, s in payload["summary"].items():
        assert ("vs_plain" in s) == (name != "plain")
    assert set(payload["selection"]) == set(exp.FAMILIES)
    md = (out / "mitigation-fashion-2000.md").read_text()
    assert "Choice of λ on the validation split" in md and "nan" not in md.lower()
    # A second run reads every training from the cache and writes the same numbers.
    assert exp.main(args) == 0
    again = json.loads((out / "mitigation-fashion-2000.json").read_text())
    assert again["per_seed"] == payload["per_seed"]
