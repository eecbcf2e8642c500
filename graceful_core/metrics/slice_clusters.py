"""Candidate slices from the old model's embeddings: k-means clusters and their descriptions.

The clusters of the (row-normalised) old embeddings are candidates of
:func:`graceful_core.metrics.slices.find_regression_slices` where no metadata names the
regression; each is described by its classes and its most central samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from graceful_core.metrics.slice_types import (
    MAX_FIT_SAMPLES,
    MIN_CLASS_SHARE,
    MIN_SAMPLES_TO_CLUSTER,
    N_CENTRAL,
    Clustering,
    EmbeddingCluster,
)


# ================================================================= embedding clusters
def default_n_clusters(n_samples: int, n_classes: int = 1) -> int:
    """k for k-means on N samples of K classes.

    .. math:: k = \\max\\bigl(2,\\ \\min(50,\\ \\lfloor N / 20 \\rfloor,\\ \\max(K,\\ \\mathrm{round}(\\sqrt{N / 10}))\\bigr)\\bigr)

    ``√(N / 10)`` makes the mean cluster hold ``√(10 N)`` samples (≈ 320 at N = 10,000):
    large enough for a Fisher test to see a concentration, small enough to split a
    class into visually distinct groups. At least K clusters, so that a cluster can be
    a sub-group of a class rather than a merge of two (on the 540 test digits √(N/10)
    gives 7 clusters that pair up 2 with 3 and 4 with 6; 10 give one digit each); at
    most N / 20, so that clusters average at least 20 samples; at most 50, to keep the
    list readable and the multiple-testing burden small. Below
    :data:`MIN_SAMPLES_TO_CLUSTER` samples there is no clustering (0).

    Examples
    --------
    >>> [default_n_clusters(n) for n in (10, 20, 540, 10_000, 1_000_000)]
    [0, 2, 7, 32, 50]
    >>> default_n_clusters(540, n_classes=10), default_n_clusters(100, n_classes=10)
    (10, 5)
    """
    n, k_classes = int(n_samples), int(n_classes)
    if n < MIN_SAMPLES_TO_CLUSTER:
        return 0
    return int(max(2, min(50, n // 20, max(k_classes, round(math.sqrt(n / 10))))))


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _nearest_centre(z: np.ndarray, centres: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """``argmin_j ‖z_i − c_j‖²`` per row (ties: lowest j), in row chunks."""
    c_sq = (centres * centres).sum(axis=1)
    out = np.empty(z.shape[0], dtype=np.int64)
    for start in range(0, z.shape[0], chunk):
        block = z[start : start + chunk]
        out[start : start + chunk] = np.argmin(c_sq[None, :] - 2.0 * (block @ centres.T), axis=1)
    return out


def embedding_clusters(
    embeddings: Any,
    labels: Any,
    class_names: Sequence[str],
    *,
    n_clusters: int | None = None,
    seed: int = 0,
) -> Clustering:
    """k-means clusters of the old model's embeddings, each described by classes and examples.

    The embeddings are L2-normalised (cosine geometry, as in the retrieval cross-test),
    then clustered by scikit-learn's ``KMeans`` (Lloyd's algorithm, k-means++
    initialisation, Arthur & Vassilvitskii, SODA 2007; one initialisation,
    ``random_state=seed``) minimising

    .. math:: \\sum_i \\lVert e_i / \\lVert e_i \\rVert - \\mu_{c(i)} \\rVert^2

    fitted on all samples when N ≤ :data:`MAX_FIT_SAMPLES` (20,000), else on a seeded
    random subset of that size, every sample then going to its nearest centre. The same
    input and seed give the same clusters. Clusters are numbered by size, largest first
    (ties: the one holding the lower sample position first); empty clusters (k-means on
    duplicated points) are dropped. k defaults to :func:`default_n_clusters` (N, K). Each
    cluster is described by its dominant true classes and the :data:`N_CENTRAL` samples
    nearest its centre, as Domino (Eyuboglu et al., ICLR 2022) describes its slices by
    representative examples.

    Parameters
    ----------
    embeddings : array_like, shape (N, D)
        The old model's embeddings (finite).
    labels : array_like of int, shape (N,)
        True class indices into ``class_names``.
    class_names : sequence of str
    n_clusters : int, optional
        k (at least 2, at most N); default :func:`default_n_clusters` (N, K).
    seed : int
        Random state of the initialisation and the subset.

    Returns
    -------
    Clustering
        With ``n_clusters == 0`` when N < :data:`MIN_SAMPLES_TO_CLUSTER` and no k given.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> e = np.vstack([rng.normal([9, 0], 0.3, (30, 2)), rng.normal([0, 9], 0.3, (20, 2))])
    >>> cl = embedding_clusters(e, [0] * 30 + [1] * 20, ["cat", "dog"], n_clusters=2)
    >>> [(c.cluster, c.size, c.description) for c in cl.clusters]
    [(0, 30, 'cat 100 %'), (1, 20, 'dog 100 %')]
    """
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"embeddings must be a 2-D array [N, D], got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"embeddings must be numeric, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    n = int(x.shape[0])
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"labels must be {n} integer class indices, got shape {y.shape}, dtype {y.dtype}")
    names = [str(c) for c in class_names]
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"labels must index into the {len(names)} class names")
    if n_clusters is None:
        k = default_n_clusters(n, len(names))
        if k == 0:
            return Clustering(np.zeros(0, np.int64) if n == 0 else np.full(n, -1, np.int64), (), int(seed))
    else:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 2 <= n_clusters <= n:
            raise ValueError(f"n_clusters must be an integer in [2, N={n}], got {n_clusters!r}")
        k = int(n_clusters)
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    # float64 for the fit: scikit-learn's k-means++ seeding computes float32 distances by
    # up-casting in chunks, 3-5x slower than float64 at D = 256 (measured with
    # benchmarks/bench_slices.py). Above MAX_FIT_SAMPLES all samples stay float32 (memory).
    # the ignore: scikit-learn's stub-less n_init reads as str (its default, "auto"); an int is documented
    km = KMeans(n_clusters=k, n_init=1, random_state=seed)  # pyright: ignore[reportArgumentType]
    if n <= MAX_FIT_SAMPLES:
        z = _normalise_rows(x.astype(np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than k
            km.fit(z)
        raw = np.asarray(km.labels_, dtype=np.int64)
    else:
        z = _normalise_rows(x.astype(np.float32))
        pick = np.sort(np.random.default_rng(seed).choice(n, MAX_FIT_SAMPLES, replace=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(z[pick].astype(np.float64))
        raw = _nearest_centre(z, km.cluster_centers_.astype(np.float32))
    centres = km.cluster_centers_.astype(z.dtype)
    sizes = np.bincount(raw, minlength=k)
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, raw, np.arange(n))
    order = [j for j in sorted(range(k), key=lambda j: (-sizes[j], first[j])) if sizes[j] > 0]
    renumber = np.full(k, -1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    central = np.full((len(order), N_CENTRAL), -1, dtype=np.int64)
    for new, old in enumerate(order):
        members = np.flatnonzero(raw == old)
        d2 = ((z[members] - centres[old]) ** 2).sum(axis=1)
        near = members[np.lexsort((members, d2))[:N_CENTRAL]]
        central[new, : near.size] = near
    return describe_clusters(renumber[raw], central, y, names, seed=int(seed))


def clusters_in_embedding_order(embedding: Any, labels: Any, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`embedding_clusters` fitted with the rows in the lexicographic order of their embeddings, mapped back.

    k-means depends on the order of its rows: fitting in an order given by the embeddings
    themselves makes the same images give the same clusters whatever their row order or ids
    (a folder, a manifest, a table, a DataLoader).

    Returns
    -------
    dict
        ``assignment`` (N,) each row's cluster, ``central`` (k, :data:`N_CENTRAL`) each
        cluster's central rows padded with -1, ``seed``: what :func:`describe_clusters`
        takes (and what a disk cache stores).
    """
    emb = np.asarray(embedding)
    order = np.lexsort(emb.T[::-1]) if emb.ndim == 2 and emb.shape[1] else np.arange(len(emb))
    cl = embedding_clusters(emb[order], np.asarray(labels)[order], class_names)
    assignment = np.empty(len(order), dtype=np.int64)
    assignment[order] = np.asarray(cl.assignment)
    central = np.full((cl.n_clusters, N_CENTRAL), -1, dtype=np.int64)
    for c in cl.clusters:
        central[c.cluster, : len(c.central_indices)] = order[np.asarray(c.central_indices, dtype=np.int64)]
    return {"assignment": assignment, "central": central, "seed": np.array(cl.seed)}


