"""Tests of graceful_core.metrics.slices against scipy, brute-force sums and planted effects.

Every expected p-value is computed here, independently of the module: counts from pandas
group-bys of the test's own tables, p from ``scipy.stats.fisher_exact`` or an exact
hypergeometric sum in rationals, and the Benjamini–Hochberg step-up written out by hand.
"""

from __future__ import annotations

import doctest
import json
import math
from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control, fisher_exact

from graceful_core.metrics import slice_candidates, slice_clusters, slice_types
from graceful_core.metrics import slices as sl
from graceful_core.metrics.significance import wilson_interval
from graceful_core.metrics.slices import (
    JSON_KEYS,
    MISSING,
    SliceCandidate,
    default_n_clusters,
    embedding_clusters,
    find_regression_slices,
    metadata_candidates,
    rank_slices,
    slice_p_value,
    slices_exceeding,
)


# ----------------------------------------------------------------- references
def _hypergeom_tail(fs: int, ns: int, f: int, n: int) -> Fraction:
    """P(X >= fs) for X ~ Hypergeometric(N=n, F=f successes, ns draws), exactly."""
    total = comb(n, ns)
    return Fraction(sum(comb(f, x) * comb(n - f, ns - x) for x in range(fs, min(f, ns) + 1)), total)


def _bh_by_hand(p: list[float]) -> list[float]:
    """Benjamini–Hochberg step-up: p~_(i) = min_{j >= i} min(1, m p_(j) / j)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        adj[i] = min(1.0, running)
    return adj


def _fisher(fs: int, ns: int, fr: int, nr: int) -> float:
    return float(fisher_exact([[fs, ns - fs], [fr, nr - fr]], alternative="greater").pvalue)


def test_module_examples_run():
    results = [
        doctest.testmod(m, optionflags=doctest.ELLIPSIS) for m in (sl, slice_types, slice_candidates, slice_clusters)
    ]
    assert sum(r.attempted for r in results) >= 10
    assert sum(r.failed for r in results) == 0


# ------------------------------------------------------------- acceptance: a planted site
def _site_camera_tables(seed: int, planted_site: str | None, n: int = 3000):
    """Old and new predictions tables with `site` and `camera` on the old side.

    Old is right on ~90 %; new breaks 2 % of old-correct samples everywhere and, in
    ``planted_site``, 15 % more.
    """
    rng = np.random.default_rng(seed)
    classes = ["bolt", "nut", "washer", "screw"]
    sites = rng.choice(["north", "south", "east", "west", "harbour"], size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    cameras = rng.choice(["cam-A", "cam-B", "cam-C"], size=n)
    label = rng.integers(0, 4, n)
    old_pred = np.where(rng.random(n) < 0.9, label, (label + rng.integers(1, 4, n)) % 4)
    p_break = np.full(n, 0.02)
    if planted_site is not None:
        p_break[sites == planted_site] += 0.15
    breaks = (old_pred == label) & (rng.random(n) < p_break)
    new_pred = np.where(breaks, (label + 1) % 4, old_pred)
    ids = [f"img{i:05d}.png" for i in range(n)]
    names = np.asarray(classes)
    old = pd.DataFrame({"id": ids, "label": names[label], "pred": names[old_pred], "site": sites, "camera": cameras})
    new = pd.DataFrame({"id": ids, "label": names[label], "pred": names[new_pred]})
    return old, new, classes


def test_planted_site_is_first_with_scipys_exact_and_adjusted_p(tmp_path):
    old, new, classes = _site_camera_tables(seed=7, planted_site="harbour")
    old.to_csv(tmp_path / "old.csv", index=False)
    new.sample(frac=1.0, random_state=1).to_csv(tmp_path / "new.csv", index=False)  # other row order
    old_t = pd.read_csv(tmp_path / "old.csv", dtype=str)
    new_t = pd.read_csv(tmp_path / "new.csv", dtype=str).set_index("id").loc[old_t["id"]].reset_index()
    flips = (old_t["pred"] == old_t["label"]) & (new_t["pred"] != old_t["label"])
    labels = old_t["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()

    rep = find_regression_slices(flips.to_numpy(), labels, classes, metadata=old_t)

    # the reference, computed here: every (column, value) of site and camera
    ref_keys, ref_p = [], []
    n, f = len(old_t), int(flips.sum())
    for col in ("site", "camera"):
        for value, grp in flips.groupby(old_t[col]):
            ns, fs = len(grp), int(grp.sum())
            ref_keys.append((col, value))
            ref_p.append(_fisher(fs, ns, f - fs, n - ns))
    ref_adj = _bh_by_hand(ref_p)
    np.testing.assert_allclose(ref_adj, false_discovery_control(ref_p, method="bh"), rtol=1e-12)

    got = {(s.column, s.value): s for s in rep.slices}
    assert set(got) == set(ref_keys)  # id, label and pred are not slices
    assert (rep.slices[0].kind, rep.slices[0].column, rep.slices[0].value) == ("metadata", "site", "harbour")
    for key, p, pa in zip(ref_keys, ref_p, ref_adj):
        assert got[key].p_value == pytest.approx(p, rel=1e-12, abs=0)
        assert got[key].p_adjusted == pytest.approx(pa, rel=1e-12, abs=0)
    first = rep.slices[0]
    assert first.p_adjusted < 1e-6
    assert first.negative_flip_rate > 3 * first.rest_negative_flip_rate
    harbour = (old_t["site"] == "harbour").to_numpy()
    assert first.indices.tolist() == np.flatnonzero(harbour).tolist()
    assert first.negative_flips == int(flips[harbour].sum())
    assert [s.title for s in slices_exceeding(rep, 0.10)] == ["site = harbour"]


def test_no_planted_site_gives_no_significant_slice():
    old, new, classes = _site_camera_tables(seed=8, planted_site=None)
    flips = ((old["pred"] == old["label"]) & (new["pred"] != old["label"])).to_numpy()
    rep = find_regression_slices(flips, np.zeros(len(old), int), ["x"], metadata=old)
    assert len(rep.slices) == 8
    assert rep.significant() == ()
    assert slices_exceeding(rep, 0.0) == ()


# ------------------------------------------------------------------ p-values
@pytest.mark.parametrize(
    "fs, ns, fr, nr",
    [
        (3, 10, 2, 90),
        (0, 10, 5, 90),
        (5, 5, 0, 95),
        (1, 1, 4, 99),
        (0, 1, 5, 99),
        (10, 400, 30, 9600),
        (7, 50, 7, 50),
        (2, 3, 0, 0),
        (0, 20, 0, 80),
        (20, 20, 80, 80),
        (40, 1000, 60, 9000),
        (1, 2, 1, 2),
    ],
)
def test_p_value_equals_scipy_fisher_exact(fs, ns, fr, nr):
    assert slice_p_value(fs, ns, fr, nr) == pytest.approx(_fisher(fs, ns, fr, nr), rel=1e-12, abs=0)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 400), st.integers(0, 400))
def test_p_value_equals_scipy_on_random_tables(a, b, c, d):
    fs, ns, fr, nr = min(a, b), max(a, b), min(c, d), max(c, d)
    assert slice_p_value(fs, ns, fr, nr) == pytest.approx(_fisher(fs, ns, fr, nr), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("fs, ns, fr, nr", [(3, 10, 2, 90), (4, 12, 6, 200), (1, 1, 4, 99), (6, 6, 0, 54)])
def test_p_value_equals_brute_force_hypergeometric_sum(fs, ns, fr, nr):
    exact = _hypergeom_tail(fs, ns, fs + fr, ns + nr)
    assert slice_p_value(fs, ns, fr, nr) == pytest.approx(float(exact), rel=1e-10, abs=0)


def test_hand_values():
    assert slice_p_value(1, 1, 4, 99) == pytest.approx(5 / 100)  # one sample, one of 5 flips in 100
    assert slice_p_value(6, 6, 0, 54) == pytest.approx(1 / comb(60, 6))  # all 6 flips in 6 of 60
    assert slice_p_value(0, 10, 5, 90) == 1.0  # nothing is "more" than zero
    assert slice_p_value(3, 3, 0, 0) == 1.0  # no rest
    assert slice_p_value(0, 3, 0, 7) == 1.0  # no flips anywhere


def test_rank_slices_p_from_brute_force():
    flips = np.zeros(40, bool)
    flips[[0, 1, 2, 10, 30]] = True
    cand = SliceCandidate("metadata", "site", "a", np.arange(0, 8))
    (s,) = rank_slices(flips, [cand])
    assert s.p_value == pytest.approx(float(_hypergeom_tail(3, 8, 5, 40)), rel=1e-10)
    assert s.p_adjusted == s.p_value  # a single candidate: nothing to adjust


@pytest.mark.parametrize("bad", [(-1, 3, 0, 5), (4, 3, 0, 5), (1, 3, 6, 5), (1.5, 3, 0, 5), (True, 3, 0, 5)])
def test_p_value_rejects_bad_counts(bad):
    with pytest.raises(ValueError):
        slice_p_value(*bad)


# -------------------------------------------------------------- null calibration
def test_under_the_null_a_slice_is_called_significant_in_about_five_percent_of_trials():
    """Flips uniform at random: P(any adjusted p < 0.05) is the family-wise rate under the complete null."""
    rng = np.random.default_rng(2024)
    n = 1500
    meta = pd.DataFrame(
        {
            "site": rng.choice(list("abcde"), size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08]),
            "camera": rng.choice(["x", "y", "z"], size=n),
            "lux": rng.gamma(2.0, 50.0, size=n),
        }
    )
    cands = list(metadata_candidates(meta).candidates)
    emb = rng.normal(size=(n, 8)) + 3 * np.eye(8)[rng.integers(0, 8, n)]
    clustering = embedding_clusters(emb, np.zeros(n, int), ["x"], n_clusters=6, seed=0)
    cands += list(clustering.candidates())
    assert len(cands) == 5 + 3 + 5 + 6
    trials = 400
    hits = unadjusted_hits = 0
    for _ in range(trials):
        flips = rng.random(n) < 0.03
        ranked = rank_slices(flips, cands)
        hits += ranked[0].p_adjusted < 0.05
        unadjusted_hits += min(s.p_value for s in ranked) < 0.05
    rate = hits / trials
    # BH at 0.05 under the complete null with the (conservative, discrete) Fisher test:
    # at most about 5 % (2,000 trials give about 3 %); 9 % is far outside binomial noise
    # around 5 % (sd 1.1 points at 400 trials).
    assert rate <= 0.09
    assert rate > 0.0  # not a test that can never fire
    assert unadjusted_hits / trials > 0.3  # without the adjustment, 19 looks find "something" half the time


def test_planted_effect_is_found_in_most_trials():
    """Power check, the other side of the null test: an excess of 3x in a 10 % site."""
    rng = np.random.default_rng(5)
    n = 1500
    site = rng.choice(list("abcde"), size=n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    cands = metadata_candidates(pd.DataFrame({"site": site})).candidates
    found = 0
    for _ in range(50):
        flips = rng.random(n) < np.where(site == "e", 0.09, 0.03)
        top = rank_slices(flips, cands)[0]
        found += top.value == "e" and top.p_adjusted < 0.05
    assert found >= 35


# -------------------------------------------------------------- degenerate cases
def test_size_one_slices():
    flips = np.zeros(100, bool)
    flips[[0, 50, 60, 70, 80]] = True
    hit = SliceCandidate("metadata", "c", "hit", [0])
    miss = SliceCandidate("metadata", "c", "miss", [1])
    by_value = {s.value: s for s in rank_slices(flips, [miss, hit])}
    assert by_value["hit"].p_value == pytest.approx(5 / 100)
    assert by_value["hit"].negative_flip_rate == 1.0
    assert by_value["hit"].negative_flip_rate_ci95 == wilson_interval(1, 1)
    assert by_value["hit"].rest_negative_flip_rate == pytest.approx(4 / 99)
    assert by_value["miss"].p_value == 1.0
    assert by_value["miss"].negative_flip_rate_ci95[0] == 0.0
    assert by_value["hit"].p_adjusted == pytest.approx(min(1.0, 0.05 * 2 / 1))


def test_slice_without_flips():
    flips = np.r_[np.ones(5, bool), np.zeros(45, bool)]
    (s,) = rank_slices(flips, [SliceCandidate("metadata", "c", "v", np.arange(10, 30))])
    assert (s.negative_flips, s.negative_flip_rate, s.p_value, s.p_adjusted) == (0, 0.0, 1.0, 1.0)
    assert s.excess == pytest.approx(0 - 20 * 5 / 30)
    assert s.to_json()["negative_flip_rate_ci95"][0] == 0.0


def test_slice_equal_to_everything_has_no_rest():
    flips = np.r_[np.ones(3, bool), np.zeros(17, bool)]
    everything = SliceCandidate("metadata", "c", "all", np.arange(20))
    part = SliceCandidate("metadata", "d", "part", np.arange(10, 20))  # no flips: p = 1, finite excess
    ranked = rank_slices(flips, [everything, part])
    assert [s.value for s in ranked] == ["part", "all"]  # equal adjusted p: NaN excess goes last
    s = ranked[1]
    assert s.p_value == 1.0 and s.rest_size == 0
    assert math.isnan(s.rest_negative_flip_rate) and math.isnan(s.excess)
    j = s.to_json()
    assert j["rest_negative_flip_rate"] is None
    json.dumps(j, allow_nan=False)


def test_no_flips_at_all():
    meta = pd.DataFrame({"site": list("aabbbc") * 10})
    rep = find_regression_slices(np.zeros(60, bool), np.zeros(60, int), ["x"], metadata=meta)
    assert rep.negative_flips == 0 and len(rep.slices) == 3
    assert all(s.p_value == 1.0 and s.p_adjusted == 1.0 and s.negative_flip_rate == 0.0 for s in rep.slices)
    assert rep.significant() == ()
    assert slices_exceeding(rep, 0.0) == ()


def test_single_candidate_is_not_adjusted():
    flips = np.r_[np.ones(4, bool), np.zeros(26, bool)]
    meta = pd.DataFrame({"site": ["a"] * 6 + [None] * 24})  # one value + missing = 2 slices
    rep = find_regression_slices(flips, np.zeros(30, int), ["x"], metadata=meta)
    assert [s.value for s in rep.slices] == ["a", MISSING]
    (s,) = rank_slices(flips, [SliceCandidate("metadata", "site", "a", np.arange(6))])
    assert s.p_adjusted == s.p_value == pytest.approx(_fisher(4, 6, 0, 24))


def test_no_candidates():
    rep = find_regression_slices(np.zeros(5, bool), np.zeros(5, int), ["x"])
    assert rep.slices == () and rep.to_json() == [] and rep.clustering is None
    assert rank_slices(np.zeros(5, bool), []) == ()
    assert rank_slices(np.zeros(5, bool), [SliceCandidate("metadata", "c", "v", [])]) == ()  # empty dropped
    few = find_regression_slices(np.zeros(10, bool), np.zeros(10, int), ["x"], embeddings=np.eye(10))
    assert few.clustering is None and few.slices == ()  # fewer than 20 samples: no clusters


def test_bad_inputs():
    with pytest.raises(ValueError, match="boolean"):
        rank_slices(np.array([0.5, 1.0]), [])
    with pytest.raises(ValueError, match="outside"):
        rank_slices(np.zeros(3, bool), [SliceCandidate("metadata", "c", "v", [1, 3])])
    with pytest.raises(ValueError, match="repeats"):
        SliceCandidate("metadata", "c", "v", [2, 1, 2])
    with pytest.raises(ValueError, match="rows"):
        find_regression_slices(np.zeros(3, bool), np.zeros(3, int), ["x"], metadata=pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(ValueError, match="shape"):
        find_regression_slices(np.zeros(3, bool), np.zeros(3, int), ["x"], embeddings=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        embedding_clusters(np.full((30, 2), np.nan), np.zeros(30, int), ["x"])
    with pytest.raises(ValueError, match="n_clusters"):
        embedding_clusters(np.eye(30), np.zeros(30, int), ["x"], n_clusters=1)
    with pytest.raises(ValueError, match="max_nfr"):
        slices_exceeding([], 1.5)
    with pytest.raises(ValueError, match="more than once"):
        metadata_candidates(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# -------------------------------------------------------------- ranking and JSON
def test_ranking_is_by_adjusted_p_then_excess():
    rng = np.random.default_rng(3)
    n = 800
    meta = pd.DataFrame({"a": rng.choice(list("pqrst"), n), "b": rng.choice(list("uvw"), n), "c": rng.normal(size=n)})
    flips = rng.random(n) < np.where(meta["a"] == "t", 0.2, 0.04)
    rep = find_regression_slices(flips, np.zeros(n, int), ["x"], metadata=meta)
    keys = [(s.p_adjusted, -s.excess) for s in rep.slices]
    assert keys == sorted(keys)
    for s in rep.slices:  # excess as stated: flips beyond the rest's rate for a slice of this size
        assert s.excess == pytest.approx(s.negative_flips - s.size * s.rest_negative_flips / s.rest_size)
    # equal adjusted p (both 1): the smaller deficit ranks first
    flips = np.zeros(30, bool)
    flips[:3] = True
    small = SliceCandidate("metadata", "c", "small", np.arange(10, 15))
    big = SliceCandidate("metadata", "c", "big", np.arange(10, 30))
    assert [s.value for s in rank_slices(flips, [big, small])] == ["small", "big"]


def test_json_has_exactly_the_report_keys():
    rng = np.random.default_rng(0)
    n = 200
    emb = rng.normal(size=(n, 4))
    meta = pd.DataFrame({"site": rng.choice(list("ab"), n)})
    flips = rng.random(n) < 0.1
    rep = find_regression_slices(flips, rng.integers(0, 3, n), ["a", "b", "c"], metadata=meta, embeddings=emb)
    out = rep.to_json()
    assert len(out) == 2 + rep.clustering.n_clusters
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    for entry, s in zip(out, rep.slices):
        assert tuple(entry) == JSON_KEYS
        assert entry["size"] == len(s.indices)
        assert entry["negative_flips"] == int(flips[s.indices].sum())
        assert entry["negative_flip_rate"] == pytest.approx(entry["negative_flips"] / entry["size"])
        assert entry["negative_flip_rate_ci95"] == list(wilson_interval(entry["negative_flips"], entry["size"]))
        if entry["kind"] == "embedding":
            assert entry["column"] is None and isinstance(entry["value"], int)
            assert s.cluster is not None and s.cluster.cluster == entry["value"]
        else:
            assert entry["column"] == "site" and entry["value"] in ("a", "b") and s.cluster is None


def test_gate():
    flips = np.r_[np.ones(12, bool), np.zeros(188, bool)]
    site = np.array(["a"] * 20 + ["b"] * 5 + ["c"] * 175)
    flips[20:22] = True  # b: 2/5 = 40 % but too small to be significant
    rep = find_regression_slices(flips, np.zeros(200, int), ["x"], metadata=pd.DataFrame({"site": site}))
    by = {s.value: s for s in rep.slices}
    assert by["a"].p_adjusted < 0.05 and by["a"].negative_flip_rate == pytest.approx(0.6)
    assert by["b"].p_adjusted >= 0.05 and by["b"].negative_flip_rate == pytest.approx(0.4)
    assert [s.value for s in slices_exceeding(rep, 0.3)] == ["a"]
    assert [s.value for s in slices_exceeding(rep.slices, 0.3)] == ["a"]
    assert slices_exceeding(rep, 0.6) == ()  # NFR must be above X, not equal
    assert slices_exceeding(rep, 0.3, alpha=by["a"].p_adjusted) == ()  # adjusted p must be below alpha


# -------------------------------------------------------------- metadata rules
def test_reserved_columns_are_not_slices():
    n = 12
    meta = pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "path": ["p"] * n,
            "label": ["a", "b"] * 6,
            "pred": ["a"] * n,
            "logit_0": np.arange(n, dtype=float),
            "emb_3": np.ones(n),
            "Prob_1": np.ones(n),
            "probs": [0.1] * n,
            "site": ["s", "t"] * 6,
        }
    )
    cs = metadata_candidates(meta)
    assert {c.column for c in cs.candidates} == {"site"}
    assert cs.skipped_columns == ()


def test_categorical_limit_and_partition():
    n = 500
    meta = pd.DataFrame({"fifty": [f"v{i % 50}" for i in range(n)], "fiftyone": [f"w{i % 51}" for i in range(n)]})
    cs = metadata_candidates(meta)
    assert len(cs.candidates) == 50 and {c.column for c in cs.candidates} == {"fifty"}
    assert cs.skipped_columns == (("fiftyone", "51 distinct values (more than 50)"),)
    all_idx = np.sort(np.concatenate([c.indices for c in cs.candidates]))
    assert all_idx.tolist() == list(range(n))  # each sample in exactly one slice of the column
    for c in cs.candidates:
        assert (meta["fifty"].to_numpy()[c.indices] == c.value).all()


def test_missing_values_form_their_own_slice():
    meta = pd.DataFrame(
        {
            "cam": ["a", None, "b", "", "  ", "a", np.nan],
            "lux": [1.0, np.nan, 2.0, np.inf, 1.0, 2.0, 3.0],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )  # a non-default index: rows are positions
    got = {(c.column, c.value): c.indices.tolist() for c in metadata_candidates(meta).candidates}
    assert got == {
        ("cam", "a"): [0, 5],
        ("cam", "b"): [2],
        ("cam", MISSING): [1, 3, 4, 6],
        ("lux", "1"): [0, 4],
        ("lux", "2"): [2, 5],
        ("lux", "3"): [6],
        ("lux", MISSING): [1, 3],
    }
    values = [c.value for c in metadata_candidates(meta).candidates if c.column == "cam"]
    assert values[-1] == MISSING


def test_numbers_few_distinct_are_categories_and_text_numbers_are_numbers():
    meta = pd.DataFrame(
        {
            "zoom": [1, 2, 2, 3, 1, 1],
            "gain": [0.5, 0.25, 0.5, 0.5, 0.25, 0.5],
            "text": ["3", "3.0", " 4 ", "4", "10", "3"],  # a CSV read as text
            "flag": [True, False, True, True, False, True],
        }
    )
    got = {(c.column, c.value): c.indices.tolist() for c in metadata_candidates(meta).candidates}
    assert got == {
        ("zoom", "1"): [0, 4, 5],
        ("zoom", "2"): [1, 2],
        ("zoom", "3"): [3],
        ("gain", "0.25"): [1, 4],
        ("gain", "0.5"): [0, 2, 3, 5],
        ("text", "3"): [0, 1, 5],
        ("text", "4"): [2, 3],
        ("text", "10"): [4],
        ("flag", "False"): [1, 4],
        ("flag", "True"): [0, 2, 3, 5],
    }


def test_many_numbers_are_cut_into_quintiles():
    v = np.arange(100, dtype=float)[np.random.default_rng(0).permutation(100)]
    meta = pd.DataFrame({"ink": v, "ink_text": [str(x) for x in v]})
    cs = metadata_candidates(meta)
    edges = np.quantile(v, [0, 0.2, 0.4, 0.6, 0.8, 1.0])  # 0, 19.8, 39.6, 59.4, 79.2, 99
    expected_labels = ["[0, 19.8)", "[19.8, 39.6)", "[39.6, 59.4)", "[59.4, 79.2)", "[79.2, 99]"]
    for col in ("ink", "ink_text"):
        cands = [c for c in cs.candidates if c.column == col]
        assert [c.value for c in cands] == expected_labels
        for j, c in enumerate(cands):
            lo, hi = edges[j], edges[j + 1]
            inside = (v >= lo) & ((v < hi) if j < 4 else (v <= hi))
            assert c.indices.tolist() == np.flatnonzero(inside).tolist()
            assert c.indices.size == 20
    s = find_regression_slices(np.zeros(100, bool), np.zeros(100, int), ["x"], metadata=meta[["ink"]]).slices
    assert {x.title for x in s} == {f"ink in {lab}" for lab in expected_labels}


def test_tied_quantiles_merge_bins():
    v = np.r_[np.zeros(70), np.arange(1, 31)]  # 70 % zeros: the 0, 0.2, 0.4, 0.6 quantiles are all 0
    cands = metadata_candidates(pd.DataFrame({"ink": v})).candidates
    edge = np.quantile(v, 0.8)  # 10.2: the only inner edge left
    assert [c.value for c in cands] == ["[0, 10.2)", "[10.2, 30]"]
    assert cands[0].indices.tolist() == np.flatnonzero(v < edge).tolist()
    assert cands[1].indices.tolist() == np.flatnonzero(v >= edge).tolist()


def test_edges_get_more_digits_when_needed():
    v = 1000.0 + np.arange(60) * 0.01  # 3 significant digits would print every edge as 1000
    labels = [c.value for c in metadata_candidates(pd.DataFrame({"t": v})).candidates]
    assert len(labels) == 5 and len(set(labels)) == 5
    assert labels[0].startswith("[1000, 1000.1")


def test_skipped_columns_say_why():
    meta = pd.DataFrame(
        {
            "const": ["x"] * 4,
            "const_num": [1.5] * 4,
            "empty": [None] * 4,
            "lists": [[1], [2], [1], [2]],
            "when": pd.to_datetime(["2024-01-01"] * 4),
            "const_and_missing": ["x", "x", None, "x"],
        }
    )
    cs = metadata_candidates(meta)
    assert dict(cs.skipped_columns) == {
        "const": "one value for all samples",
        "const_num": "one value for all samples",
        "empty": "no values",
        "lists": "not scalar values (lists or arrays)",
        "when": "unsupported type datetime64[us]",
    }
    assert [(c.column, c.value) for c in cs.candidates] == [("const_and_missing", "x"), ("const_and_missing", MISSING)]


def test_titles():
    meta = pd.DataFrame({"site": ["a", "(none)"] * 15, "ink": np.arange(30.0), "cam": ["x"] * 29 + [None]})
    rep = find_regression_slices(np.zeros(30, bool), np.zeros(30, int), ["x"], metadata=meta)
    titles = {s.title for s in rep.slices}
    assert {"site = a", "site = (none)", "ink in [0, 5.8)", "ink in [23.2, 29]", "cam = (missing)"} <= titles


# -------------------------------------------------------------- embedding clusters
def _blobs(seed: int = 0, d: int = 16):
    """Three blobs in three directions; classes mixed within blobs by hand."""
    rng = np.random.default_rng(seed)
    sizes = (60, 40, 25)
    e = np.vstack([rng.normal(0, 0.15, (m, d)) + 5 * np.eye(d)[j] for j, m in enumerate(sizes)])
    classes = ["cat", "dog", "car"]
    labels = np.r_[[0] * 45 + [1] * 15, [2] * 40, [0] * 10 + [1] * 10 + [2] * 5]
    blob = np.repeat([0, 1, 2], sizes)
    perm = rng.permutation(len(labels))  # interleave the blobs
    return e[perm], labels[perm], blob[perm], classes


def test_clusters_of_well_separated_blobs_are_described_correctly():
    e, labels, blob, classes = _blobs()
    cl = embedding_clusters(e, labels, classes, n_clusters=3, seed=0)
    assert [c.size for c in cl.clusters] == [60, 40, 25]  # numbered by size
    for c in cl.clusters:  # cluster j is blob j
        assert np.flatnonzero(cl.assignment == c.cluster).tolist() == np.flatnonzero(blob == c.cluster).tolist()
    assert cl.clusters[0].dominant_classes == (("cat", 0.75), ("dog", 0.25))
    assert cl.clusters[1].dominant_classes == (("car", 1.0),)
    assert cl.clusters[2].dominant_classes == (("cat", 0.4), ("dog", 0.4), ("car", 0.2))  # tie: class order
    assert cl.clusters[0].description == "cat 75 %, dog 25 %"
    z = e / np.linalg.norm(e, axis=1, keepdims=True)
    for c in cl.clusters:
        members = np.flatnonzero(blob == c.cluster)
        d = np.linalg.norm(z[members] - z[members].mean(axis=0), axis=1)
        assert list(c.central_indices) == members[np.argsort(d, kind="stable")[:6]].tolist()


def test_dominant_classes_keep_shares_of_at_least_ten_percent():
    e, _, _, _ = _blobs()
    labels = np.zeros(len(e), int)
    labels[:3] = 1  # a share below 10 % anywhere
    cl = embedding_clusters(e, labels, ["major", "minor"], n_clusters=3)
    for c in cl.clusters:
        assert c.dominant_classes[0][0] == "major"
        assert all(share >= 0.1 for _, share in c.dominant_classes[1:])
        assert sum(share for _, share in c.dominant_classes) <= 1.0 + 1e-12


def test_clusters_are_deterministic():
    rng = np.random.default_rng(11)
    e = rng.normal(size=(600, 32)).astype(np.float32)
    labels = rng.integers(0, 5, 600)
    a = embedding_clusters(e, labels, list("abcde"), seed=3)
    b = embedding_clusters(e.copy(), labels.copy(), list("abcde"), seed=3)
    assert a.n_clusters == b.n_clusters == default_n_clusters(600, 5) == 8
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert [(c.size, c.dominant_classes, c.central_indices) for c in a.clusters] == [
        (c.size, c.dominant_classes, c.central_indices) for c in b.clusters
    ]
    sizes = [c.size for c in a.clusters]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 600


def test_fit_on_a_subset_assigns_every_sample(monkeypatch):
    monkeypatch.setattr(slice_clusters, "MAX_FIT_SAMPLES", 50)
    e, labels, blob, classes = _blobs(seed=4)
    a = embedding_clusters(e, labels, classes, n_clusters=3, seed=1)
    b = embedding_clusters(e, labels, classes, n_clusters=3, seed=1)
    np.testing.assert_array_equal(a.assignment, b.assignment)
    assert [c.size for c in a.clusters] == [60, 40, 25]
    for c in a.clusters:
        assert set(blob[a.assignment == c.cluster]) == {c.cluster}


def test_identical_points_give_fewer_clusters_not_an_error():
    e = np.ones((40, 3))
    cl = embedding_clusters(e, np.zeros(40, int), ["x"], n_clusters=3)
    assert sum(c.size for c in cl.clusters) == 40
    assert all(c.size > 0 for c in cl.clusters)
    assert set(cl.assignment.tolist()) == set(range(cl.n_clusters))


def test_default_n_clusters_rule():
    cases = {
        (19, 1): 0,
        (20, 1): 2,
        (39, 10): 2,
        (100, 10): 5,
        (540, 1): 7,
        (540, 10): 10,
        (1000, 100): 50,
        (10_000, 10): 32,
        (40_000, 10): 50,
        (10**7, 10): 50,
    }
    for (n, k), want in cases.items():
        assert default_n_clusters(n, k) == want, (n, k)


def test_planted_cluster_is_found_with_its_images():
    e, labels, blob, classes = _blobs(seed=2)
    rng = np.random.default_rng(9)
    flips = rng.random(len(e)) < np.where(blob == 2, 0.5, 0.02)
    rep = find_regression_slices(flips, labels, classes, embeddings=e, n_clusters=3)
    top = rep.slices[0]
    assert (top.kind, top.column, top.value) == ("embedding", None, 2)
    assert top.indices.tolist() == np.flatnonzero(blob == 2).tolist()
    assert top.cluster is not None and len(top.cluster.central_indices) == 6
    assert set(top.cluster.central_indices) <= set(top.indices.tolist())
    assert top.title.startswith("cluster 2 (cat 40 %, dog 40 %, car 20 %)")
    ns, fs = top.size, top.negative_flips
    assert top.p_value == pytest.approx(_fisher(fs, ns, int(flips.sum()) - fs, len(e) - ns), rel=1e-12)
    np.testing.assert_array_equal(rep.clustering.assignment[top.indices], 2)
