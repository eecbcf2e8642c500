"""Label issues: planted label errors on the Fashion tables are found, and the parts are right by hand.

The evidence test relabels 300 of the 10,000 Fashion test images at random (another
class, uniformly) and measures recall (planted ones flagged) and precision (flagged ones
planted) of the flags computed from the bundled old and new models' probabilities.
The figures are stated in docs/metrics.md, "Label issues".
"""

from pathlib import Path

import numpy as np
import pytest

from graceful_core.comparing.predictions import compare_predictions
from graceful_core.io.tables import join_predictions, load_predictions_table
from graceful_core.metrics.confidence import softmax
from graceful_core.metrics.label_issues import (
    AMBIGUITY_MIN_P,
    ambiguous_pairs,
    find_label_issues,
    negative_flip_rate_excluding,
)
from graceful_core.metrics.significance import wilson_interval
from graceful_core.types import Predictions
from tests.helpers import predictions

ROOT = Path(__file__).resolve().parents[2]
PRED = ROOT / "sample_data" / "fashion" / "predictions"
N_PLANTED = 300


@pytest.fixture(scope="module")
def fashion():
    old = load_predictions_table(PRED / "old.parquet")
    new = load_predictions_table(PRED / "new.parquet", classes=list(old.classes))
    o, n = join_predictions(old, new)
    return o.labels.astype(np.int64), softmax(o.scores, o.score_kind), softmax(n.scores, n.score_kind)


