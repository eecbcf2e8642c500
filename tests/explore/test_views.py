"""graceful_core.explore.selection against hand-computed cases and brute-force Python loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful_core.explore.selection import (
    SORT_ORDERS,
    filter_samples,
    nearest_neighbours,
    page_bounds,
    probabilities_for,
    sort_samples,
    top_k,
)
from graceful_core.types import Predictions


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "label": ["cat", "dog", "cat", "dog", "cat", "bird"],
            "old_pred": ["cat", "dog", "dog", "cat", "cat", "bird"],
            "new_pred": ["dog", "dog", "cat", "cat", "bird", "bird"],
            "flip": ["negative flip", "both correct", "positive flip", "both wrong", "negative flip", "both correct"],
            "confidence_drop": [0.5, np.nan, -0.2, 0.1, 0.5, 0.0],
        }
    )


def test_filter_by_class_and_flip_type():
    df = _table()
    assert filter_samples(df, classes=["cat"])["id"].tolist() == ["a", "c", "e"]
    assert filter_samples(df, flip_types=["negative flip"])["id"].tolist() == ["a", "e"]
    assert filter_samples(df, classes=["cat", "bird"], flip_types=["both correct", "positive flip"])["id"].tolist() == [
        "c",
        "f",
    ]
    assert filter_samples(df, classes=[], flip_types=None)["id"].tolist() == list("abcdef")


def test_filter_by_transition_cell():
    df = _table()
    # old says cat, new says dog: only sample a
    assert filter_samples(df, old_pred="cat", new_pred="dog")["id"].tolist() == ["a"]
    assert filter_samples(df, old_pred="dog", new_pred="cat")["id"].tolist() == ["c"]
    assert filter_samples(df, old_pred="bird", new_pred="cat").empty


def test_filter_rejects_wrong_table():
    with pytest.raises(ValueError, match="flip"):
        filter_samples(pd.DataFrame({"id": [], "label": [], "old_pred": [], "new_pred": []}))


def test_sort_by_confidence_drop_puts_missing_last_and_keeps_id_order_on_ties():
    df = _table().sample(frac=1.0, random_state=3)
    # largest first: a and e tie at 0.5 (id order), then d 0.1, f 0.0, c -0.2, b has no score
    assert sort_samples(df, SORT_ORDERS[0])["id"].tolist() == ["a", "e", "d", "f", "c", "b"]
    assert sort_samples(df, SORT_ORDERS[1])["id"].tolist() == ["c", "f", "d", "a", "e", "b"]
    assert sort_samples(df, "id")["id"].tolist() == list("abcdef")
    with pytest.raises(ValueError):
        sort_samples(df, "random")


def test_page_bounds_hand_cases():
    assert page_bounds(0, 1, 24) == (0, 0, 1)
    assert page_bounds(50, 1, 24) == (0, 24, 3)
    assert page_bounds(50, 3, 24) == (48, 50, 3)
    assert page_bounds(50, 9, 24) == (48, 50, 3)  # clamped to the last page
    assert page_bounds(50, -2, 24) == (0, 24, 3)  # clamped to the first
    with pytest.raises(ValueError):
        page_bounds(5, 1, 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 500), per=st.integers(1, 60))
def test_pages_cover_every_item_exactly_once(n, per):
    n_pages = page_bounds(n, 1, per)[2]
    assert n_pages == max(1, math.ceil(n / per))
    seen = []
    for p in range(1, n_pages + 1):
        a, b, _ = page_bounds(n, p, per)
        assert 0 <= b - a <= per
        seen.extend(range(a, b))
    assert seen == list(range(n))


def test_top_k_orders_by_probability_and_breaks_ties_by_class_index():
    probs = np.array([0.1, 0.3, 0.05, 0.3, 0.25])
    assert top_k(probs, ["a", "b", "c", "d", "e"], k=3) == [("b", 0.3), ("d", 0.3), ("e", 0.25)]
    assert len(top_k(probs, list("abcde"), k=10)) == 5
    with pytest.raises(ValueError):
        top_k(probs, ["a", "b"], k=1)


def test_probabilities_for_realigns_rows_and_columns():
    logits = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    preds = Predictions(
        ids=np.array(["x", "y"], dtype=object),
        pred=np.array([2, 0]),
        classes=["c0", "c1", "c2"],
        scores=logits,
        score_kind="logits",
    )
    got = probabilities_for(preds, ["y", "x"], ["c2", "c0", "c1"])
    # hand softmax, rows y then x, columns c2, c0, c1
    ex = [
        [math.exp(0) / (math.exp(3) + 2), math.exp(3) / (math.exp(3) + 2), math.exp(0) / (math.exp(3) + 2)],
        [math.exp(2) / (1 + math.e + math.exp(2)), 1 / (1 + math.e + math.exp(2)), math.e / (1 + math.e + math.exp(2))],
    ]
    np.testing.assert_allclose(got, ex, rtol=1e-6)
    no_scores = Predictions(ids=preds.ids, pred=preds.pred, classes=preds.classes)
    assert probabilities_for(no_scores, ["x"], preds.classes) is None
    with pytest.raises(ValueError, match="ids"):
        probabilities_for(preds, ["z"], preds.classes)
    with pytest.raises(ValueError, match="class"):
        probabilities_for(preds, ["x"], ["c9"])


def _brute_neighbours(x, q, cand, k, metric):
    scored = []
    for j in sorted(set(int(c) for c in cand)):
        if j == q:
            continue
        if metric == "cosine":
            nq = math.sqrt(sum(v * v for v in x[q]))
            nj = math.sqrt(sum(v * v for v in x[j]))
            sim = 0.0 if nq == 0 or nj == 0 else sum(a * b for a, b in zip(x[q], x[j])) / (nq * nj)
            scored.append((-sim, j))
        else:
            scored.append((math.dist(x[q], x[j]), j))
    scored.sort()
    return [j for _, j in scored[:k]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_neighbours_match_brute_force(metric):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(40, 3)).astype(float)  # small integers: many exact ties
    x[5] = 0.0  # a zero vector
    for q in (0, 5, 17):
        cand = rng.choice(40, size=25, replace=False)
        cand = np.append(cand, q)  # the query itself is never returned
        got = nearest_neighbours(x, q, cand, k=6, metric=metric).tolist()
        assert got == _brute_neighbours(x.tolist(), q, cand, 6, metric)
        assert q not in got


def test_nearest_neighbours_edge_cases():
    x = np.eye(3)
    assert nearest_neighbours(x, 0, np.array([0]), k=3).size == 0
    with pytest.raises(ValueError):
        nearest_neighbours(x, 3, np.array([0, 1]))
    with pytest.raises(ValueError):
        nearest_neighbours(x, 0, np.array([1]), metric="manhattan")


def test_busiest_classes_by_off_diagonal_traffic():
    from graceful_core.explore.selection import busiest_classes

    m = np.array([[9, 1, 0, 0], [0, 9, 0, 0], [3, 0, 9, 2], [0, 0, 0, 9]])
    # activity: c0 = 1 + 3 = 4, c1 = 0 + 1 = 1, c2 = 5 + 0 = 5, c3 = 0 + 2 = 2
    assert busiest_classes(m, 2).tolist() == [0, 2]
    assert busiest_classes(m, 3).tolist() == [0, 2, 3]
    assert busiest_classes(m, 10).tolist() == [0, 1, 2, 3]
    tie = np.zeros((3, 3), dtype=int)
    assert busiest_classes(tie, 2).tolist() == [0, 1]  # ties to the lower index
    with pytest.raises(ValueError):
        busiest_classes(np.zeros((2, 3)), 1)


def test_default_sample_is_the_most_confident_negative_flip():
    import pandas as pd

    from graceful_core.explore.selection import default_sample

    s = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "flip": ["both right", "negative flip", "negative flip", "positive flip"],
            "confidence_drop": [0.9, 0.2, 0.7, np.nan],
        }
    )
    assert default_sample(s) == "c"
    no_flips = s.assign(flip="both right")
    assert default_sample(no_flips) == "a"  # the largest drop, NaN last


def test_neighbour_candidates_are_the_same_class_and_capped():
    from graceful_core.explore.selection import neighbour_candidates

    labels = np.array([0, 1, 0, 0, 1, 0, 0])
    c, sub = neighbour_candidates(labels, 2, 10)
    assert c.tolist() == [0, 2, 3, 5, 6] and not sub
    c, sub = neighbour_candidates(labels, 2, 2)
    assert sub and 2 in c and set(c) <= {0, 2, 3, 5, 6} and len(c) in (2, 3)
    assert neighbour_candidates(labels, 2, 2)[0].tolist() == c.tolist()  # fixed seed
