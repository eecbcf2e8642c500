"""2-D projections of old and new embeddings for the embedding views (UMAP).

:func:`joint_umap` fits one UMAP (McInnes et al., "UMAP: Uniform Manifold Approximation
and Projection for Dimension Reduction", 2018) on the old and new embeddings stacked, so
both land in one shared map: in a compatible update each sample's old and new points lie
close together. :func:`separate_umap` fits each model alone for a side-by-side layout
(positions are then only comparable after alignment; :func:`procrustes_align` does an
orthogonal Procrustes fit of one layout to the other). UMAP runs with
``random_state=seed`` and ``n_jobs=1``, which makes it deterministic. The first call in a
process compiles numba code (tens of seconds). The app gets its projections through
:func:`graceful_core.explore.on_demand.projection`, cached on disk per comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graceful_core.vocabulary import StageProgress

__all__ = ["ProjectionResult", "joint_umap", "separate_umap", "procrustes_align"]


@dataclass(frozen=True)
class ProjectionResult:
    """2-D coordinates of (a subset of) the samples.

    Attributes
    ----------
    old_xy, new_xy : ndarray of float32, shape (M, 2)
        Coordinates of the old and new embeddings of the samples ``indices``.
    indices : ndarray of int64, shape (M,)
        Which samples (rows of the inputs) were projected, ascending.
    subsampled : bool
        True when ``indices`` is a random subset (fixed seed) rather than all samples.
    aligned : bool
        For :func:`separate_umap`: the new layout was Procrustes-aligned to the old one.
    """

    old_xy: np.ndarray = field(repr=False)
    new_xy: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    subsampled: bool
    aligned: bool = False


def _embedding(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D [N, D] with D >= 1, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _subset(n: int, per_sample_points: int, max_points: int, seed: int) -> tuple[np.ndarray, bool]:
    """All indices, or a sorted fixed-seed sample so that points stay <= max_points."""
    if max_points < per_sample_points * 2:
        raise ValueError(f"max_points must be at least {per_sample_points * 2}, got {max_points}")
    if n * per_sample_points <= max_points:
        return np.arange(n, dtype=np.int64), False
    rng = np.random.default_rng(seed)
    keep = max_points // per_sample_points
    return np.sort(rng.choice(n, size=keep, replace=False)).astype(np.int64), True


#: Stages reported by the projections' ``progress``: the neighbour graph (and numba's compilation in a fresh
#: process: no counts), then the layout's optimisation epochs (counts).
STAGE_NEIGHBOURS = "finding neighbours"
STAGE_LAYOUT = "laying out the map (epochs)"


class _EpochsToProgress:
    """A file for UMAP's tqdm bar (its only progress hook) that forwards "done/total" to ``progress``."""

    def __init__(self, progress: StageProgress, stage: str) -> None:
        self.progress, self.stage = progress, stage

    def write(self, text: str) -> int:
        found = re.findall(r"(\d+)/(\d+)", text)
        if found:
            done, total = map(int, found[-1])
            self.progress(self.stage, done, total)
        return len(text)

    def flush(self) -> None:
        pass


def _umap(
    x: np.ndarray, seed: int, n_neighbors: int, progress: StageProgress | None = None, label: str = ""
) -> np.ndarray:
    import umap  # heavy import (numba); only when a projection is asked for

    if x.shape[0] < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {x.shape[0]}")
    extra: dict[str, Any] = {}
    if progress is not None:
        progress(label + STAGE_NEIGHBOURS, 0, 0)
        extra["tqdm_kwds"] = {
            "disable": False,
            "file": _EpochsToProgress(progress, label + STAGE_LAYOUT),
            "bar_format": "{n}/{total}",
            "mininterval": 0.25,
        }
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, x.shape[0] - 1),
        metric="cosine",
        random_state=seed,
        n_jobs=1,
        **extra,
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def joint_umap(
    old_emb: Any,
    new_emb: Any,
    *,
    seed: int = 0,
    max_points: int = 20_000,
    n_neighbors: int = 15,
    progress: StageProgress | None = None,
) -> ProjectionResult:
    """One UMAP (cosine metric) fitted on ``vstack([old, new])``: a shared 2-D map.

    Parameters
    ----------
    old_emb, new_emb : array-like, shape (N, D)
        Embeddings of the same samples; equal D required.
    seed : int
        UMAP ``random_state`` and the subsample's seed.
    max_points : int
        When 2N exceeds it, the same random subset of ``max_points // 2`` samples is
        taken from both sides (``subsampled=True``).
    n_neighbors : int
        UMAP's neighbourhood size (capped at the number of points - 1).
    progress : callable, optional
        ``progress(stage, done, total)``: :data:`STAGE_NEIGHBOURS` (no counts), then
        :data:`STAGE_LAYOUT` per optimisation epoch.

    Raises
    ------
    ValueError
        Different embedding sizes (no shared space to project), or row counts.
    """
    old = _embedding(old_emb, "old_emb")
    new = _embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    if old.shape[1] != new.shape[1]:
        raise ValueError(
            f"embedding sizes differ: old {old.shape[1]}, new {new.shape[1]}; "
            "a joint projection needs one shared space (use separate_umap)"
        )
    idx, sub = _subset(old.shape[0], 2, max_points, seed)
    xy = _umap(np.vstack([old[idx], new[idx]]), seed, n_neighbors, progress)
    m = idx.size
    return ProjectionResult(old_xy=xy[:m], new_xy=xy[m:], indices=idx, subsampled=sub)


