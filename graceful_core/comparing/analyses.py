"""The analyses of a comparison that cost seconds to minutes, cached on disk by content key.

The embedding cross-test (:func:`~graceful_core.metrics.retrieval.cross_test`), the
embedding overlap, the k-means clusters of the old embeddings behind the regression
slices, and the samples' metadata those slices test. A cached entry is keyed by the
comparison's content key extended by the samples' order (:func:`row_key`), and a foreign
or damaged entry is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from graceful_core import cache
from graceful_core.io.metadata import SampleMetadata, combine
from graceful_core.metrics.retrieval import CrossTest, RetrievalResult, cross_test, nearest_neighbour_overlap
from graceful_core.metrics.slice_clusters import clusters_in_embedding_order
from graceful_core.metrics.slice_types import MIN_SAMPLES_TO_CLUSTER
from graceful_core.metrics.slices import Clustering, SliceReport, describe_clusters, find_regression_slices
from graceful_core.results.comparison import SampleArrays
from graceful_core.types import Predictions

if TYPE_CHECKING:
    from graceful_core.io.datasets import ImageDataset


def _embedding_overlap(old_emb: np.ndarray, new_emb: np.ndarray, key: str) -> float | None:
    """:func:`nearest_neighbour_overlap`, None when the sizes differ; cached on disk under ``key``."""
    if old_emb.shape[1] != new_emb.shape[1] or old_emb.shape[0] == 0:
        return None

    def compute() -> dict[str, np.ndarray]:
        return {"overlap": np.array(nearest_neighbour_overlap(old_emb, new_emb))}

    return float(cache.cached_arrays("embedding-overlap", key, compute, names=("overlap",))["overlap"])


#: Cache kind of a comparison's embedding cross-test (:func:`_cross_test_cached`).
CROSS_TEST_CACHE = "cross-test-v3"  # v3: exact mAP at every size, and the embedding overlap
_RESULT_ARRAYS = ("valid", "top1_correct", "topk_indices", "average_precision")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _cross_test_to_arrays(ct: CrossTest) -> dict[str, np.ndarray]:
    """A :class:`CrossTest` as arrays for the disk cache: its scalars as one JSON string, its arrays as they are."""
    import json

    meta = {
        k: getattr(ct, k)
        for k in (
            "scores",
            "compatible",
            "update_gain",
            "retrieval_negative_flips",
            "retrieval_positive_flips",
            "negative_flip_rate",
            "negative_flip_rate_ci95",
            "positive_flip_rate",
            "positive_flip_rate_ci95",
            "per_class",
            "n_queries",
            "map_queries",
            "map_ci95",
            "reason",
            "embedding_overlap",
        )
    }
    meta["results"] = {
        p: {
            "hit_at": {str(k): v for k, v in r.hit_at.items()},
            "map": r.map,
            "map_queries": r.map_queries,
            "map_ci95": r.map_ci95,
            "n_queries": r.n_queries,
        }
        for p, r in ct.results.items()
    }
    out = {
        "meta": np.array(json.dumps(meta, default=_json_default)),
        "negative_flip_indices": np.asarray(ct.negative_flip_indices),
        "positive_flip_indices": np.asarray(ct.positive_flip_indices),
    }
    for p, r in ct.results.items():
        for a in _RESULT_ARRAYS:
            if getattr(r, a) is not None:
                out[f"{p}.{a}"] = np.asarray(getattr(r, a))
    return out


def _cross_test_from_arrays(d: dict[str, np.ndarray]) -> CrossTest:
    """The inverse of :func:`_cross_test_to_arrays`."""
    import json

    meta = json.loads(str(d["meta"]))
    results = {}
    for p, r in meta.pop("results").items():
        results[p] = RetrievalResult(
            hit_at={int(k): v for k, v in r["hit_at"].items()},
            map=r["map"],
            map_queries=r["map_queries"],
            map_ci95=None if r["map_ci95"] is None else tuple(r["map_ci95"]),
            n_queries=r["n_queries"],
            # the per-query arrays are always written; a missing one is a damaged entry (KeyError)
            valid=d[f"{p}.valid"],
            top1_correct=d[f"{p}.top1_correct"],
            topk_indices=d[f"{p}.topk_indices"],
            average_precision=d.get(f"{p}.average_precision"),
        )
    for k in ("negative_flip_rate_ci95", "positive_flip_rate_ci95"):
        if meta[k] is not None:
            meta[k] = tuple(meta[k])
    return CrossTest(
        **meta,
        negative_flip_indices=d["negative_flip_indices"],
        positive_flip_indices=d["positive_flip_indices"],
        results=results,
    )


def _cross_test_cached(
    old_emb: np.ndarray, new_emb: np.ndarray, labels: np.ndarray, key: str, ids: Sequence[Any] | np.ndarray = ()
) -> CrossTest:
    """:func:`~graceful_core.metrics.retrieval.cross_test`, cached on disk under the comparison's ``key``.

    On 10,000 images the exact mAP of the four retrieval pairs takes most of a minute; a
    restarted server or a second ``compare`` of the same inputs reads it back instead.
    The entry holds row indices, so its key includes the order of ``ids`` (the content
    key does not: a folder and a manifest of the same images list them differently).
    """
    if not key:
        return cross_test(old_emb, new_emb, labels)
    key = row_key(key, ids)
    got = cache.cached_arrays(
        CROSS_TEST_CACHE,
        key,
        lambda: _cross_test_to_arrays(cross_test(old_emb, new_emb, labels)),
        names=("meta", "negative_flip_indices", "positive_flip_indices"),
    )
    try:
        ct = _cross_test_from_arrays(got)
    except (ValueError, KeyError, TypeError):  # a foreign or damaged entry: never trust it
        return cross_test(old_emb, new_emb, labels)
    if any(r.valid is not None and r.valid.shape != (len(labels),) for r in ct.results.values()):
        return cross_test(old_emb, new_emb, labels)
    return ct


def sample_metadata(old: Predictions, dataset: ImageDataset | None) -> SampleMetadata | None:
    """The metadata of the compared samples: the dataset's columns, then the old table's.

    ``old`` is the old side after the join (its rows are the compared samples, its
    ``extra["metadata"]`` the old predictions table's extra columns, already aligned).
    The dataset's metadata (a manifest's extra columns, or a folder's ``slice``) are
    aligned by id (samples the dataset lacks get missing values). A column of the same
    name in both keeps the dataset's (``docs/formats.md``, "Metadata columns").
    """
    from_ds = None
    # duck-typed datasets (tests, the API) may have no metadata
    meta = None if dataset is None else getattr(dataset, "metadata", None)
    if dataset is not None and meta is not None:
        rows = pd.Index(np.asarray(dataset.ids, dtype=object)).get_indexer(np.asarray(old.ids).astype(str))
        from_ds = meta.take(rows)
    return combine([from_ds, old.extra.get("metadata")])


#: Disk-cache kind of the clusters of the old embeddings (bump the version when the rule changes).
CLUSTERS_CACHE = "slice-clusters-v3"


def row_key(key: str, ids: Sequence[str] | np.ndarray) -> str:
    """``key`` extended by the samples' order: the disk key of any per-row result.

    The comparison's content key does not depend on the order of the rows (a folder lists
    its images by class, a manifest of the same images in its own order); a result stored
    row by row (cluster assignment, projections, probabilities) is only valid for the
    order it was computed in. Empty when ``key`` is empty (no caching).

    >>> row_key("", ["a", "b"])
    ''
    >>> row_key("k", ["a", "b"]) == row_key("k", ["b", "a"])
    False
    """
    if not key:
        return ""
    h = hashlib.sha256()
    for sid in ids:
        h.update(str(sid).encode("utf-8", "surrogatepass") + b"\x00")
    return cache.make_key(key, "rows", h.hexdigest())


def old_embedding_clusters(arrays: SampleArrays, classes: Sequence[str], key: str = "") -> Clustering | None:
    """The k-means clusters of the old embeddings (:func:`~graceful_core.metrics.slices.embedding_clusters`),
    cached on disk under the comparison's content ``key`` (each sample's cluster and each
    cluster's central samples; descriptions are rebuilt from the labels); None without
    old embeddings or below 20 samples."""
    if arrays.old_embedding is None or len(arrays) < MIN_SAMPLES_TO_CLUSTER:
        return None

    def compute() -> dict[str, np.ndarray]:
        return clusters_in_embedding_order(arrays.old_embedding, arrays.labels, classes)

    got = cache.cached_arrays(
        CLUSTERS_CACHE, row_key(key, arrays.ids), compute, names=("assignment", "central", "seed")
    )
    if got["assignment"].shape != (len(arrays),):  # a foreign entry: never trust it
        got = compute()
    return describe_clusters(got["assignment"], got["central"], arrays.labels, classes, seed=int(got["seed"]))


def regression_slices(arrays: SampleArrays, classes: Sequence[str], key: str = "") -> SliceReport | None:
    """Where the negative flips concentrate: every candidate slice tested, or None without one.

    Candidates are the values of the samples' metadata columns and the k-means clusters
    of the old model's embeddings (:func:`~graceful_core.metrics.slices.find_regression_slices`:
    one-sided Fisher exact test per slice, Benjamini–Hochberg over all slices;
    ``docs/metrics.md``, "Regression slices"). None when there is no candidate (no
    usable metadata column and no old embeddings of at least 20 samples). The clusters
    are cached on disk under ``key`` (:func:`old_embedding_clusters`).
    """
    meta = None if arrays.metadata is None else arrays.metadata.to_frame()
    clustering = old_embedding_clusters(arrays, classes, key)
    if meta is None and clustering is None:
        return None
    rep = find_regression_slices(
        arrays.negative_flip_mask, arrays.labels, classes, metadata=meta, clustering=clustering
    )
    return rep if rep.slices else None
