"""Build a :class:`~graceful_core.results.comparison.Comparison` from two models' predictions.

:func:`compare_predictions` is the single place where a comparison is computed from two
models' predictions; the CLI, the app, the Python API and the model sets all get theirs
from it (files go through :func:`graceful_core.comparing.sources.compare_sources`).

Examples
--------
>>> import numpy as np
>>> from graceful_core.types import Predictions
>>> ids = np.array(["a", "b", "c", "d"], dtype=object)
>>> old = Predictions(ids=ids, pred=np.array([0, 1, 0, 0]), classes=["cat", "dog"], labels=np.array([0, 1, 1, 0]))
>>> new = Predictions(ids=ids, pred=np.array([1, 1, 1, 0]), classes=["cat", "dog"])
>>> comp = compare_predictions(old, new, old_name="v1", new_name="v2")
>>> comp.summary.n_negative_flips, comp.flip_ids.negative, comp.flip_ids.positive
(1, ('a',), ('c',))
>>> comp.to_report()["negative_flip_rate"]
0.25
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graceful_core.comparing.analyses import _cross_test_cached, _embedding_overlap, regression_slices, sample_metadata
from graceful_core.comparing.classes import harmonise_classes, reference_predictions
from graceful_core.errors import InputError
from graceful_core.io.tables import join_predictions
from graceful_core.metrics.churn import churn_floor
from graceful_core.metrics.confidence import class_probabilities, flip_confidence_split_from_true_probs
from graceful_core.metrics.counts import FlipCounts
from graceful_core.metrics.label_issues import label_issues_of_comparison
from graceful_core.metrics.retrieval import head_accuracy
from graceful_core.metrics.whatif import whatif_of_scores
from graceful_core.results.comparison import Comparison, ComparisonInputs, FlipIds, GroupFlips, SampleArrays
from graceful_core.results.coverage import MissingRows
from graceful_core.types import Predictions
from graceful_core.vocabulary import StageProgress


def compare_predictions(
    old: Predictions,
    new: Predictions,
    *,
    old_name: str | None = None,
    new_name: str | None = None,
    with_compatibility: bool = True,
    with_slices: bool = True,
    old_head: Callable[[np.ndarray], np.ndarray] | None = None,
    key: str = "",
    inputs: ComparisonInputs | None = None,
    reference: Predictions | None = None,
    reference_name: str | None = None,
    missing: MissingRows | None = None,
    progress: StageProgress | None = None,
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
        Run the embedding cross-test and the embedding overlap when both sides have
        embeddings.
    with_slices : bool
        Look for regression slices (:func:`regression_slices`) in the samples' metadata
        (the dataset's, then ``old``'s table columns) and the old embeddings.
    old_head : callable, optional
        The old model's classifier head (embeddings -> logits); with comparable
        embeddings, its accuracy on the new embeddings is measured.
    key : str
        Content identity of the inputs; the embedding overlap is cached on disk under it.
    inputs : ComparisonInputs, optional
        Where the predictions came from (kept for the lazy results).
    reference, reference_name : Predictions and str, optional
        A retrain of the old model (its architecture and data, another seed) on the same
        samples: the comparison then has its ``churn_floor``
        (:func:`~graceful_core.metrics.churn.churn_floor`, aligned by :func:`reference_predictions`).
    missing : MissingRows, optional
        The rows left out, kept on the result (the caller decided they may be).
    progress : callable, optional
        ``progress(stage, done, total)`` at the start and end of the embedding cross-test
        and of the clustering (each takes seconds to a minute on 10,000 images).

    Raises
    ------
    InputError
        Different class sets, no shared ids, disagreeing labels, or no labels at all; a
        reference with other classes, missing compared samples or other labels (naming
        the reference's file).
    """
    new = harmonise_classes(old, new)
    old_j, new_j = join_predictions(old, new)
    labels = old_j.labels if old_j.labels is not None else new_j.labels
    if labels is None:
        raise InputError(
            new.source or old.source,
            "no true labels: give --data DATA, or a 'label' column in one of the tables",
        )
    labels = np.asarray(labels, dtype=np.int64)
    o = np.asarray(old_j.pred, dtype=np.int64)
    n = np.asarray(new_j.pred, dtype=np.int64)
    old_conf = old_p = new_conf = new_p = None
    if old_j.scores is not None:
        old_conf, old_p = class_probabilities(old_j.scores, old_j.score_kind or "logits", o, labels)
    if new_j.scores is not None:
        new_conf, new_p = class_probabilities(new_j.scores, new_j.score_kind or "logits", n, labels)
    split = (
        flip_confidence_split_from_true_probs(labels, o, n, old_p, new_p)
        if old_p is not None and new_p is not None
        else {}
    )
    counts = FlipCounts.from_predictions(labels, o, n, len(old.classes), **split)
    slices = old_j.extra.get("slices")
    if slices is None:
        slices = new_j.extra.get("slices")
    old_e, new_e = old_j.embedding, new_j.embedding
    compat = overlap = head_acc = None
    if with_compatibility and old_e is not None and new_e is not None:
        if progress is not None:
            progress(STAGE_CROSS_TEST, 0, 1)
        compat = _cross_test_cached(old_e, new_e, labels, key, old_j.ids)
        if progress is not None:
            progress(STAGE_CROSS_TEST, 1, 1)
        overlap = (
            compat.embedding_overlap if compat.embedding_overlap is not None else _embedding_overlap(old_e, new_e, key)
        )
        if old_head is not None and old_e.shape[1] == new_e.shape[1]:
            head_acc = head_accuracy(old_head(new_e), labels)
    arrays = SampleArrays(
        ids=np.asarray(old_j.ids),
        labels=labels,
        old_pred=o,
        new_pred=n,
        old_conf=old_conf,
        new_conf=new_conf,
        old_p_true=old_p,
        new_p_true=new_p,
        slices=None if slices is None else np.asarray(slices),
        old_embedding=old_e,
        new_embedding=new_e,
        metadata=sample_metadata(old_j, None if inputs is None else inputs.dataset),
    )
    churn = None
    if reference is not None:
        r = reference_predictions(reference, old, arrays.ids, labels)
        churn = churn_floor(
            labels,
            o,
            n,
            r,
            reference_name=reference_name or reference.extra.get("model_name") or reference.source or "reference",
        )
    whatif = None
    if old_j.scores is not None and new_j.scores is not None:
        try:
            whatif = whatif_of_scores(
                labels, arrays.ids, old_j.scores, old_j.score_kind, new_j.scores, new_j.score_kind, o, n
            )
        except ValueError:  # too few samples to cross-fit: the report has no what-if object
            whatif = None
    return Comparison(
        old_name=old_name or old.extra.get("model_name") or old.source,
        new_name=new_name or new.extra.get("model_name") or new.source,
        classes=tuple(old.classes),
        counts=counts,
        flip_ids=FlipIds.complete(
            arrays.ids[arrays.negative_flip_mask].tolist(), arrays.ids[arrays.positive_flip_mask].tolist()
        ),
        arrays=arrays,
        per_slice=None if slices is None else GroupFlips.from_arrays(labels, o, n, slices),
        regression_slices=_with_stage(
            progress, STAGE_CLUSTERING, lambda: regression_slices(arrays, tuple(old.classes), key)
        )
        if with_slices
        else None,
        compatibility=compat,
        old_head_on_new_accuracy=head_acc,
        embedding_overlap=overlap,
        churn_floor=churn,
        # rows of either side not compared: missing from the other side (the join) or from the dataset
        dropped_ids=int(old_j.extra.get("dropped_ids", 0)) + int(new.extra.get("dropped_ids", 0)),
        key=key,
        inputs=inputs,
        **label_issues_of_comparison(labels, old_j, new_j),
        mitigation_whatif=whatif,
        missing=missing,
    )


#: Progress stages of :func:`compare_predictions` besides inference.
STAGE_CROSS_TEST, STAGE_CLUSTERING = "embedding cross-test", "regression slices (clustering)"


def _with_stage(progress: StageProgress | None, stage: str, work: Callable[[], Any]) -> Any:
    """``work()``, announced to ``progress`` as ``stage`` 0/1 before and 1/1 after."""
    if progress is not None:
        progress(stage, 0, 1)
    out = work()
    if progress is not None:
        progress(stage, 1, 1)
    return out
