"""The Mitigate page's headline of the committed Fashion experiment, against the per-seed rows of the same JSON
(recomputed here with NumPy and scipy, not read from the summary the headline uses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel

from graceful_core.errors import InputError
from graceful_core.report.experiments import mitigation_headline

RESULTS = Path(__file__).resolve().parents[1] / "results" / "mitigation-fashion.json"


def test_headline_equals_the_per_seed_rows():
    run = json.loads(RESULTS.read_text())
    rows = run["per_seed"]
    plain_nfr = np.array([r["negative_flip_rate"] for r in rows["plain"]])
    plain_err = np.array([r["error_rate"] for r in rows["plain"]])
    distill = [m for m in rows if m != "plain" and not m.startswith("bct")]
    d_nfr = {m: np.array([r["negative_flip_rate"] for r in rows[m]]) - plain_nfr for m in distill}
    d_err = {m: np.array([r["error_rate"] for r in rows[m]]) - plain_err for m in distill}
    h = mitigation_headline(RESULTS)
    assert h.seeds == len(plain_nfr) >= 5 and h.n_test == 10_000
    assert h.plain_negative_flip_rate == pytest.approx(plain_nfr.mean())
    assert h.plain_error_rate == pytest.approx(plain_err.mean())
    assert h.distill_nfr_change == pytest.approx((min(v.mean() for v in d_nfr.values()),
                                                  max(v.mean() for v in d_nfr.values())))
    assert h.distill_error_change == pytest.approx((min(v.mean() for v in d_err.values()),
                                                    max(v.mean() for v in d_err.values())))
    plain_rows, n_sig = rows["plain"], 0
    for m in distill:
        a = [r["negative_flip_rate"] for r in rows[m]]
        b = [r["negative_flip_rate"] for r in plain_rows]
        n_sig += ttest_rel(a, b).pvalue < 0.05
    assert h.distill_significant == (n_sig, len(distill))
    bct = np.array([r["cross_test_hit1"] for r in rows["bct (λ 1)"]])
    assert h.bct_cross_test == pytest.approx(bct.mean())
    assert h.old_self_test == pytest.approx(np.mean(run["old_self_test_hit1"]))
    assert any("not reproduced" in s for s in h.sentences()) != h.equal_error_found


def test_a_file_that_is_not_an_experiment_is_an_input_error(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a mitigation experiment"):
        mitigation_headline(tmp_path / "x.json")
    with pytest.raises(InputError, match="no such file"):
        mitigation_headline(tmp_path / "missing.json")
