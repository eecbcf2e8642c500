"""The boundary of the retrieval metrics: checked embeddings and labels, unit rows, the score grid.

Every retrieval number (:mod:`graceful_core.metrics.retrieval`, :mod:`graceful_core.metrics.hit_at_1`)
scores a query ``q`` against a gallery item ``g`` by the cosine of their float64-normalised
embeddings, rounded to a multiple of ``2**-24`` (``docs/metrics.md``):

``s(q, g) = round(2**24 · <q / ||q||, g / ||g||>) / 2**24``

The rounding puts every score on an absolute grid that float32 holds exactly, so equal
embeddings tie exactly whatever kernel or block computed them. A zero embedding is
normalised to the zero vector: it scores 0 against everything.

Examples
--------
>>> e = as_embedding([[3, 4], [0, 0]], "emb")
>>> unit_rows(e).tolist()
[[0.6, 0.8], [0.0, 0.0]]
>>> label_codes(["b", "a", "b"], 3)[1].tolist()
[1, 0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where it is used: comparing predictions tables never loads torch
    import torch

__all__ = ["GRID", "MAX_BLOCK_ELEMENTS", "UnitEmbedding", "as_embedding", "check_ks", "label_codes", "unit_rows"]

#: Scores live on this absolute grid: ``round(GRID · cosine) / GRID``.
GRID = float(2**24)

#: Upper bound on the number of scores held per block of queries (rows x gallery size).
MAX_BLOCK_ELEMENTS = 1 << 23


def as_embedding(x: Any, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 ``[N, D]`` array, or a ValueError naming ``name`` and what is wrong."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no dimensions (shape {a.shape})")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32)")
    return a


def label_codes(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels (sorted) and each sample's int64 code into them; ValueError unless 1-D of length n."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with {n} entries (one per embedding), got shape {y.shape}")
    uniq, codes = np.unique(y, return_inverse=True)
    return uniq, codes.reshape(-1).astype(np.int64)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The k of Hit@k as a tuple of positive ints, or a ValueError."""
    out = tuple(int(k) for k in ks)
    if not out or any(k < 1 for k in out):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {out}")
    return out


def unit_rows(a: np.ndarray) -> torch.Tensor:
    """Rows L2-normalised in float64 (a torch tensor); zero rows stay zero."""
    import torch

    t = torch.from_numpy(a.astype(np.float64))
    norm = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    return t / torch.where(norm > 0, norm, torch.ones_like(norm))


class UnitEmbedding:
    """One model's embeddings checked and normalised once: float64 rows and their float32 copy.

    Attributes
    ----------
    f64 : Tensor float64 [N, D]
        The unit rows (:func:`unit_rows`).
    f32 : Tensor float32 [N, D]
        The same rounded to float32, for the fast GEMMs whose error the callers bound.
    shape : tuple of int
        ``(N, D)``.
    """

    def __init__(self, emb: Any, name: str = "embedding") -> None:
        import torch

        a = as_embedding(emb, name)
        self.f64: torch.Tensor = unit_rows(a)
        self.f32: torch.Tensor = self.f64.to(torch.float32)
        self.shape: tuple[int, int] = (int(a.shape[0]), int(a.shape[1]))
