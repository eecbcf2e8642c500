"""Results of a comparison that are computed only when a view asks for them.

A :class:`~graceful_core.results.comparison.Comparison` holds everything its reports need.
Some views need more, and it costs more than the report: both models' full class
probabilities per sample (the Sample page's top-5), the 2-D projections of the
embeddings (UMAP: seconds to a minute), and same-class nearest neighbours (by embedding,
or by pixels when there are no embeddings, which means decoding images). They are
computed here, by the core, from the comparison and where its predictions came from
(``comp.inputs``), and cached on disk under the comparison's content key
(:func:`graceful_core.cache.cached_arrays`), so a restarted server, another session or
the CLI does not compute them again. Nothing here changes the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from graceful_core import cache
from graceful_core.comparing.analyses import row_key
from graceful_core.comparing.sources import predictions_for
from graceful_core.errors import InputError
from graceful_core.explore.projection import ProjectionResult, joint_umap, separate_umap
from graceful_core.explore.projection_store import precomputed_projection
from graceful_core.explore.selection import class_subset, nearest_neighbours, neighbour_candidates, probabilities_for
from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import StageProgress

__all__ = [
    "class_probabilities",
    "projection",
    "Neighbours",
    "neighbours",
    "PROJECTIONS",
    "MAX_PIXEL_CANDIDATES",
    "PIXEL_SIDE",
]

#: The projections of :func:`projection`.
PROJECTIONS = ("joint", "separate")
#: Without embeddings, pixel neighbours search at most this many images of the class
#: (a fixed-seed subset of a bigger class).
MAX_PIXEL_CANDIDATES = 2000
#: Pixel features are grey ``PIXEL_SIDE`` x ``PIXEL_SIDE`` thumbnails.
PIXEL_SIDE = 16
#: Keep projections on disk (a test that replaces UMAP by a stand-in turns this off).
PROJECTION_DISK_CACHE = True


def class_probabilities(comp: Comparison) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both models' class probabilities per sample, ``[N, K]`` each, in the comparison's order.

    Rows follow ``comp.arrays.ids``, columns ``comp.classes``; a side without class
    scores gives None. The predictions are loaded again from where they came from (the
    inference cache for a model, the table file), so this needs ``comp.inputs``.

    Raises
    ------
    ValueError
        The comparison has no inputs to reload (predictions given in memory) or no
        per-sample arrays.
    InputError
        A file changed or vanished since the comparison was made.
    """
    a = comp.require_arrays()
    inputs = comp.inputs
    if inputs is None or inputs.old is None or inputs.new is None:
        raise ValueError("this comparison does not know its input files, so its probabilities cannot be reloaded")
    sources = (("old", inputs.old), ("new", inputs.new))

    def compute() -> dict[str, np.ndarray]:
        ids = np.asarray(a.ids).astype(str)
        out: dict[str, np.ndarray] = {}
        for side, src in sources:
            probs = probabilities_for(
                predictions_for(src, inputs.dataset, classes=list(comp.classes)), ids, comp.classes
            )
            out[side] = np.zeros((0, len(comp.classes)), np.float32) if probs is None else probs
            out[f"{side}_present"] = np.array(probs is not None)
        return out

    got = cache.cached_arrays(
        "class-probabilities", row_key(comp.key, a.ids), compute, names=("old", "new", "old_present", "new_present")
    )
    old, new = (got[s] if bool(got[f"{s}_present"]) else None for s in ("old", "new"))
    return old, new


def projection(
    comp: Comparison, kind: str, max_points: int | None = None, progress: StageProgress | None = None
) -> ProjectionResult:
    """The 2-D UMAP layout of both embeddings: ``"joint"`` (one shared map) or ``"separate"``.

    :func:`graceful_core.explore.projection.joint_umap` / :func:`~graceful_core.explore.projection.separate_umap`
    with their defaults (fixed seed), cached on disk under the comparison's key.
    ``max_points`` (old and new points together) caps the layout at a fixed-seed subset of
    ``max_points // 2`` images (None: the projection's own default, 20,000 points).
    Before fitting, a map precomputed for the same embeddings and settings (the bundled
    sample's, :func:`graceful_core.explore.projection_store.find_map`) is used. ``progress`` gets
    the fit's stages (:func:`~graceful_core.explore.projection.joint_umap`).

    Raises
    ------
    ValueError
        Unknown ``kind``, a side without embeddings, or (joint) different embedding sizes.
    """
    if kind not in PROJECTIONS:
        raise ValueError(f"kind must be one of {PROJECTIONS}, got {kind!r}")
    a = comp.require_arrays()
    old_e, new_e = a.old_embedding, a.new_embedding
    if old_e is None or new_e is None:
        raise ValueError("a projection needs embeddings from both models")

    def compute() -> dict[str, np.ndarray]:
        fn = joint_umap if kind == "joint" else separate_umap
        res = precomputed_projection(kind, old_e, new_e, max_points)
        if res is None:
            res = (
                fn(old_e, new_e, progress=progress)
                if max_points is None
                else fn(old_e, new_e, progress=progress, max_points=max_points)
            )
        return {
            "old_xy": res.old_xy,
            "new_xy": res.new_xy,
            "indices": res.indices,
            "flags": np.array([res.subsampled, res.aligned]),
        }

    key = row_key(comp.key, a.ids) if PROJECTION_DISK_CACHE else ""
    if key and max_points is not None:
        key = f"{key}-max{int(max_points)}"
    got = cache.cached_arrays(f"projection-{kind}", key, compute, names=("old_xy", "new_xy", "indices", "flags"))
    return ProjectionResult(
        old_xy=got["old_xy"],
        new_xy=got["new_xy"],
        indices=got["indices"],
        subsampled=bool(got["flags"][0]),
        aligned=bool(got["flags"][1]),
    )


