"""Precomputed 2-D maps of embeddings, found by content before any UMAP is fitted.

A UMAP fit of the bundled Fashion-MNIST pair takes tens of seconds to minutes on two
cores (plus numba's compilation in a fresh process), so the sample build writes the maps
of its default pair next to the sample (``sample_data/<sample>/maps/*.npz``), and
:func:`graceful_core.explore.on_demand.projection` looks here first. A map is only reused for the
embeddings it was fitted on:

- the file name carries the UMAP settings (kind, seed, neighbours, point cap: see
  :func:`settings_key`) and the SHA-256 of both embeddings' float32 bytes in row order
  (:func:`content_key`): an exact hit;
- inference is not bit-reproducible across thread counts and batch sizes (the same model
  on the same images gives embeddings up to ~3e-6 apart), so a map with the same settings
  and shapes whose *sketch* matches is a hit too. The sketch is ``Eᵀ W`` for a fixed
  Gaussian ``W`` of shape ``(N, 8)`` (float64, every row and column counts, row order
  included); two embeddings match when every sketch entry differs by at most
  :data:`SKETCH_RTOL` times the sketch's root mean square. Float noise moves it by about
  ``1e-6`` of that (measured on the bundled pair), another model or another row order by about 1.

Anything else (uploads, other pairs, other settings) is computed as before.

Examples
--------
>>> import numpy as np
>>> old = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
>>> sketches_match(sketch(old), sketch(old + 1e-6))
True
>>> sketches_match(sketch(old), sketch(old[::-1]))
False
"""

from __future__ import annotations

import hashlib
import inspect
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from graceful_core.cache import atomic_output
from graceful_core.explore.projection import ProjectionResult, joint_umap, separate_umap

__all__ = [
    "SAMPLED_POINTS",
    "MAPS_DIR",
    "SKETCH_RTOL",
    "settings_key",
    "content_key",
    "sketch",
    "sketches_match",
    "map_dirs",
    "find_map",
    "write_map",
    "projection_settings",
    "precomputed_projection",
]

#: Points (old and new together) of the Embeddings page's first map of a large comparison: a fixed-seed
#: sample of half as many images, drawn within seconds; "Show all" projects every image. The sample build
#: precomputes the bundled pair's maps at this size and at all images.
SAMPLED_POINTS = 4_000
#: Folder of a bundled sample that holds its precomputed maps.
MAPS_DIR = "maps"
#: The format tag inside every map file.
MAP_FORMAT = "graceful-umap-map-1"
#: Largest sketch difference, relative to the sketch's RMS, that still counts as the same embeddings.
SKETCH_RTOL = 1e-3
_SKETCH_COLUMNS = 8
_SKETCH_SEED = 20_240_601


def settings_key(kind: str, *, seed: int, max_points: int, n_neighbors: int, n: int, d_old: int, d_new: int) -> str:
    """A short hash of what a map depends on besides the embeddings' values: the projection
    (``joint``/``separate``) with its seed, neighbours and point cap, and the array shapes.

    >>> settings_key("joint", seed=0, max_points=4000, n_neighbors=15, n=10, d_old=4, d_new=4)[:6]
    'joint-'
    """
    text = (
        f"{MAP_FORMAT}|{kind}|seed={seed}|max_points={max_points}|n_neighbors={n_neighbors}|metric=cosine|"
        f"n={n}|d={d_old},{d_new}"
    )
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def content_key(old: np.ndarray, new: np.ndarray) -> str:
    """SHA-256 (first 24 hex digits) of both embeddings as C-ordered float32 bytes."""
    h = hashlib.sha256()
    for a in (old, new):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def sketch(emb: np.ndarray) -> np.ndarray:
    """``Eᵀ W`` (float64, shape ``(D, 8)``) for a Gaussian ``W`` fixed by the row count (see the module)."""
    e = np.asarray(emb, dtype=np.float64)
    w = np.random.default_rng(_SKETCH_SEED).standard_normal((e.shape[0], _SKETCH_COLUMNS))
    return e.T @ w


def sketches_match(a: np.ndarray, b: np.ndarray, rtol: float = SKETCH_RTOL) -> bool:
    """Same shape and ``max |a − b| <= rtol · rms(a)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    scale = float(np.sqrt(np.mean(a * a)))
    return scale > 0 and float(np.max(np.abs(a - b))) <= rtol * scale


def map_dirs() -> list[Path]:
    """Folders searched for maps: ``<sample data>/*/maps``, where the sample data is
    ``$GRACEFUL_SAMPLE_DATA`` or the repository's ``sample_data`` (as the app's)."""
    env = os.environ.get("GRACEFUL_SAMPLE_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "sample_data"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"*/{MAPS_DIR}") if p.is_dir())


