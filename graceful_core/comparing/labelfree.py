"""A comparison without true labels: what can be known when nobody labelled the samples.

Without labels no prediction is right or wrong, so accuracy, error rate, negative and
positive flips, BTC/BEC, McNemar's test and the regression slices of negative flips do
not exist (:data:`NOT_WITHOUT_LABELS`). What changes between the two models does:

- the prediction churn (share of samples whose predicted class changes) with its
  Wilson 95 % interval, the old → new transition matrix and the churn per old
  predicted class (:mod:`graceful_core.metrics.prediction_churn`);
- how confident both models were on the changed predictions (top probabilities);
- churn slices: the Fisher + Benjamini–Hochberg slice search of
  :func:`~graceful_core.metrics.slices.find_regression_slices` run on "prediction
  changed" instead of "negative flip" (metadata values and clusters of the old
  embeddings, described by the old model's predicted classes);
- the churn floor against a reference retrain of the old model (its own churn, and
  whether the update changes significantly more predictions, exact McNemar);
- the embedding cross-test with the old model's predicted classes as the classes.

:func:`compare_unlabelled` builds an :class:`UnlabelledComparison` from two
:class:`~graceful_core.types.Predictions` without labels; its :meth:`~UnlabelledComparison.to_report`
is the JSON report (``"labels": false``; keys in ``docs/metrics.md``, "Comparisons without
labels").

Examples
--------
>>> import numpy as np
>>> from graceful_core.types import Predictions
>>> ids = np.array(["a", "b", "c", "d"], dtype=object)
>>> old = Predictions(ids=ids, pred=np.array([0, 1, 0, 0]), classes=["cat", "dog"])
>>> new = Predictions(ids=ids, pred=np.array([1, 1, 1, 0]), classes=["cat", "dog"])
>>> u = compare_unlabelled(old, new, old_name="v1", new_name="v2")
>>> r = u.to_report()
>>> r["labels"], r["prediction_churn"], r["n_changed_predictions"], r["changed_predictions"]
(False, 0.5, 2, ['a', 'c'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from graceful_core.cache import make_key
from graceful_core.comparing.analyses import _cross_test_cached, sample_metadata
from graceful_core.comparing.classes import harmonise_classes, reference_predictions
from graceful_core.io.tables import join_predictions
from graceful_core.jsonable import json_clean
from graceful_core.metrics.confidence import class_probabilities
from graceful_core.metrics.prediction_churn import (
    ChurnAgainstReference,
    PredictionChurn,
    churn_against_reference,
    prediction_churn,
)
from graceful_core.metrics.slice_clusters import clusters_in_embedding_order
from graceful_core.metrics.slice_types import MIN_SAMPLES_TO_CLUSTER
from graceful_core.metrics.slices import SliceReport, describe_clusters, find_regression_slices
from graceful_core.results.coverage import MissingRows
from graceful_core.types import Predictions
from graceful_core.vocabulary import ALPHA

if TYPE_CHECKING:
    from graceful_core.metrics.retrieval import CrossTest
    from graceful_core.results.comparison import ComparisonInputs

__all__ = ["NOT_WITHOUT_LABELS", "UnlabelledComparison", "compare_unlabelled", "labels_missing_sentence"]

#: What a comparison without labels cannot report (report key -> words).
NOT_WITHOUT_LABELS = {
    "accuracy": "accuracy and error rate of either model",
    "negative_flip_rate": "negative and positive flips (NFR, PFR) and their ids",
    "backward_trust_compatibility": "BTC, BEC and old error persistence",
    "mcnemar_p_value": "McNemar's test of old against new",
    "per_class": "per-class accuracy and flips (churn per predicted class instead)",
    "regression_slices": "regression slices of negative flips (churn slices instead)",
}


def labels_missing_sentence() -> str:
    """The statement every face shows first for a comparison without labels."""
    return (
        "No true labels: every number below compares the two models' predictions with each other. "
        "Not available without labels: " + "; ".join(NOT_WITHOUT_LABELS.values()) + "."
    )


#: Slice-report keys renamed for churn slices ("negative flip" -> "changed prediction").
_SLICE_KEYS = {
    "negative_flips": "changed_predictions",
    "negative_flip_rate": "prediction_churn",
    "negative_flip_rate_ci95": "prediction_churn_ci95",
    "rest_negative_flips": "rest_changed_predictions",
    "rest_negative_flip_rate": "rest_prediction_churn",
}


def churn_slice_json(slice_json: dict[str, Any]) -> dict[str, Any]:
    """A slice's JSON object with the negative-flip keys named for churn."""
    return {_SLICE_KEYS.get(k, k): v for k, v in slice_json.items()}


