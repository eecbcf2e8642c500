"""The Python API: compare two models where you already work (a notebook, a training script).

>>> from graceful_core import compare                                    # doctest: +SKIP
>>> comp = compare(old_model, new_model, test_loader)                    # doctest: +SKIP
>>> comp.summary.negative_flip_rate, comp.to_report()["negative_flips"][:5]  # doctest: +SKIP

``old`` and ``new`` may each be a model file or predictions table path (as on the command
line), a ``torch.nn.Module`` (:mod:`graceful_core.models.module` says how its logits and
embedding are read), or an array: logits ``[N, K]`` or class predictions ``[N]``. ``data``
is a dataset path (folder, ``.zip``, manifest), a tuple ``(x, labels)`` (``x`` a tensor fed to
the modules as it is, or None when both sides are arrays), a ``torch.utils.data.Dataset``
or a ``DataLoader`` yielding ``(x, y)``. The result is the same
:class:`~graceful_core.results.comparison.Comparison` the CLI builds: two paths go through
:func:`graceful_core.comparing.sources.compare_sources` (exactly the CLI's path); anything else is
turned into :class:`~graceful_core.types.Predictions` and compared by
:func:`graceful_core.comparing.predictions.compare_predictions`, the one place metrics are computed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from graceful_core.comparing.in_memory import (
    DataSource,
    Side,
    _class_names,
    _in_memory_predictions,
    _old_head,
    _predictions,
    data_source,
    predictions_of,
    side_of,
)
from graceful_core.comparing.labelfree import compare_unlabelled
from graceful_core.comparing.options import RunKeywords
from graceful_core.comparing.predictions import compare_predictions
from graceful_core.comparing.sources import compare_sources, is_table
from graceful_core.errors import InputError
from graceful_core.models.devices import require_device
from graceful_core.results.comparison import Comparison, ComparisonInputs
from graceful_core.types import ModelInfo
from graceful_core.vocabulary import StageProgress

if TYPE_CHECKING:
    from graceful_core.comparing.labelfree import UnlabelledComparison

__all__ = ["compare", "Side", "DataSource", "side_of", "data_source", "predictions_of", "StageProgress"]


# --------------------------------------------------------------------------- the API
def compare(
    old: Any,
    new: Any,
    data: Any = None,
    *,
    classes: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    info: ModelInfo | dict | None = None,
    old_name: str | None = None,
    new_name: str | None = None,
    ids: Sequence[str] | None = None,
    progress: StageProgress | None = None,
    use_cache: bool = True,
    stream: bool | None = None,
    flip_ids_path: str | os.PathLike | None = None,
    reference: Any = None,
    reference_name: str | None = None,
    allow_missing: bool = False,
) -> Comparison | UnlabelledComparison:
    """Compare an old and a new model on labelled samples; the same :class:`Comparison` as the CLI.

    Without labels (two predictions tables without a ``label`` column and no dataset, or
    two arrays and no ``data``) the result is an
    :class:`~graceful_core.comparing.labelfree.UnlabelledComparison`: prediction churn, the old → new
    transition matrix, churn per predicted class and churn slices, and no number that
    needs labels (``to_report()["labels"]`` is False).

    Parameters
    ----------
    old, new : path, torch.nn.Module or array
        A model file (``.pt2``, ``.pt``, ``.onnx``) or predictions table (``.csv``,
        ``.parquet``); a module (logits from ``forward``, embeddings from ``embed(x)`` or a
        forward returning ``(logits, embedding)``; run in eval mode without gradients, its
        training flag restored); or logits ``[N, K]`` / class predictions ``[N]`` (NumPy or
        torch), in the order of ``data``.
    data : path, tuple, Dataset or DataLoader, optional
        A dataset path (class folders, ``.zip``, manifest: what the CLI's ``--data`` takes);
        ``(x, labels)`` with ``x`` a tensor fed to the modules as it is (None when both sides
        are arrays); a ``torch.utils.data.Dataset`` of ``(x, y)`` items; or a ``DataLoader``
        yielding ``(x, y)`` batches (iterated once; both modules see every batch). Not
        needed for two predictions tables with labels.
    classes : sequence of str, optional
        Class names in the models' index order (default: from the model files or the
        dataset, else ``"0".."K-1"``).
    batch_size : int
        Samples per forward pass (model files, dataset paths, ``(x, labels)``, Datasets).
    device : {"auto", "cpu", "cuda"}
        Where model files run and where module inputs are moved (``auto``: model files on
        CUDA when available; a module's inputs to the module's own device). Modules are
        never moved.
    info : ModelInfo or dict, optional
        Preprocessing and class names (the ``graceful.json`` fields) for modules run on a
        dataset path (or set ``module.graceful_info``).
    old_name, new_name : str, optional
        Display names (default: file names, module class names, ``"old"``/``"new"``).
    ids : sequence of str, optional
        Sample ids of in-memory data, in its order (default ``"0".."N-1"``); a dataset
        path has its own (file paths).
    progress : callable, optional
        ``progress(stage, done, total)`` while models run, and 0/1 then 1/1 around each
        other long stage (embedding cross-test, clustering for the regression slices).
        :class:`graceful_core.cli.progress.StderrProgress` draws it on stderr.
    use_cache : bool
        Use the on-disk inference cache for model files.
    stream : bool or None
        Two predictions tables (files, folders or globs of Parquet shards) are compared
        streamed, in memory that does not grow with their rows: None (default) when a
        table has more than a million rows, True always, False never
        (:func:`graceful_core.comparing.sources.should_stream`). A streamed comparison has no
        per-sample arrays (``samples()`` needs them) and no embedding cross-test.
    flip_ids_path : path, optional
        Streamed only: write every flipped sample to this Parquet file (the report keeps
        the first 1,000 ids of each kind); ``comp.flip_ids.parquet`` names it.
    reference : path, torch.nn.Module or array, optional
        A retrain of the old model (its architecture and data, another seed), of the same
        kinds as ``old`` and run on the same ``data``: the comparison then has its
        ``churn_floor`` (the NFR of the reference against ``old`` and whether ``new``
        breaks significantly more images; :mod:`graceful_core.metrics.churn`). Not with a
        streamed comparison.
    reference_name : str, optional
        Its display name (default: the file name, the module class name, ``"reference"``).
    allow_missing : bool
        Two tables whose ids differ (or that lack images of the dataset) are an
        InputError unless True; the comparison's ``missing`` then says what was left out.

    Returns
    -------
    Comparison
        ``to_report()`` is the CLI's JSON report (same keys); ``summary``, ``per_class``,
        ``samples()`` are the tables.

    Raises
    ------
    InputError
        The problem, naming the file or ``old``/``new``/``data``/``classes``.

    Examples
    --------
    >>> import numpy as np
    >>> comp = compare(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]), (None, np.array([0, 1, 1, 1])))
    >>> comp.summary.n_negative_flips, comp.summary.n_positive_flips
    (1, 1)
    """
    if batch_size < 1:
        raise InputError("batch_size", f"must be >= 1, got {batch_size}")
    device = require_device(device)
    run: RunKeywords = {"progress": progress, "use_cache": use_cache, "device": device, "batch_size": batch_size}
    o, n = side_of(old, "old", old_name), side_of(new, "new", new_name)
    r = None if reference is None else side_of(reference, "reference", reference_name)
    src = data_source(data, batch_size)
    if stream and not (o.kind == "path" and n.kind == "path"):
        raise InputError("stream", "only two predictions tables (paths) are compared streamed")
    if o.kind == "path" and n.kind == "path" and (r is None or r.kind == "path") and src.kind in ("path", "none"):
        return compare_sources(
            o.value,
            n.value,
            src.path,
            dataset=src.dataset,
            old_name=old_name and o.name,
            new_name=new_name and n.name,
            stream=stream,
            flip_ids_path=flip_ids_path,
            reference=None if r is None else r.value,
            reference_name=None if r is None else reference_name and r.name,
            allow_missing=allow_missing,
            **run,
        )
    if src.kind == "none" and o.kind == "array" and n.kind == "array":
        return _compare_arrays_without_labels(o, n, classes, ids, progress)
    if src.kind == "none":
        raise InputError("data", "give the samples: a dataset path, (x, labels), a Dataset or a DataLoader")
    if src.kind == "path":
        # As on the command line, a model knows its classes and a table or array follows them.
        new_first = _follows(o) and not _follows(n)
        first, second = (n, o) if new_first else (o, n)
        p1 = predictions_of(first, src, classes=classes, info=info, **run)
        p2 = predictions_of(second, src, classes=classes or p1.classes, info=info, **run)
        old_p, new_p = (p2, p1) if new_first else (p1, p2)
        ref_p = (
            None
            if r is None
            else predictions_of(
                r, src, classes=(classes or old_p.classes) if _follows(r) else classes, info=info, **run
            )
        )
    else:
        sides = [o, n] + ([r] if r is not None else [])
        if any(s.kind == "path" for s in sides):
            side = next(s for s in sides if s.kind == "path")
            raise InputError(
                side.value,
                "a model file or table needs a dataset path as data (its images or ids); "
                "with in-memory data, give modules or arrays",
            )
        old_p, new_p, *rest = _in_memory_predictions(sides, src, classes, batch_size, device, progress, ids)
        ref_p = rest[0] if rest else None
    inputs = ComparisonInputs(dataset=src.dataset) if src.kind == "path" else None
    return compare_predictions(
        old_p,
        new_p,
        old_name=o.name,
        new_name=n.name,
        old_head=_old_head(o, device),
        inputs=inputs,
        reference=ref_p,
        reference_name=None if r is None else r.name,
        progress=progress,
    )


def _compare_arrays_without_labels(
    o: Side, n: Side, classes: Sequence[str] | None, ids: Sequence[str] | None, progress: StageProgress | None
) -> UnlabelledComparison:
    """Two arrays (logits or predictions, one row per sample, same order) and no data: prediction churn."""
    a, b = o.value, n.value
    if a.shape[0] != b.shape[0]:
        raise InputError("new", f"has {b.shape[0]} rows but old has {a.shape[0]} (rows must be the same samples)")
    ks = [x.shape[1] for x in (a, b) if x.ndim == 2]
    if len(set(ks)) > 1:
        raise InputError("new", f"gives {ks[1]} logits per sample but old gives {ks[0]}")
    if ks:
        k = ks[0]
    elif classes is not None:
        k = len(classes)
    else:
        raise InputError(
            "classes",
            "two arrays of class predictions and no labels: pass classes=[...] (all class "
            "names, in index order) so that the class count is known",
        )
    names = _class_names(classes, k, "classes")
    if ids is None:
        ids = [str(i) for i in range(a.shape[0])]
    ids_arr = np.array([str(i) for i in ids], dtype=object)
    if len(ids_arr) != a.shape[0] or len(set(ids_arr.tolist())) != len(ids_arr):
        raise InputError("ids", f"need {a.shape[0]} unique ids, got {len(ids_arr)}")
    sides = [
        _predictions(
            s.role,
            s.name,
            ids_arr,
            None,
            names,
            s.value if s.value.ndim == 2 else None,
            s.value if s.value.ndim == 1 else None,
            None,
        )
        for s in (o, n)
    ]
    return compare_unlabelled(sides[0], sides[1], old_name=o.name, new_name=n.name, progress=progress)


def _follows(side: Side) -> bool:
    """True for a side without its own class list (a predictions table or an array)."""
    return side.kind == "array" or (side.kind == "path" and is_table(side.value))