def _load(path: Path, n: int) -> tuple[ProjectionResult, np.ndarray, np.ndarray] | None:
    """A map file's projection and sketches, or None when it is not a sound map of ``n`` samples."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != MAP_FORMAT:
                return None
            old_xy, new_xy = z["old_xy"].astype(np.float32), z["new_xy"].astype(np.float32)
            idx, flags = z["indices"].astype(np.int64), z["flags"].astype(bool)
            s_old, s_new = z["sketch_old"], z["sketch_new"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    m = idx.shape[0]
    if (
        old_xy.shape != (m, 2)
        or new_xy.shape != (m, 2)
        or flags.shape != (2,)
        or m == 0
        or idx.min() < 0
        or idx.max() >= n
        or np.any(np.diff(idx) <= 0)
        or not (np.isfinite(old_xy).all() and np.isfinite(new_xy).all())
    ):
        return None
    res = ProjectionResult(old_xy=old_xy, new_xy=new_xy, indices=idx, subsampled=bool(flags[0]), aligned=bool(flags[1]))
    return res, s_old, s_new


def find_map(
    settings: str, old: np.ndarray, new: np.ndarray, dirs: Iterable[Path] | None = None
) -> ProjectionResult | None:
    """The stored map of these embeddings under ``settings`` (:func:`settings_key`), or None.

    Looks for the exact content hash first, then compares sketches of the maps stored
    under the same settings (a handful of files).
    """
    dirs = map_dirs() if dirs is None else list(dirs)
    if not dirs:
        return None
    n = int(np.asarray(old).shape[0])
    exact = f"{settings}-{content_key(old, new)}.npz"
    for d in dirs:
        got = _load(d / exact, n) if (d / exact).is_file() else None
        if got is not None:
            return got[0]
    sketches: tuple[np.ndarray, np.ndarray] | None = None  # computed at the first candidate file
    for d in dirs:
        for path in sorted(d.glob(f"{settings}-*.npz")):
            got = _load(path, n)
            if got is None:
                continue
            if sketches is None:
                sketches = (sketch(old), sketch(new))
            if sketches_match(got[1], sketches[0]) and sketches_match(got[2], sketches[1]):
                return got[0]
    return None


def write_map(directory: Path, settings: str, old: np.ndarray, new: np.ndarray, res: ProjectionResult) -> Path:
    """Store ``res`` (the map of ``old``/``new`` under ``settings``) in ``directory``, atomically.

    Coordinates are float32, indices int32, compressed: about 0.2 MB for 20,000 points.
    """
    path = Path(directory) / f"{settings}-{content_key(old, new)}.npz"
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            format=np.array(MAP_FORMAT),
            old_xy=np.asarray(res.old_xy, np.float32),
            new_xy=np.asarray(res.new_xy, np.float32),
            indices=np.asarray(res.indices, np.int32),
            flags=np.array([res.subsampled, res.aligned]),
            sketch_old=sketch(old),
            sketch_new=sketch(new),
        )
    return path


def projection_settings(kind: str, old: np.ndarray, new: np.ndarray, max_points: int | None = None) -> str:
    """:func:`settings_key` of :func:`~graceful_core.explore.projection.joint_umap` (``"joint"``) or
    :func:`~graceful_core.explore.projection.separate_umap` (``"separate"``) called with their defaults
    except ``max_points`` (None: the default)."""
    defaults = {
        k: p.default
        for k, p in inspect.signature(joint_umap if kind == "joint" else separate_umap).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return settings_key(
        kind,
        seed=int(defaults["seed"]),
        n_neighbors=int(defaults["n_neighbors"]),
        max_points=int(defaults["max_points"] if max_points is None else max_points),
        n=int(old.shape[0]),
        d_old=int(old.shape[1]),
        d_new=int(new.shape[1]),
    )


def precomputed_projection(
    kind: str, old: np.ndarray, new: np.ndarray, max_points: int | None = None, dirs: Iterable[Path] | None = None
) -> ProjectionResult | None:
    """The stored map of what ``projection``'s ``kind`` would fit on ``old``/``new``, or None."""
    if kind not in ("joint", "separate"):
        return None
    old, new = np.asarray(old), np.asarray(new)
    return find_map(projection_settings(kind, old, new, max_points), old, new, dirs)
