"""The shared data types that flow between loading, inference and comparison.

Kept deliberately small: NumPy arrays plus a list of class names. Everything
downstream (metrics, comparison, CLI, app) consumes these types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from graceful_core.metrics.confidence import softmax


@dataclass(frozen=True)
class ModelInfo:
    """The ``graceful.json`` description of a model file (``docs/formats.md``)."""

    name: str
    input_size: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]


@runtime_checkable
class Model(Protocol):
    """What the rest of graceful needs of a model, whatever its file format.

    Implementations: :class:`graceful_core.models.pt2.Pt2Model`,
    :class:`graceful_core.models.torchscript.TorchScriptModel`,
    :class:`graceful_core.models.onnx.OnnxModel`, and for in-memory modules
    :class:`graceful_core.models.module.ModuleModel`. ``run`` takes and returns CPU NumPy
    arrays whatever device the model runs on.
    """

    info: ModelInfo
    path: str

    @property
    def has_embedding(self) -> bool:
        """True when the model exposes embeddings (``embed`` method / ``embedding`` output)."""
        ...

    @property
    def has_head(self) -> bool:
        """True when the model exposes its classifier ``head(embedding) -> logits``."""
        ...

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run a float32 batch ``[N, C, H, W]`` (already normalised).

        Returns ``(logits [N, K] float32, embedding [N, D] float32 or None)``.
        """
        ...

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Apply the classifier head to embeddings ``[N, D]``; logits ``[N, K]``."""
        ...


@dataclass
class Predictions:
    """One model's outputs on a set of samples, aligned by ``ids``.

    Attributes
    ----------
    ids : np.ndarray
        Sample ids (object or str array), unique.
    pred : np.ndarray
        int64 class indices into ``classes``; the argmax of ``scores`` when scores exist
        (ties to the lowest index).
    classes : list of str
        Class names; index i of ``pred`` means ``classes[i]``.
    labels : np.ndarray or None
        int64 true class indices, if known (-1 is never used: absent means None).
    scores : np.ndarray or None
        float32 ``[N, K]`` class scores.
    score_kind : {"logits", "probs", None}
        What ``scores`` are. Probabilities are ``softmax(logits)`` for logits.
    embedding : np.ndarray or None
        float32 ``[N, D]`` embeddings.
    source : str
        The file these came from (for error messages and reports).
    """

    ids: np.ndarray
    pred: np.ndarray
    classes: list[str]
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    score_kind: str | None = None
    embedding: np.ndarray | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.pred.shape[0])

    def probabilities(self) -> np.ndarray | None:
        """Class probabilities ``[N, K]`` (:func:`graceful_core.metrics.confidence.softmax` of logits), or None."""
        if self.scores is None:
            return None

        return softmax(self.scores, self.score_kind or "logits")