def procrustes_align(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift ``moving`` onto ``target`` (orthogonal Procrustes).

    Minimises ``||s · (A − ā) R + b̄ − B||_F`` over orthogonal R and scale s > 0:
    with ``U Σ Vᵀ = svd((A − ā)ᵀ (B − b̄))``, ``R = U Vᵀ`` and
    ``s = trace(Σ) / ||A − ā||²_F`` (Schönemann 1966).
    """
    a = np.asarray(moving, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"procrustes_align needs equal shapes, got {a.shape} and {b.shape}")
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, sig, vt = np.linalg.svd(a0.T @ b0)
    norm = float((a0**2).sum())
    scale = sig.sum() / norm if norm > 0 else 1.0
    return (scale * a0 @ (u @ vt) + b.mean(0)).astype(np.float32)


def separate_umap(
    old_emb: Any,
    new_emb: Any,
    *,
    seed: int = 0,
    max_points: int = 20_000,
    n_neighbors: int = 15,
    align: bool = True,
    progress: StageProgress | None = None,
) -> ProjectionResult:
    """A UMAP per model (any embedding sizes), for a side-by-side layout.

    Both use the same samples (a fixed-seed subset of ``max_points // 2`` when 2N
    exceeds ``max_points``, as in :func:`joint_umap`). With ``align`` the new layout is
    Procrustes-aligned to the old one (:func:`procrustes_align`) so the two panels are
    oriented alike; UMAP layouts carry no meaningful orientation, so this changes nothing
    but the view. ``progress`` as in :func:`joint_umap`, its stages prefixed by the model
    ("old model: ", "new model: ").
    """
    old = _embedding(old_emb, "old_emb")
    new = _embedding(new_emb, "new_emb")
    if old.shape[0] != new.shape[0]:
        raise ValueError(f"old_emb and new_emb must embed the same samples: {old.shape[0]} vs {new.shape[0]} rows")
    idx, sub = _subset(old.shape[0], 2, max_points, seed)
    old_xy = _umap(old[idx], seed, n_neighbors, progress, "old model: ")
    new_xy = _umap(new[idx], seed, n_neighbors, progress, "new model: ")
    if align:
        new_xy = procrustes_align(new_xy, old_xy)
    return ProjectionResult(old_xy=old_xy, new_xy=new_xy, indices=idx, subsampled=sub, aligned=align)


def warm_up_umap(points: tuple[int, ...] = (300, 4_500), seed: int = 0) -> None:
    """Fit throw-away UMAPs on random data so numba compiles UMAP's code now, not at the first map.

    A fresh process spends most of its first :func:`joint_umap` in numba's compilation
    (about a minute on a busy 2-core machine); a server calls this once in a background
    thread at start. Both of UMAP's neighbour searches are compiled: the exact one (fewer
    than 4,096 points, the app's 2,000-image sample) and the approximate one (NN-descent,
    "Show all"). ``n_epochs`` is tiny: the layout code compiles the same for any count.
    """
    import umap

    rng = np.random.default_rng(seed)
    for n in points:
        x = rng.normal(size=(int(n), 16)).astype(np.float32)
        umap.UMAP(
            n_components=2, n_neighbors=15, metric="cosine", random_state=seed, n_jobs=1, n_epochs=5
        ).fit_transform(x)
