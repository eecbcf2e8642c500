"""The mitigation experiment in --quick mode on a small subset, plus its NumPy metric helpers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("experiment_mitigation", ROOT / "scripts" / "experiment_mitigation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


exp = _load_script()


def test_flip_metrics_hand_case():
    y = np.array([0, 1, 2, 0, 1])
    old = np.array([0, 1, 0, 0, 2])  # right, right, wrong, right, wrong
    new = np.array([0, 2, 2, 1, 2])  # right, wrong, right, wrong, wrong
    m = exp.flip_metrics(y, old, new)
    assert m["negative_flips"] == 2 and m["negative_flip_rate"] == pytest.approx(2 / 5)
    assert m["error_rate"] == pytest.approx(3 / 5) and m["old_error_rate"] == pytest.approx(2 / 5)
    assert m["relative_negative_flip_rate"] == pytest.approx((2 / 5) / ((3 / 5) * (3 / 5)))
    assert m["backward_trust_compatibility"] == pytest.approx(1 / 3)


def test_loo_hits_brute_force():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1, 2, 3, 0])  # label 3 has one sample: left out
    hits, n = exp.loo_hits(q, g, labels)
    expected = 0
    for i in range(12):
        if labels[i] == 3:
            continue
        best, best_j = -np.inf, -1
        for j in range(12):
            if j == i:
                continue
            c = q[i] @ g[j] / (np.linalg.norm(q[i]) * np.linalg.norm(g[j]))
            if c > best:
                best, best_j = c, j
        expected += labels[best_j] == labels[i]
    assert (hits, n) == (expected, 11)


def test_quick_run_writes_table_and_json(tmp_path):
    assert exp.main(["--quick", "--subset", "160", "--jobs", "1", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "mitigation.json").read_text())
    assert payload["n_samples"] == 160
    assert list(payload["summary"]) == ["plain", "distill", "focal-distillation", "bct"]
    for _method, rows in payload["per_seed"].items():
        assert len(rows) == 2  # --quick: 2 seeds
        for row in rows:
            for key in ("error_rate", "negative_flip_rate", "backward_trust_compatibility", "cross_test_hit1"):
                assert math.isfinite(row[key]) and 0.0 <= row[key] <= 1.0
            # identity of DESIGN §2: NFR <= ER_new and NFR <= 1 - ER_old
            assert row["negative_flip_rate"] <= row["error_rate"] + 1e-12
            assert row["negative_flip_rate"] <= 1 - row["old_error_rate"] + 1e-12
    md = (tmp_path / "mitigation.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4  # header, separator, one row per method
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "nan" not in md.lower()
