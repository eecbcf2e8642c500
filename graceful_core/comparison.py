"""One comparison of an old and a new model: everything a report needs.

:func:`compare_predictions` is the single place where a comparison is computed; the
CLI (:mod:`graceful_core.cli`) and the app both call it (through
:func:`graceful_core.sources.compare_sources`), so no number is computed twice in two
places. The result, :class:`Comparison`, holds the per-sample arrays, the summary
metrics (DESIGN §2), the per-class table and the transition matrix, and renders the
JSON report of DESIGN §3 with :meth:`Comparison.to_report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from graceful_core.errors import InputError
from graceful_core.io.tables import join_predictions
from graceful_core.metrics import compatibility as cm
from graceful_core.metrics import flips as fm
from graceful_core.metrics import significance as sm
from graceful_core.metrics.confidence import class_probabilities, flip_confidence_split_from_true_probs
from graceful_core.metrics.retrieval import CrossTest, cross_test
from graceful_core.types import Predictions

#: Flip status of one sample, as stored in the per-sample table.
FLIP_TYPES = ("negative flip", "positive flip", "both correct", "both wrong")


@dataclass
class Comparison:
    """The comparison of ``old`` and ``new`` on the same labelled samples.

    Attributes
    ----------
    old_name, new_name : str
        Display names (model names or file names).
    classes : list of str
        Class names; every index array refers to this list.
    ids : np.ndarray
        Sample ids, in the order of all per-sample arrays.
    labels, old_pred, new_pred : np.ndarray
        int64 class indices.
    old_conf, new_conf : np.ndarray or None
        Probability each model gave its own prediction (None without scores).
    old_p_true, new_p_true : np.ndarray or None
        Probability each model gave the true class (None without scores).
    slices : np.ndarray or None
        Optional slice name per sample.
    compatibility : CrossTest or None
        Embedding cross-test (BCT protocol) when both sides have embeddings.
    old_head_on_new_accuracy : float or None
        Accuracy of the old model's classifier ``head`` applied to the new embeddings
        (does the old post-processing still work on the new model?); None when the old
        side has no exported head (e.g. a table) or the embedding sizes differ.
    """

    old_name: str
    new_name: str
    classes: list[str]
    ids: np.ndarray
    labels: np.ndarray
    old_pred: np.ndarray
    new_pred: np.ndarray
    old_conf: np.ndarray | None = None
    new_conf: np.ndarray | None = None
    old_p_true: np.ndarray | None = None
    new_p_true: np.ndarray | None = None
    slices: np.ndarray | None = None
    old_embedding: np.ndarray | None = field(default=None, repr=False)
    new_embedding: np.ndarray | None = field(default=None, repr=False)
    compatibility: CrossTest | None = None
    old_head_on_new_accuracy: float | None = None
    dropped_ids: int = 0
    #: Content-hash identity of the inputs (set by :func:`graceful_core.sources.compare_sources`).
    key: str = ""
    #: The dataset the samples come from, when known (for thumbnails); not part of the report.
    dataset: object | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- arrays
    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def negative_flip_mask(self) -> np.ndarray:
        return fm.negative_flip_mask(self.labels, self.old_pred, self.new_pred)

    @cached_property
    def positive_flip_mask(self) -> np.ndarray:
        return fm.positive_flip_mask(self.labels, self.old_pred, self.new_pred)

    @cached_property
    def flip_type(self) -> np.ndarray:
        """Per-sample flip status, one of :data:`FLIP_TYPES` (as small ints 0..3)."""
        old_ok = self.old_pred == self.labels
        new_ok = self.new_pred == self.labels
        out = np.full(self.n_samples, 3, dtype=np.int8)  # both wrong
        out[old_ok & new_ok] = 2
        out[~old_ok & new_ok] = 1
        out[old_ok & ~new_ok] = 0
        return out

    @cached_property
    def transition_matrix(self) -> np.ndarray:
        """K x K counts, row = old prediction, column = new prediction."""
        return fm.transition_matrix(self.old_pred, self.new_pred, len(self.classes))

    # ---------------------------------------------------------------- metrics
    @cached_property
    def summary(self) -> dict:
        """Every scalar of DESIGN §2 (nan where undefined)."""
        y, o, n = self.labels, self.old_pred, self.new_pred
        nf = int(self.negative_flip_mask.sum())
        pf = int(self.positive_flip_mask.sum())
        old_correct = int((o == y).sum())
        s = {
            "n_samples": self.n_samples,
            "old_accuracy": fm.accuracy(y, o),
            "old_error_rate": fm.error_rate(y, o),
            "new_accuracy": fm.accuracy(y, n),
            "new_error_rate": fm.error_rate(y, n),
            "n_negative_flips": nf,
            "n_positive_flips": pf,
            "n_old_correct": old_correct,
            "negative_flip_rate": fm.negative_flip_rate(y, o, n),
            "positive_flip_rate": fm.positive_flip_rate(y, o, n),
            "relative_negative_flip_rate": fm.relative_negative_flip_rate(y, o, n),
            "negative_flip_impact": fm.negative_flip_impact(y, o, n),
            "backward_trust_compatibility": cm.backward_trust_compatibility(y, o, n),
            "backward_error_compatibility": cm.backward_error_compatibility(y, o, n),
            "old_error_persistence": cm.old_error_persistence(y, o, n),
            "mcnemar_p_value": sm.mcnemar_p_value(nf, pf),
            "negative_flip_rate_ci95": sm.wilson_interval(nf, self.n_samples),
            "positive_flip_rate_ci95": sm.wilson_interval(pf, self.n_samples),
            "backward_trust_compatibility_ci95": sm.wilson_interval(old_correct - nf, old_correct),
        }
        if self.old_p_true is not None and self.new_p_true is not None:
            s.update(
                flip_confidence_split_from_true_probs(y, o, n, self.old_p_true, self.new_p_true)
            )
        else:
            s.update(negative_flips_near_boundary=None, negative_flips_confident=None)
        return s

    @cached_property
    def per_class(self) -> pd.DataFrame:
        """One row per class: support, negative/positive flips and rates, accuracies."""
        d = fm.per_class_flips(self.labels, self.old_pred, self.new_pred, len(self.classes))
        df = pd.DataFrame({"class": list(self.classes)})
        for k, v in d.items():
            df[k] = np.asarray(v)
        return df

    @cached_property
    def per_slice(self) -> pd.DataFrame | None:
        """One row per slice (same columns as :attr:`per_class`), or None without slices."""
        if self.slices is None:
            return None
        d = fm.per_slice_flips(self.labels, self.old_pred, self.new_pred, self.slices)
        return pd.DataFrame({k: np.asarray(v) for k, v in d.items()})

    # ----------------------------------------------------------------- tables
    def samples(self) -> pd.DataFrame:
        """The per-sample table: id, label, both predictions and confidences, flip type."""
        names = np.asarray(self.classes, dtype=object)
        df = pd.DataFrame(
            {
                "id": self.ids.astype(str),
                "label": names[self.labels],
                "old_pred": names[self.old_pred],
                "new_pred": names[self.new_pred],
                "old_conf": self.old_conf if self.old_conf is not None else np.nan,
                "new_conf": self.new_conf if self.new_conf is not None else np.nan,
                "old_p_true": self.old_p_true if self.old_p_true is not None else np.nan,
                "new_p_true": self.new_p_true if self.new_p_true is not None else np.nan,
                "flip": np.asarray(FLIP_TYPES, dtype=object)[self.flip_type],
            }
        )
        df["confidence_drop"] = df["old_p_true"] - df["new_p_true"]
        if self.slices is not None:
            df["slice"] = np.asarray(self.slices).astype(str)
        return df

    def to_report(self) -> dict:
        """The JSON report of DESIGN §3 (nested objects; nan -> None)."""
        s = self.summary
        neg_ids = sorted(map(str, self.ids[self.negative_flip_mask].tolist()))
        pos_ids = sorted(map(str, self.ids[self.positive_flip_mask].tolist()))
        pc = self.per_class
        report = {
            "n_samples": self.n_samples,
            "classes": list(self.classes),
            "old": {"name": self.old_name, "accuracy": s["old_accuracy"], "error_rate": s["old_error_rate"]},
            "new": {"name": self.new_name, "accuracy": s["new_accuracy"], "error_rate": s["new_error_rate"]},
            "negative_flip_rate": s["negative_flip_rate"],
            "positive_flip_rate": s["positive_flip_rate"],
            "relative_negative_flip_rate": s["relative_negative_flip_rate"],
            "negative_flip_impact": s["negative_flip_impact"],
            "backward_trust_compatibility": s["backward_trust_compatibility"],
            "backward_error_compatibility": s["backward_error_compatibility"],
            "old_error_persistence": s["old_error_persistence"],
            "mcnemar_p_value": s["mcnemar_p_value"],
            "negative_flip_rate_ci95": list(s["negative_flip_rate_ci95"]),
            "positive_flip_rate_ci95": list(s["positive_flip_rate_ci95"]),
            "backward_trust_compatibility_ci95": list(s["backward_trust_compatibility_ci95"]),
            "negative_flips_near_boundary": s["negative_flips_near_boundary"],
            "negative_flips_confident": s["negative_flips_confident"],
            "n_negative_flips": s["n_negative_flips"],
            "n_positive_flips": s["n_positive_flips"],
            "negative_flips": None,  # filled in after cleaning (lists of str: nothing to clean)
            "positive_flips": None,
            "transition_matrix": self.transition_matrix.tolist(),
            "per_class": [
                {
                    "class": str(r["class"]),
                    "support": int(r["support"]),
                    "negative_flips": int(r["negative_flips"]),
                    "positive_flips": int(r["positive_flips"]),
                    "negative_flip_rate": float(r["negative_flip_rate"]),
                }
                for r in pc.to_dict("records")
            ],
        }
        if self.per_slice is not None:
            report["per_slice"] = [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                for r in self.per_slice.to_dict("records")
            ]
        if self.dropped_ids:
            report["ids_not_in_both"] = int(self.dropped_ids)
        if self.compatibility is not None:
            report["compatibility"] = self.compatibility.to_json()
            if self.old_head_on_new_accuracy is not None:
                report["compatibility"]["old_head_on_new_embeddings"] = {
                    "accuracy": self.old_head_on_new_accuracy, "old_model_accuracy": s["old_accuracy"]}
        report = _json_clean(report)
        report["negative_flips"], report["positive_flips"] = neg_ids, pos_ids
        return report


def _json_clean(obj):
    """Recursively turn NumPy scalars into Python ones and nan/inf into None."""
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    return obj


def _harmonise_classes(old: Predictions, new: Predictions) -> Predictions:
    """Map ``new``'s class indices onto ``old``'s class list (same names, any order)."""
    if list(new.classes) == list(old.classes):
        return new
    if set(new.classes) != set(old.classes):
        only_new = sorted(set(new.classes) - set(old.classes))
        only_old = sorted(set(old.classes) - set(new.classes))
        raise InputError(
            new.source,
            f"class names differ from the old model's: only in new {only_new[:5]}, only in old {only_old[:5]}",
        )
    pos = {c: i for i, c in enumerate(old.classes)}
    perm = np.array([pos[c] for c in new.classes], dtype=np.int64)
    inv = np.argsort(perm)
    return Predictions(
        ids=new.ids,
        pred=perm[new.pred],
        classes=list(old.classes),
        labels=None if new.labels is None else perm[new.labels],
        scores=None if new.scores is None else new.scores[:, inv],
        score_kind=new.score_kind,
        embedding=new.embedding,
        source=new.source,
        extra=new.extra,
    )


def compare_predictions(
    old: Predictions,
    new: Predictions,
    *,
    old_name: str | None = None,
    new_name: str | None = None,
    with_compatibility: bool = True,
) -> Comparison:
    """Build the :class:`Comparison` of two models' predictions on the same samples.

    Parameters
    ----------
    old, new : Predictions
        Outputs of the deployed and the proposed model. They are joined on ``id``
        (inner join, in ``old``'s order); class names must be the same set.
    old_name, new_name : str, optional
        Display names (default: the model name or the source file).
    with_compatibility : bool
        Run the embedding cross-test when both sides have embeddings.

    Raises
    ------
    InputError
        Different class sets, no shared ids, disagreeing labels, or no labels at all.
    """
    new = _harmonise_classes(old, new)
    old_j, new_j = join_predictions(old, new)
    labels = old_j.labels if old_j.labels is not None else new_j.labels
    if labels is None:
        raise InputError(
            new.source or old.source,
            "no true labels: give --data DATA, or a 'label' column in one of the tables",
        )
    old_conf = old_p = new_conf = new_p = None
    if old_j.scores is not None:
        old_conf, old_p = class_probabilities(old_j.scores, old_j.score_kind, old_j.pred, labels)
    if new_j.scores is not None:
        new_conf, new_p = class_probabilities(new_j.scores, new_j.score_kind, new_j.pred, labels)
    slices = old_j.extra.get("slices")
    if slices is None:
        slices = new_j.extra.get("slices")
    compat = None
    if with_compatibility and old_j.embedding is not None and new_j.embedding is not None:
        compat = cross_test(old_j.embedding, new_j.embedding, labels)
    return Comparison(
        old_name=old_name or old.extra.get("model_name") or old.source,
        new_name=new_name or new.extra.get("model_name") or new.source,
        classes=list(old.classes),
        ids=np.asarray(old_j.ids),
        labels=np.asarray(labels, dtype=np.int64),
        old_pred=np.asarray(old_j.pred, dtype=np.int64),
        new_pred=np.asarray(new_j.pred, dtype=np.int64),
        old_conf=old_conf,
        new_conf=new_conf,
        old_p_true=old_p,
        new_p_true=new_p,
        slices=slices,
        old_embedding=old_j.embedding,
        new_embedding=new_j.embedding,
        compatibility=compat,
        dropped_ids=int(old_j.extra.get("dropped_ids", 0)),
    )
