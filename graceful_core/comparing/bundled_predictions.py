"""The bundled predictions tables as a record of model outputs: which model file made each table, on which data.

A bundled sample ships, beside its model files, ``predictions/<model>.parquet``: each model's
outputs (logits, embeddings) on the sample's test images, written by ``graceful predict`` when the
sample was built. Reading a table costs a fraction of a second where running the model costs many
(decoding 10,000 PNGs, then the model), so a view over several bundled models (the app's Versions)
can start from the tables -- but only where it is certain that a table holds what running that very
model file on that very dataset gives.

``predictions/manifest.json`` is that certainty, written at sample build time
(:func:`table_record`, :func:`write_manifest`; ``scripts/prediction_manifest.py``):

.. code-block:: json

    {"format": 1,
     "tables": [{"table": "v3.parquet", "table_sha256": "...",
                 "model": "v3.onnx", "model_sha256": "...",
                 "datasets": {"test": "<content hash>", "test.csv": "<content hash>"},
                 "rows": 10000, "classes": ["t-shirt/top", ...],
                 "check": {"same_predictions": true, "max_abs_logit_diff": 0.0, ...}}]}

A table is used for a model file only when (:func:`find_table`) the file's SHA-256 is a record's
``model_sha256``, the dataset's content hash (:meth:`ImageDataset.content_hash`: every id, label and
image byte) is one of the record's ``datasets``, and the table file's SHA-256 is still the record's
``table_sha256``. A record whose model file or table changed since is *stale*: it is never used, and
:func:`seed_prediction_cache` says so (the model then runs as without a table).

Using a table puts its outputs into the inference cache as the model's own entry
(:func:`graceful_core.inference.cache_predictions`): every view then agrees on that model's outputs,
and an entry computed here first is never overwritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from graceful_core.cache import atomic_output
from graceful_core.errors import InputError
from graceful_core.inference import cache_predictions, cached_predictions
from graceful_core.io.datasets import ImageDataset, align_classes
from graceful_core.io.hashing import file_sha256
from graceful_core.io.tables import load_predictions_table
from graceful_core.models.loader import load_model

#: The record's file name, in a sample's ``predictions/`` folder.
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def table_record(
    table: str | os.PathLike,
    model: str | os.PathLike,
    datasets: Mapping[str, ImageDataset],
    check: Mapping[str, object] | None = None,
) -> dict:
    """The record of one table: it holds ``model``'s outputs on each of ``datasets`` (by name).

    The caller vouches that the table was written by running ``model`` on these images (at
    sample build time, right after ``predict``), and may pass what it compared in ``check``.
    The table's ids must be each dataset's ids and its labels their labels: a record never
    names a dataset the table does not cover.

    Raises
    ------
    InputError
        The table does not cover a dataset exactly (ids or labels differ).
    """
    classes = [str(c) for c in load_model(os.fspath(model)).info.classes]
    try:
        preds = load_predictions_table(table, classes=classes)
    except InputError as e:
        raise InputError(os.fspath(table), f"its classes are not {Path(model).name}'s ({e.message})") from e
    ids = [str(i) for i in preds.ids]
    for name, ds in datasets.items():
        if sorted(ids) != sorted(ds.ids):
            raise InputError(os.fspath(table), f"its ids are not the ids of dataset {name!r}")
        row = {sid: k for k, sid in enumerate(ids)}
        at = np.fromiter((row[sid] for sid in ds.ids), dtype=np.int64, count=len(ds))
        if preds.labels is None:
            raise InputError(os.fspath(table), "it has no labels")
        table_labels = [preds.classes[int(y)] for y in preds.labels[at]]
        if table_labels != [ds.classes[int(y)] for y in ds.labels]:
            raise InputError(os.fspath(table), f"its labels are not the labels of dataset {name!r}")
    return {
        "table": Path(table).name,
        "table_sha256": file_sha256(table),
        "model": Path(model).name,
        "model_sha256": file_sha256(model),
        "datasets": {name: ds.content_hash() for name, ds in datasets.items()},
        "rows": len(ids),
        "classes": classes,
        "check": dict(check or {}),
    }


def write_manifest(folder: str | os.PathLike, records: Sequence[dict]) -> Path:
    """Write ``folder/manifest.json`` (atomically) with ``records`` in table-name order."""
    path = Path(folder) / MANIFEST_NAME
    doc = {"format": MANIFEST_FORMAT, "tables": sorted(records, key=lambda r: r["table"])}
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2) + "\n")
    return path


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """The records of ``folder/manifest.json``; [] without one or in a format this version cannot read."""
    path = Path(folder) / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("tables"), list):
        return []
    return [r for r in doc["tables"] if isinstance(r, dict)]


@dataclass(frozen=True)
class TableMatch:
    """What :func:`find_table` found for one model file: a table and its record, or why a record was refused."""

    table: Path | None = None
    record: dict = field(default_factory=dict)
    #: Why a record of this model's file name was not used (the model runs instead); "" if none applied.
    stale: str = ""


def find_table(model: str | os.PathLike, dataset: ImageDataset, folders: Iterable[str | os.PathLike]) -> TableMatch:
    """The bundled table holding ``model``'s outputs on ``dataset``, if a record in ``folders`` vouches for it."""
    sha = file_sha256(model)
    stale = ""
    for folder in folders:
        for rec in read_manifest(folder):
            datasets = rec.get("datasets") or {}
            if not isinstance(datasets, dict):
                continue
            table = Path(folder) / str(rec.get("table", ""))
            if rec.get("model_sha256") != sha:
                if rec.get("model") == Path(model).name and dataset.content_hash() in datasets.values():
                    stale = f"{rec.get('table')} was made by another {rec.get('model')} (the file changed since)"
                continue
            if dataset.content_hash() not in datasets.values():
                continue
            if not table.is_file() or file_sha256(table) != rec.get("table_sha256"):
                stale = f"{rec.get('table')} changed since its record was written"
                continue
            return TableMatch(table=table, record=rec)
    return TableMatch(stale=stale)