def _mean(x: np.ndarray | None, mask: np.ndarray) -> float | None:
    if x is None or not mask.any():
        return None
    return float(np.mean(x[mask]))


@dataclass(frozen=True, eq=False)
class UnlabelledComparison:
    """The comparison of two models' predictions on the same samples, without true labels (frozen).

    Attributes
    ----------
    old_name, new_name : str
    classes : tuple of str
    ids, old_pred, new_pred : np.ndarray
        Per sample, in one order.
    churn : PredictionChurn
    old_conf, new_conf : np.ndarray or None
        Each model's probability for its own prediction (its top probability); None without scores.
    churn_slices : SliceReport or None
        Slices where the changed predictions concentrate (``negative_flips`` of each slice
        counts changed predictions here); None without a candidate.
    compatibility : CrossTest or None
        Embedding cross-test with the old model's predicted classes as the classes.
    reference : ChurnAgainstReference or None
    missing : MissingRows or None
        Rows left out (only with ``allow_missing``).
    key : str
    inputs : ComparisonInputs or None
    """

    old_name: str
    new_name: str
    classes: tuple[str, ...]
    ids: np.ndarray
    old_pred: np.ndarray
    new_pred: np.ndarray
    churn: PredictionChurn
    old_conf: np.ndarray | None = None
    new_conf: np.ndarray | None = None
    churn_slices: SliceReport | None = None
    compatibility: CrossTest | None = None
    reference: ChurnAgainstReference | None = None
    missing: MissingRows | None = None
    key: str = ""
    inputs: ComparisonInputs | None = field(default=None, repr=False)

    has_labels = False

    @property
    def n_samples(self) -> int:
        return int(self.churn.n_samples)

    @property
    def changed_mask(self) -> np.ndarray:
        return np.asarray(self.old_pred) != np.asarray(self.new_pred)

    @property
    def changed_ids(self) -> list[str]:
        """Ids of the samples whose prediction changed, sorted as strings."""
        return sorted(map(str, np.asarray(self.ids)[self.changed_mask].tolist()))

    def samples(self) -> pd.DataFrame:
        """Per sample: ``id``, ``old_pred``, ``new_pred`` (class names), ``old_conf``, ``new_conf``, ``changed``."""
        names = np.asarray(self.classes, dtype=object)
        nan = np.nan
        return pd.DataFrame(
            {
                "id": np.asarray(self.ids).astype(str),
                "old_pred": names[self.old_pred],
                "new_pred": names[self.new_pred],
                "old_conf": self.old_conf if self.old_conf is not None else nan,
                "new_conf": self.new_conf if self.new_conf is not None else nan,
                "changed": self.changed_mask,
            }
        )

    def changed(self) -> pd.DataFrame:
        """The samples whose prediction changed (rows of :meth:`samples`), sorted by id: the ones to label first."""
        df = self.samples()
        return df.loc[df["changed"]].sort_values("id", kind="stable").reset_index(drop=True)

    def changed_confidence(self) -> dict[str, float | None]:
        """Mean top probability of each model on changed and on unchanged predictions (None without scores)."""
        m = self.changed_mask
        return {
            "old_changed": _mean(self.old_conf, m),
            "new_changed": _mean(self.new_conf, m),
            "old_unchanged": _mean(self.old_conf, ~m),
            "new_unchanged": _mean(self.new_conf, ~m),
        }

    def to_report(self) -> dict[str, Any]:
        """The JSON report (``"labels": false``; keys in ``docs/metrics.md``)."""
        report: dict[str, Any] = {
            "labels": False,
            "not_available_without_labels": sorted(NOT_WITHOUT_LABELS),
            "n_samples": self.n_samples,
            "classes": list(self.classes),
            "old": {"name": self.old_name},
            "new": {"name": self.new_name},
            **self.churn.to_json(),
            "churn_per_class": self.churn.per_class_json(self.classes),
            "changed_prediction_confidence": self.changed_confidence(),
        }
        if self.missing is not None and self.missing.any:
            report["missing_rows"] = self.missing.to_json()
            report["ids_not_in_both"] = self.missing.old_not_compared + self.missing.new_not_compared
        if self.churn_slices is not None:
            report["churn_slices"] = [churn_slice_json(s) for s in self.churn_slices.to_json()]
        if self.compatibility is not None:
            report["compatibility"] = {**self.compatibility.to_json(), "classes_from": "old model's predictions"}
        if self.reference is not None:
            report["prediction_churn_floor"] = self.reference.to_json()
        report = json_clean(report)
        report["changed_predictions"] = self.changed_ids
        return report

    def to_dict(self) -> dict[str, Any]:
        return self.to_report()

    def significant_churn_slices(self, alpha: float = ALPHA):
        return () if self.churn_slices is None else self.churn_slices.significant(alpha)