@dataclass(frozen=True)
class Neighbours:
    """Same-class nearest neighbours of one sample.

    Attributes
    ----------
    indices : np.ndarray
        Rows of the comparison, nearest first (the sample itself excluded).
    how : str
        What "near" means, in words.
    searched : int
        How many images of the class were searched.
    subsampled : bool
        The class was bigger than :data:`MAX_PIXEL_CANDIDATES`: a fixed random subset was searched.
    """

    indices: np.ndarray
    how: str
    searched: int
    subsampled: bool


def _pixel_rows(comp: Comparison, rows: np.ndarray) -> np.ndarray:
    """Grey ``PIXEL_SIDE``² vectors in [0, 1] of the given rows' images (zeros where unreadable)."""
    a = comp.require_arrays()
    ds = comp.dataset
    feats = np.zeros((len(rows), PIXEL_SIDE * PIXEL_SIDE), dtype=np.float32)
    if ds is None:  # no images to read: every row stays zeros
        return feats
    for k, r in enumerate(rows):
        j = ds.row_of(str(a.ids[r]))
        if j is None:
            continue
        try:
            img = ds.load_image(j).convert("L").resize((PIXEL_SIDE, PIXEL_SIDE), Image.Resampling.BILINEAR)
        except (InputError, OSError, ValueError):
            continue
        feats[k] = np.asarray(img, dtype=np.float32).ravel() / 255.0
    return feats


def _class_pixels(comp: Comparison, cls: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The class's searched rows (:func:`graceful_core.explore.selection.class_subset`) and their pixel features.

    Cached on disk under the comparison's key, per class.
    """
    a = comp.require_arrays()
    rows, sub = class_subset(a.labels, cls, MAX_PIXEL_CANDIDATES)

    def compute() -> dict[str, np.ndarray]:
        return {"features": _pixel_rows(comp, rows), "rows": rows}

    key = (
        cache.make_key(row_key(comp.key, a.ids), f"class={cls};limit={MAX_PIXEL_CANDIDATES};side={PIXEL_SIDE}")
        if comp.key
        else ""
    )
    got = cache.cached_arrays("pixel-features", key, compute, names=("features", "rows"))
    if not np.array_equal(got["rows"], rows):  # an entry for other rows: never trust it
        got = compute()
    return rows, got["features"], sub


def neighbours(comp: Comparison, row: int, k: int = 6) -> Neighbours:
    """The ``k`` images of ``row``'s true class nearest to it.

    With embeddings: cosine similarity of the old model's embeddings over the whole
    class. Without: Euclidean distance of grey 16x16 thumbnails over the class (at most
    :data:`MAX_PIXEL_CANDIDATES`, a fixed-seed subset beyond), whose pixel features are
    cached on disk per class (:func:`graceful_core.explore.selection.nearest_neighbours`).
    """
    a = comp.require_arrays()
    if a.old_embedding is not None:
        cand, sub = neighbour_candidates(a.labels, row, len(a))
        feats, how, metric = (
            np.asarray(a.old_embedding)[cand],
            "cosine similarity of the old model's embeddings",
            "cosine",
        )
    else:
        rows, class_feats, sub = _class_pixels(comp, int(a.labels[row]))
        cand = np.union1d(rows, [row])
        feats = np.zeros((len(cand), PIXEL_SIDE * PIXEL_SIDE), dtype=np.float32)
        feats[np.searchsorted(cand, rows)] = class_feats
        if row not in set(rows.tolist()):
            feats[np.searchsorted(cand, row)] = _pixel_rows(comp, np.array([row]))[0]
        how, metric = f"pixel distance ({PIXEL_SIDE}×{PIXEL_SIDE} grey)", "euclidean"
    # search among the candidates only (positions in ``cand``, which is sorted: ties still go to the lower row)
    q = int(np.searchsorted(cand, row))
    nn = nearest_neighbours(feats, q, np.arange(len(cand)), k=k, metric=metric)
    return Neighbours(cand[nn], how, len(cand), sub)