def describe_clusters(
    assignment: Any, central: Any, labels: Any, class_names: Sequence[str], *, seed: int = 0
) -> Clustering:
    """A :class:`Clustering` from each sample's cluster and each cluster's central samples.

    Parameters
    ----------
    assignment : array_like of int, shape (N,)
        Cluster numbers ``0..k-1``, numbered by size (largest first), none empty.
    central : array_like of int, shape (k, c)
        Row j: cluster j's samples nearest its centre, nearest first, padded with -1.
    labels : array_like of int, shape (N,)
        True class indices into ``class_names`` (for the dominant classes).
    seed : int
        The seed the clusters were fitted with (kept in the result).

    This is the second half of :func:`embedding_clusters`, and what rebuilds a clustering
    stored on disk (assignment and central samples: the rest is derived here).

    Examples
    --------
    >>> cl = describe_clusters([0, 0, 1], [[1, 0], [2, -1]], [0, 1, 1], ["cat", "dog"])
    >>> [(c.title, c.central_indices) for c in cl.clusters]
    [('cluster 0 (cat 50 %, dog 50 %)', (1, 0)), ('cluster 1 (dog 100 %)', (2,))]
    """
    a = np.asarray(assignment, dtype=np.int64).reshape(-1)
    cen = np.asarray(central, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    names = [str(c) for c in class_names]
    if y.shape != a.shape:
        raise ValueError(f"labels ({y.shape[0]}) and assignment ({a.shape[0]}) differ in length")
    k = int(a.max()) + 1 if a.size else 0
    if cen.ndim != 2 or cen.shape[0] != k:
        raise ValueError(f"central must have one row per cluster ({k}), got shape {cen.shape}")
    sizes = np.bincount(a, minlength=k) if k else np.zeros(0, np.int64)
    if k and (a.min() < 0 or (sizes == 0).any()):
        raise ValueError("cluster numbers must be 0..k-1 with no empty cluster")
    clusters = []
    for j in range(k):
        counts = np.bincount(y[a == j], minlength=len(names))
        by_share = sorted(range(len(names)), key=lambda c: (-counts[c], c))
        shares = [(names[c], counts[c] / sizes[j]) for c in by_share[:3]]
        dominant = [shares[0]] + [sh for sh in shares[1:] if sh[1] >= MIN_CLASS_SHARE]
        clusters.append(
            EmbeddingCluster(
                cluster=j,
                size=int(sizes[j]),
                dominant_classes=tuple((nm, float(sh)) for nm, sh in dominant),
                central_indices=tuple(int(i) for i in cen[j] if i >= 0),
            )
        )
    return Clustering(a, tuple(clusters), int(seed))
