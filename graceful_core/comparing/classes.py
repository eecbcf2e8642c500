"""The one class-order rule: a second model's predictions follow the first model's class list.

Two models may name the same classes in another order (a retrain that sorted its folders
differently); every comparison puts the new model's (and a reference's) class indices in
the old model's order before a single count is taken (:func:`harmonise_classes`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graceful_core.errors import InputError
from graceful_core.types import Predictions


def harmonise_classes(old: Predictions, new: Predictions) -> Predictions:
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


def reference_predictions(reference: Predictions, old: Predictions, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The reference model's predictions on the compared samples, as indices into ``old``'s classes.

    ``ids`` and ``labels`` are the compared samples (after the join of old and new). The
    reference must have the same class names (any order), a prediction for every compared
    sample (rows outside them are not used) and, if it carries labels, the same ones.

    Raises
    ------
    InputError
        Naming the reference's file: other class names, compared samples it lacks, or a
        label that disagrees.
    """
    ref = harmonise_classes(old, reference)
    src = reference.source or "reference"
    index = pd.Index(np.asarray(ref.ids).astype(str))
    if not index.is_unique:
        raise InputError(src, "sample ids must be unique in the reference")
    rows = index.get_indexer(np.asarray(ids).astype(str))
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        raise InputError(
            src,
            f"the reference lacks {missing.size} of the {len(ids)} compared samples (e.g. id "
            f"{str(ids[missing[0]])!r}): run it on the same samples as the old and new models",
        )
    if ref.labels is not None:
        bad = np.flatnonzero(np.asarray(ref.labels)[rows] != labels)
        if bad.size:
            i = bad[0]
            raise InputError(
                src,
                f"label of id {str(ids[i])!r} is {old.classes[int(ref.labels[rows[i]])]!r} but the "
                f"compared models' data say {old.classes[int(labels[i])]!r}",
            )
    return np.asarray(ref.pred, dtype=np.int64)[rows]
