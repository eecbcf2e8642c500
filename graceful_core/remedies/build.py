"""``graceful mitigate``: the what-if remedies of two model files (or predictions tables) on a dataset.

:func:`mitigate_sources` loads both sides' class scores on the evaluation data (running
model files, through the inference cache), scores mixing and gating
(:mod:`graceful_core.metrics.whatif`), runs the interpolated models when the two files
have one architecture (:mod:`.interpolation`), and recommends a point: chosen on
``validation`` when given, else by 2-fold cross-fitting on the evaluation set.
:func:`whatif_from_predictions` is the same for predictions already in memory (mixing and
gating only); the comparison report uses it for ``mitigation_whatif``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import numpy as np

from graceful_core.comparing.classes import harmonise_classes
from graceful_core.comparing.options import RunKeywords, RunOptions, run_options
from graceful_core.comparing.sources import is_table, side_predictions
from graceful_core.errors import InputError
from graceful_core.inference import predict
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.tables import join_predictions
from graceful_core.metrics.whatif import (
    DEFAULT_MAX_ERROR_INCREASE,
    INTERPOLATION_ALPHAS,
    Candidates,
    WhatIfReport,
    candidate_predictions,
    probabilities64,
    whatif_report,
)
from graceful_core.types import Model, Predictions

__all__ = ["MitigationResult", "mitigate_sources", "whatif_from_predictions", "NO_SCORES", "INTERPOLATION_NEEDS_FILES"]

#: Why there are no remedies: a side without class scores.
NO_SCORES = (
    "has no class scores (logits or probs): the what-if remedies mix the two models' class probabilities; "
    "give a model file or a predictions table with a logits/probs column"
)
#: ``interpolation_reason`` when a side is a predictions table.
INTERPOLATION_NEEDS_FILES = "weight interpolation needs both model files (a predictions table has no weights)"


def _joined(old: Predictions, new: Predictions) -> tuple[Predictions, Predictions]:
    for p in (old, new):
        if p.scores is None:
            raise InputError(p.source or None, NO_SCORES)
    old_j, new_j = join_predictions(old, harmonise_classes(old, new))
    if old_j.labels is None and new_j.labels is None:
        raise InputError(new.source or old.source or None, "no true labels: give --data DATA, or a 'label' column")
    return old_j, new_j


def _candidates(old_j: Predictions, new_j: Predictions, interpolation: np.ndarray | None = None) -> Candidates:
    labels = old_j.labels if old_j.labels is not None else new_j.labels
    return candidate_predictions(
        labels,
        probabilities64(old_j.scores, old_j.score_kind),
        probabilities64(new_j.scores, new_j.score_kind),
        old_j.pred,
        new_j.pred,
        interpolation,
    )


def whatif_from_predictions(
    old: Predictions,
    new: Predictions,
    *,
    max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE,
    interpolation_reason: str = "not computed here: run graceful mitigate on the model files",
) -> WhatIfReport:
    """Mixing and gating of two models' predictions with class scores, recommended by cross-fitting.

    Raises
    ------
    InputError
        A side without class scores, no shared ids, or no labels.
    """
    old_j, new_j = _joined(old, new)
    return whatif_report(
        _candidates(old_j, new_j),
        old_j.ids,
        interpolation_reason=interpolation_reason,
        max_error_increase=max_error_increase,
    )


@dataclass(frozen=True)
class MitigationResult:
    """The what-if report of two sources and what it was computed on."""

    report: WhatIfReport
    old: str
    new: str
    data: str | None
    validation: str | None

    def to_json(self) -> dict:
        """The ``graceful mitigate --json`` object (``docs/metrics.md``, "What-if remedies")."""
        out = self.report.to_json()
        out["old"], out["new"] = Path(self.old).name, Path(self.new).name
        return out

    def export(self, path: str | os.PathLike) -> str:
        """Write the recommended point as one model file (``.pt2`` or ``.onnx``); returns what was written."""
        # model files and the exported remedy are torch's: loaded only when a remedy is written
        from graceful_core.models.loader import load_model
        from graceful_core.remedies.transition import export_remedy

        for src in (self.old, self.new):
            if is_table(src):
                raise InputError(src, "--export needs model files: a predictions table cannot be deployed")
        rec = self.report.recommended
        return export_remedy(load_model(self.old), load_model(self.new), rec.method, rec.params, path)


def _interpolation(
    old: str, new: str, new_j: Predictions, dataset: ImageDataset, opts: RunOptions
) -> tuple[np.ndarray | None, str | None]:
    # the interpolated models are torch's: loaded only when two model files are interpolated
    from graceful_core.models.loader import load_model
    from graceful_core.remedies.interpolation import interpolation_predictions

    if is_table(old) or is_table(new):
        return None, INTERPOLATION_NEEDS_FILES
    om, nm = load_model(old), load_model(new)

    def run(model: Model, alpha: float) -> Predictions:
        stage = opts.stage(f"interpolated weights, alpha {alpha:g}")
        return predict(model, dataset, progress=stage, use_cache=False, batch_size=opts.batch_size)

    return interpolation_predictions(om, np.asarray(new_j.scores, np.float32), nm, run, INTERPOLATION_ALPHAS)


def _sides(old: str, new: str, dataset: ImageDataset | None, opts: RunOptions) -> tuple[Predictions, Predictions]:
    old_p, new_p, _ = side_predictions(old, new, dataset, opts)
    return old_p, new_p


def mitigate_sources(
    old: str | os.PathLike,
    new: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    validation: str | os.PathLike | None = None,
    max_error_increase: float = DEFAULT_MAX_ERROR_INCREASE,
    interpolation: bool = True,
    **run: Unpack[RunKeywords],
) -> MitigationResult:
    """What each training-free remedy would change for ``old`` → ``new`` on ``data``, and the recommendation.

    Parameters
    ----------
    old, new : path
        Model files (``.pt2``, ``.pt``, ``.onnx``) or predictions tables with class scores.
    data : path, optional
        The evaluation dataset (needed for model files).
    validation : path, optional
        A labelled dataset to choose the recommended point on (model files only); without
        it the choice is 2-fold cross-fitting on ``data``.
    max_error_increase : float
        The rule's slack over the new model's error rate, as a rate (0.001 = 0.1 points).
    interpolation : bool
        Run the weight interpolation when both files have one architecture (11 passes over
        ``data``, 11 more over ``validation``).
    **run
        The run options ``progress``, ``use_cache``, ``device``, ``batch_size``
        (:class:`~graceful_core.comparing.options.RunOptions`).

    Raises
    ------
    InputError
        Missing scores, labels or files; a validation set with tables.

    Examples
    --------
    >>> r = mitigate_sources("sample_data/fashion/predictions/old.parquet",
    ...                      "sample_data/fashion/predictions/new.parquet")  # doctest: +SKIP
    >>> r.report.recommended.sentence()  # doctest: +SKIP
    """
    opts = run_options(**run)
    old, new = os.fspath(old), os.fspath(new)
    if not 0.0 <= max_error_increase < 1.0:
        raise InputError(
            None, f"--max-error-increase must be between 0 and 100 points, got {max_error_increase * 100:g}"
        )
    dataset = load_dataset(data) if data is not None else None
    old_j, new_j = _joined(*_sides(old, new, dataset, opts))
    rows = reason = None
    if interpolation:
        rows, reason = (
            (None, INTERPOLATION_NEEDS_FILES)
            if dataset is None or is_table(old) or is_table(new)
            else _interpolation(old, new, new_j, dataset, opts)
        )
        if (
            rows is not None
            and dataset is not None
            and not np.array_equal(np.asarray(old_j.ids), np.asarray(dataset.ids, dtype=object))
        ):
            rows, reason = None, "the evaluation rows are not the dataset's (ids missing on a side)"
    else:
        reason = "not asked for"
    evaluation = _candidates(old_j, new_j, rows)
    val = None
    if validation is not None:
        if is_table(old) or is_table(new):
            raise InputError(
                os.fspath(validation),
                "--validation needs model files (the models run on it); "
                "with predictions tables the choice is cross-fitted",
            )
        vds = load_dataset(validation)
        vo, vn = _joined(*_sides(old, new, vds, opts))
        vrows = None
        if rows is not None:
            vrows, vreason = _interpolation(old, new, vn, vds, opts)
            if vrows is None:
                raise InputError(os.fspath(validation), f"interpolation failed on the validation set ({vreason})")
        val = _candidates(vo, vn, vrows)
    try:
        report = whatif_report(
            evaluation, old_j.ids, validation=val, interpolation_reason=reason, max_error_increase=max_error_increase
        )
    except ValueError as e:
        raise InputError(os.fspath(data) if data is not None else new, str(e)) from None
    return MitigationResult(
        report,
        old,
        new,
        None if data is None else os.fspath(data),
        None if validation is None else os.fspath(validation),
    )