def plant(y: np.ndarray, k: int, n_wrong: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``y`` with ``n_wrong`` labels (random rows) moved to another class, uniformly; and those rows."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), n_wrong, replace=False)
    noisy = y.copy()
    noisy[rows] = (y[rows] + rng.integers(1, k, n_wrong)) % k
    return noisy, rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_label_errors_are_flagged(fashion, seed):
    y, po, pn = fashion
    noisy, rows = plant(y, po.shape[1], N_PLANTED, seed)
    assert (noisy[rows] != y[rows]).all()
    li = find_label_issues(noisy, po, pn)
    planted = np.zeros(len(y), bool)
    planted[rows] = True
    recall = (li.flagged & planted).sum() / N_PLANTED
    precision = (li.flagged & planted).sum() / li.n_flagged
    print(f"seed {seed}: flagged {li.n_flagged}, recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.70 and li.n_flagged <= 3 * N_PLANTED
    # a planted label is seldom the class both models prefer: the suggestion is mostly the original label
    assert (li.suggested[rows[li.flagged[rows]]] == y[rows[li.flagged[rows]]]).mean() > 0.9
    # the flagged ones carry much lower label quality than the rest
    assert np.median(li.quality[li.flagged]) < 0.2 < np.median(li.quality[~li.flagged])


def test_quality_is_the_mean_probability_of_the_given_label(fashion):
    y, po, pn = fashion
    li = find_label_issues(y, po, pn)
    mean = (po / po.sum(1, keepdims=True) + pn / pn.sum(1, keepdims=True)) / 2
    expected = np.array([mean[i, y[i]] for i in range(len(y))])  # row by row, no fancy indexing
    np.testing.assert_allclose(li.quality, expected, rtol=1e-6)
    assert (li.likely[:, 0] == mean.argmax(1)).all()


def test_flags_agree_with_confident_learning_computed_by_hand():
    """Confident learning on a small case worked through by hand (Northcutt et al. 2021, Sec. 3.1).

    Class 0 has 10 images with p(0) = 0.9 and class 1 has 10 with p(1) = 0.8, so the
    per-class thresholds are 0.9 and 0.8. Two images labelled 0 get p(1) = 0.95: both
    are confidently class 1, the confident joint has 2 in the (0 → 1) cell, and
    prune-by-noise-rate removes those two.
    """
    y = np.array([0] * 12 + [1] * 10)
    p = np.empty((22, 2))
    p[:10] = [0.9, 0.1]
    p[10:12] = [0.05, 0.95]
    p[12:] = [0.2, 0.8]
    li = find_label_issues(y, p, p)
    assert np.flatnonzero(li.flagged).tolist() == [10, 11]
    assert li.flagged_order().tolist() == [10, 11]


def test_ambiguous_by_brute_force():
    rng = np.random.default_rng(3)
    po = rng.dirichlet([0.6] * 4, 400)
    pn = rng.dirichlet([0.6] * 4, 400)
    got = ambiguous_pairs(po, pn)
    for i in range(400):
        top_o = sorted(range(4), key=lambda c: -po[i, c])[:2]
        top_n = sorted(range(4), key=lambda c: -pn[i, c])[:2]
        want = set(top_o) == set(top_n) and po[i, top_o[1]] >= AMBIGUITY_MIN_P and pn[i, top_n[1]] >= AMBIGUITY_MIN_P
        assert got[i] == want, i
    assert 0 < got.sum() < 400  # the case exercises both answers


def test_nfr_excluding_by_hand():
    nf = np.zeros(100, bool)
    nf[:5] = True
    ex = np.zeros(100, bool)
    ex[[0, 1, 50]] = True
    rate, ci, k, n = negative_flip_rate_excluding(nf, ex)
    assert (k, n) == (3, 97) and rate == pytest.approx(3 / 97) and ci == wilson_interval(3, 97)


def test_refusals_and_their_controls():
    y = np.repeat([0, 1], 6)
    p = np.tile([[0.7, 0.3]], (12, 1))
    find_label_issues(y, p, p)  # control: runs
    with pytest.raises(ValueError, match="shape"):
        find_label_issues(y, p, p[:5])
    with pytest.raises(ValueError, match="finite"):
        find_label_issues(y, p, np.where(np.eye(12, 2, dtype=bool), np.nan, p))
    with pytest.raises(ValueError, match="labels must be in"):
        find_label_issues(np.r_[y[:-1], 2], p, p)
    with pytest.raises(ValueError, match="at least 5"):
        find_label_issues(np.r_[[0] * 9, [1] * 3], p, p)


def _preds(n: int, scores: bool) -> tuple[Predictions, Predictions]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    ids = np.array([f"s{i}" for i in range(n)], dtype=object)
    s_old = rng.normal(size=(n, 3)) + 3 * np.eye(3)[y]
    s_new = rng.normal(size=(n, 3)) + 3 * np.eye(3)[y]
    return tuple(
        predictions(ids, s.argmax(1), classes=["a", "b", "c"], labels=y, scores=s if scores else None, source="")
        for s in (s_old, s_new)
    )


def test_report_keys_and_the_samples_table():
    old, new = _preds(60, scores=True)
    comp = compare_predictions(old, new, with_slices=False)
    li = comp.to_report()["label_issues"]
    assert set(li) >= {
        "method",
        "n_flagged",
        "flagged",
        "negative_flips_flagged",
        "negative_flip_rate_excluding_flagged",
        "negative_flip_rate_excluding_flagged_ci95",
    }
    assert "cleanlab" in li["method"] and li["n_flagged"] == len(li["flagged"])
    df = comp.samples()
    assert df["label_issue"].sum() == li["n_flagged"]
    assert set(li["flagged"]) == set(df.loc[df["label_issue"], "id"])
    nf = (df["flip"] == "negative flip") & ~df["label_issue"]
    assert li["negative_flip_rate_excluding_flagged"] == pytest.approx(nf.sum() / (~df["label_issue"]).sum())


def test_without_scores_there_is_no_key_and_with_too_few_images_a_reason():
    old, new = _preds(30, scores=False)
    comp = compare_predictions(old, new, with_slices=False)
    assert comp.label_issues is None and "label_issues" not in comp.to_report()
    old, new = _preds(12, scores=True)  # 4 images per class: below the minimum of 5
    rep = compare_predictions(old, new, with_slices=False).to_report()["label_issues"]
    assert set(rep) == {"reason"} and "at least 5" in rep["reason"]


def test_the_grid_sorts_by_label_quality_lowest_first():
    from graceful_core.explore.selection import LABEL_QUALITY_ORDER, grid_page

    old, new = _preds(60, scores=True)
    comp = compare_predictions(old, new, with_slices=False)
    page = grid_page(comp, order=LABEL_QUALITY_ORDER, per_page=60)
    q = page.rows["label_quality"].to_numpy()
    assert (np.diff(q) >= 0).all() and q[0] == comp.label_issues.quality.min()
