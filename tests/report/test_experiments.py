"""The Mitigate page's headline of the committed remedy experiment, against the per-seed rows of the same JSON
(recomputed here with NumPy and scipy, not read from the summaries the headline uses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from graceful_core.errors import InputError
from graceful_core.report.experiments import (
    SIGNIFICANCE,
    distillation_headline,
    experiment_sentences,
    mitigation_headline,
    remedy_sentence,
)

RESULTS = Path(__file__).resolve().parents[2] / "results" / "mitigation-fashion.json"


def test_headline_equals_the_per_seed_rows():
    run = json.loads(RESULTS.read_text())
    plain = run["baselines"]["plain"]["per_seed"]["test"]
    h = mitigation_headline(RESULTS)
    assert h.seeds == len(plain) >= 3 and h.n_test == 10_000
    assert h.plain_negative_flip_rate == pytest.approx(np.mean([r["negative_flip_rate"] for r in plain]))
    assert h.plain_error_rate == pytest.approx(np.mean([r["error_rate"] for r in plain]))
    assert [r.name for r in h.remedies] == list(run["families"])
    for r in h.remedies:
        fam = run["families"][r.name]
        if fam["chosen"] is None:
            assert r.setting is None and "nothing to recommend" in remedy_sentence(r, h.equal_error)
            continue
        base = run["baselines"][fam["baseline"]]["per_seed"]["test"]
        rows = fam["candidates"][fam["chosen"]]["per_seed"]["test"]
        for key, got in (("error_rate", r.error_change), ("negative_flip_rate", r.nfr_change)):
            d = np.array([m[key] - b[key] for m, b in zip(rows, base, strict=True)])
            lo, hi = (
                stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)) if d.std() > 0 else (d[0], d[0])
            )
            assert got == pytest.approx((d.mean(), lo, hi), abs=1e-12)
        # The per-image counts are at least the per-seed difference in negative flips (discordant pairs).
        nf_b, nf_m = r.flips_only
        assert nf_m - nf_b == sum(m["negative_flips"] - b["negative_flips"] for m, b in zip(rows, base, strict=True))
        assert r.flips_p == pytest.approx(stats.binomtest(nf_m, nf_b + nf_m, 0.5).pvalue if nf_b + nf_m else 1.0)
        assert r.fewer_flips == (r.flips_p < SIGNIFICANCE and nf_m < nf_b)
        sentence = remedy_sentence(r, h.equal_error)
        assert sentence.startswith(f"**{r.name}**") and ("fewer negative flips" in sentence) == r.fewer_flips


def test_a_file_that_is_not_an_experiment_is_an_input_error(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a mitigation experiment"):
        mitigation_headline(tmp_path / "x.json")
    with pytest.raises(InputError, match="no such file"):
        mitigation_headline(tmp_path / "missing.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(InputError, match="not a mitigation experiment"):
        mitigation_headline(tmp_path / "y.json")


LEGACY = RESULTS.with_name("mitigation-fashion-2000.json")


def test_the_distillation_experiments_keep_their_headline():
    """The earlier distillation experiment (2,000 photos, old format): its headline against its per-seed rows."""
    run = json.loads(LEGACY.read_text())
    rows = run["per_seed"]
    plain_nfr = np.array([r["negative_flip_rate"] for r in rows["plain"]])
    distill = [m for m in rows if m != "plain" and not m.startswith("bct")]
    d_nfr = {m: np.array([r["negative_flip_rate"] for r in rows[m]]) - plain_nfr for m in distill}
    h = distillation_headline(LEGACY)
    assert h.seeds == len(plain_nfr) >= 5
    assert h.plain_negative_flip_rate == pytest.approx(plain_nfr.mean())
    assert h.distill_nfr_change == pytest.approx(
        (min(v.mean() for v in d_nfr.values()), max(v.mean() for v in d_nfr.values()))
    )
    n_sig = sum(stats.ttest_rel([r["negative_flip_rate"] for r in rows[m]], plain_nfr).pvalue < 0.05 for m in distill)
    assert h.distill_significant == (n_sig, len(distill))
    assert experiment_sentences(LEGACY) == h.sentences()
    assert experiment_sentences(RESULTS) == mitigation_headline(RESULTS).sentences()