@dataclass(frozen=True)
class SourcesReport:
    """Which models' outputs are read from bundled tables, and which records were refused as stale."""

    #: Model file names whose outputs are read from a table.
    used: list[str] = field(default_factory=list)
    #: Model file name -> why its table was not used.
    stale: dict[str, str] = field(default_factory=dict)


def recorded_sources(
    models: Sequence[str | os.PathLike], dataset: ImageDataset, folders: Iterable[str | os.PathLike]
) -> tuple[list[str], SourcesReport]:
    """``models`` with each model file whose outputs on ``dataset`` are on record replaced by its table.

    A recorded model's outputs also go into the inference cache as that model's own entry
    (:func:`graceful_core.inference.cache_predictions`), so that every view agrees on them;
    where the cache already holds outputs of a run of the model here (a few 1e-6 apart from
    the table's: inference is not bit-reproducible across thread counts), the model file
    stays (its cached run is used, as everywhere else). Returns the sources, in order, and
    what was read from tables and which records were refused.
    """
    folders = list(folders)
    report = SourcesReport()
    sources: list[str] = []
    for path in models:
        path = os.fspath(path)
        match = find_table(path, dataset, folders)
        if match.table is None:
            if match.stale:
                report.stale[Path(path).name] = match.stale
            sources.append(path)
            continue
        classes = [str(c) for c in match.record.get("classes", [])]
        aligned = align_classes(dataset, classes)
        preds = load_predictions_table(match.table, classes=classes)
        if preds.score_kind != "logits" or preds.scores is None:
            report.stale[Path(path).name] = f"{match.table.name} has no logits"
            sources.append(path)
            continue
        row = {str(sid): k for k, sid in enumerate(preds.ids)}
        at = np.fromiter((row[sid] for sid in aligned.ids), dtype=np.int64, count=len(aligned))
        logits = preds.scores[at]
        emb = preds.embedding[at] if preds.embedding is not None else None
        sha = str(match.record["model_sha256"])
        hit = cached_predictions(sha, classes, aligned)
        if hit is None:
            cache_predictions(sha, classes, aligned, logits, emb)
        elif not _same_outputs(hit, (logits, emb)):
            sources.append(path)  # outputs of a run here are cached: those
            continue
        sources.append(str(match.table))
        report.used.append(Path(path).name)
    return sources, report


def _same_outputs(a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None]) -> bool:
    (la, ea), (lb, eb) = a, b
    if not np.array_equal(la, lb):
        return False
    return ea is None and eb is None or (ea is not None and eb is not None and np.array_equal(ea, eb))