def _churn_slices(
    changed: np.ndarray,
    old_pred: np.ndarray,
    classes: tuple[str, ...],
    metadata: pd.DataFrame | None,
    old_embedding: np.ndarray | None,
    progress,
) -> SliceReport | None:
    clustering = None
    if old_embedding is not None and len(changed) >= MIN_SAMPLES_TO_CLUSTER:
        if progress is not None:
            progress("clustering the old embeddings", 0, 1)
        got = clusters_in_embedding_order(old_embedding, old_pred, classes)
        clustering = describe_clusters(got["assignment"], got["central"], old_pred, classes, seed=int(got["seed"]))
        if progress is not None:
            progress("clustering the old embeddings", 1, 1)
    if metadata is None and clustering is None:
        return None
    rep = find_regression_slices(changed, old_pred, classes, metadata=metadata, clustering=clustering)
    return rep if rep.slices else None


def compare_unlabelled(
    old: Predictions,
    new: Predictions,
    *,
    old_name: str | None = None,
    new_name: str | None = None,
    with_compatibility: bool = True,
    with_slices: bool = True,
    key: str = "",
    inputs: ComparisonInputs | None = None,
    reference: Predictions | None = None,
    reference_name: str | None = None,
    missing: MissingRows | None = None,
    progress=None,
) -> UnlabelledComparison:
    """Build the :class:`UnlabelledComparison` of two models' predictions without labels.

    ``old`` and ``new`` are joined on ``id`` (in ``old``'s order; class names the same set,
    any order). ``progress(stage, done, total)`` hears the cross-test and the clustering.

    Raises
    ------
    InputError
        Different class sets, no shared ids; a reference with other classes or missing samples.
    """
    new = harmonise_classes(old, new)
    old_j, new_j = join_predictions(old, new)
    o = np.asarray(old_j.pred, dtype=np.int64)
    n = np.asarray(new_j.pred, dtype=np.int64)
    classes = tuple(str(c) for c in old.classes)
    churn = prediction_churn(o, n, len(classes))
    old_conf = new_conf = None
    # scores without a kind are logits, as Predictions.probabilities reads them
    if old_j.scores is not None:
        (old_conf,) = class_probabilities(old_j.scores, old_j.score_kind or "logits", o)
    if new_j.scores is not None:
        (new_conf,) = class_probabilities(new_j.scores, new_j.score_kind or "logits", n)
    compat = None
    if with_compatibility and old_j.embedding is not None and new_j.embedding is not None:
        if progress is not None:
            progress("embedding cross-test", 0, 1)
        # classes = the old model's predictions: cached apart from the labelled cross-test of the same files
        compat = _cross_test_cached(
            old_j.embedding, new_j.embedding, o, make_key(key, "by-old-prediction") if key else "", old_j.ids.tolist()
        )
        if progress is not None:
            progress("embedding cross-test", 1, 1)
    slices = None
    if with_slices:
        meta = sample_metadata(old_j, None if inputs is None else inputs.dataset)
        slices = _churn_slices(o != n, o, classes, None if meta is None else meta.to_frame(), old_j.embedding, progress)
    ref = None
    if reference is not None:
        import dataclasses

        # labels of the reference alone cannot be checked against anything: its predictions are what count
        r = reference_predictions(
            dataclasses.replace(reference, labels=None), old, np.asarray(old_j.ids), np.zeros(len(o), dtype=np.int64)
        )
        ref = churn_against_reference(
            o,
            n,
            r,
            reference_name=reference_name or reference.extra.get("model_name") or reference.source or "reference",
        )
    return UnlabelledComparison(
        old_name=old_name or old.extra.get("model_name") or old.source,
        new_name=new_name or new.extra.get("model_name") or new.source,
        classes=classes,
        ids=np.asarray(old_j.ids),
        old_pred=o,
        new_pred=n,
        churn=churn,
        old_conf=old_conf,
        new_conf=new_conf,
        churn_slices=slices,
        compatibility=compat,
        reference=ref,
        missing=missing,
        key=key,
        inputs=inputs,
    )
