"""Streamlit's caches over the core's results: each computed once per server and shared.

Everything here is a thin ``st.cache_resource`` / ``st.cache_data`` wrapper around one
call of :mod:`graceful_core`; nothing computes a result itself. Streamlit holds one lock
per cache key, so two sessions asking for the same result at once compute it once: the
second waits behind the spinner's message and then gets the first one's result.
Comparisons are jobs of the server (:mod:`graceful_ui.jobs`), not computations of a page's
script run: leaving a page while its comparison runs does not stop it. The
lazy results (probabilities, projections, neighbours) are also cached on disk by the
core under the comparison's content key, so a restarted server does not recompute them.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from graceful_core.comparing.bundled_predictions import SourcesReport, recorded_sources
from graceful_core.comparing.labelfree import UnlabelledComparison
from graceful_core.comparing.lineage import model_matrix_report
from graceful_core.comparing.sources import cached_flip_ids_path, compare_sources
from graceful_core.errors import InputError
from graceful_core.explore import on_demand as lazy
from graceful_core.explore import selection as views
from graceful_core.explore.projection import ProjectionResult
from graceful_core.explore.thumbnails import thumbnail_png
from graceful_core.io.datasets import ImageDataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.samples import bundled_samples
from graceful_core.io.tables import is_glob
from graceful_core.report.figures import joint_embedding_figure, side_by_side_embedding_figure
from graceful_core.results.comparison import Comparison
from graceful_core.results.lineage import ModelSet
from graceful_core.vocabulary import StageProgress
from graceful_ui.bundled_specs import sample_data_dir
from graceful_ui.jobs import ComparisonJobs, Job
from graceful_ui.progress import progress_bar
from graceful_ui.spec import Spec

if TYPE_CHECKING:  # typing.TypeIs from Python 3.13; annotations only
    import plotly.graph_objects as go
    from typing_extensions import TypeIs

#: What a spec's job gives: a comparison, or a label-free one when the dataset has no labels.
AnyComparison = Comparison | UnlabelledComparison


def labelled(comp: AnyComparison) -> TypeIs[Comparison]:
    """True for a comparison with labels; False for a :class:`UnlabelledComparison` (``has_labels`` False)."""
    return getattr(comp, "has_labels", True)


#: Comparisons kept in memory (least recently used ones are dropped first).
MAX_COMPARISONS = 6


def _ident(comp: Comparison) -> tuple:
    """What a cached result of a comparison depends on: its content key, display names and churn floor.

    The content key is that of old, new and the data; a reference adds the churn floor
    (and its report keys), so it is part of the identity too.
    """
    floor = (
        getattr(comp, "churn_floor", None) if getattr(comp, "has_labels", True) else getattr(comp, "reference", None)
    )
    return (comp.key or id(comp), comp.old_name, comp.new_name, repr(floor), getattr(comp, "has_labels", True))


_HASH = {Comparison: _ident, UnlabelledComparison: _ident}


def _stat(path: str | None) -> tuple:
    if path is None:
        return ()
    if is_glob(path):  # shards named by a pattern: each match
        return (path, tuple(_stat(f) for f in sorted(glob.glob(path, recursive=True))))
    p = Path(path)
    if p.is_dir():
        rows = []
        for dirpath, _dirs, files in os.walk(p):
            for f in files:
                s = os.stat(os.path.join(dirpath, f))
                rows.append((os.path.relpath(os.path.join(dirpath, f), p), s.st_size, s.st_mtime_ns))
        return (str(p), tuple(sorted(rows)))
    s = p.stat()
    return (str(p), s.st_size, s.st_mtime_ns)


def fingerprint(spec: Spec) -> tuple:
    """Cheap identity of a spec's files (paths, sizes, modification times).

    Raises
    ------
    InputError
        A file is missing or cannot be read.
    """
    for p in (spec.old, spec.new, spec.reference):
        if p is not None and not os.path.exists(p) and not is_glob(p):
            raise InputError(p, "no such file")
    try:
        return (_stat(spec.old), _stat(spec.new), _stat(spec.data), _stat(spec.reference))
    except OSError as e:
        raise InputError(spec.data, f"cannot be read ({e.strerror})") from None


@st.cache_resource(show_spinner=False)
def _jobs() -> ComparisonJobs:
    """The server's comparison jobs (one registry per server; ``st.cache_resource.clear()`` empties it)."""
    return ComparisonJobs(max_finished=MAX_COMPARISONS)


def _compute(spec: Spec, fp: tuple) -> Callable[[StageProgress], AnyComparison]:
    def run(progress: StageProgress) -> AnyComparison:
        # large tables are streamed: every flipped sample then goes to a file in the cache (the grid's pages)
        return compare_sources(
            spec.old,
            spec.new,
            spec.data,
            progress=progress,
            old_name=Path(spec.display_name(spec.old)).name,
            new_name=Path(spec.display_name(spec.new)).name,
            flip_ids_path=cached_flip_ids_path(repr(spec), repr(fp)),
            reference=spec.reference,
            reference_name=spec.reference and Path(spec.display_name(spec.reference)).name,
            # the app cannot take a flag: it compares the shared ids and says so on every page
            allow_missing=True,
        )

    return run


def comparison_job(spec: Spec, fp: tuple | None = None) -> Job[AnyComparison]:
    """The server's job computing ``spec`` (started in a background thread if it is new).

    One job per (spec, file fingerprint) and server: every session asking for the same
    comparison gets the same job, running or finished. A page waits for it
    (:func:`graceful_ui.widgets.compute`); leaving the page does not stop it.

    Raises
    ------
    InputError
        A file of the spec is missing (:func:`fingerprint`).
    """
    fp = fingerprint(spec) if fp is None else fp
    return _jobs().start((spec, fp), _compute(spec, fp))


def forget_comparison(spec: Spec, fp: tuple) -> None:
    """Drop a finished (e.g. failed) comparison, so that the next request computes it again."""
    _jobs().discard((spec, fp))


def load_comparison(spec: Spec, fp: tuple | None = None) -> AnyComparison:
    """The comparison of ``spec``, computed once per (spec, file fingerprint) and server (blocking).

    When no job has it yet, it is computed in the calling thread; otherwise this waits for
    the job that has it (another session's, or a page's background job).

    Parameters
    ----------
    spec : Spec
        What to compare.
    fp : tuple, optional
        :func:`fingerprint` of the spec, when the caller already took it.

    Raises
    ------
    InputError
        Any problem with the files (the path is the server path; see
        :func:`graceful_ui.spec.user_message` for the user's name).
    """
    fp = fingerprint(spec) if fp is None else fp
    job, new = _jobs().get_or_create((spec, fp), _compute(spec, fp))
    if new:
        job.run()
    job.wait()
    return job.result()


@st.cache_data(max_entries=2 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def report_json(comp: AnyComparison) -> bytes:
    """The CLI's JSON report (:meth:`Comparison.to_report`), serialised."""
    return json.dumps(comp.to_report(), indent=2).encode()


@st.cache_data(max_entries=2 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def samples_csv(comp: AnyComparison) -> bytes:
    """The per-sample table as CSV."""
    return comp.samples().to_csv(index=False).encode()


@st.cache_resource(max_entries=2 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def samples_table(comp: Comparison) -> pd.DataFrame:
    """:meth:`Comparison.samples`, built once per comparison and shared (pages only filter it)."""
    return comp.samples()


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=_HASH)
def grid_page(
    comp: Comparison,
    classes: tuple[str, ...],
    flip_types: tuple[str, ...],
    cell: tuple[str, str] | None,
    order: str,
    page: int,
    per_page: int,
    rows: np.ndarray | None = None,
) -> views.GridPage:
    """One page of the Flips grid (:func:`graceful_core.explore.selection.grid_page`: from the per-sample table, or
    read from the flip-id file of a streamed comparison); ``rows``: a regression slice's samples."""
    return views.grid_page(
        comp,
        classes=classes,
        flip_types=flip_types,
        old_pred=cell[0] if cell else None,
        new_pred=cell[1] if cell else None,
        order=order,
        page=page,
        per_page=per_page,
        samples=samples_table(comp) if comp.arrays is not None else None,
        rows=rows,
    )


@st.cache_resource(max_entries=2 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def probabilities(comp: Comparison) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both models' class probabilities (:func:`graceful_core.explore.on_demand.class_probabilities`)."""
    return lazy.class_probabilities(comp)


@st.cache_resource(max_entries=2 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def projection(comp: Comparison, kind: str, max_points: int | None = None) -> ProjectionResult:
    """The 2-D layout of both embeddings (:func:`graceful_core.explore.on_demand.projection`), at most ``max_points`` points,
    with a progress bar while UMAP is fitted."""
    bar, cb = progress_bar("Fitting the map (UMAP)")
    try:
        return lazy.projection(comp, kind, max_points, progress=cb)
    finally:
        bar.empty()


@st.cache_resource(max_entries=4 * MAX_COMPARISONS, show_spinner=False, hash_funcs=_HASH)
def embedding_figure(
    comp: Comparison, kind: str, max_points: int | None, colour_by: str, lines: bool, _proj: ProjectionResult
) -> go.Figure:
    """The Embeddings page's map of ``_proj`` (:func:`projection` of ``comp``, ``kind``, ``max_points``), built once
    per choice and shared: building the figure of all 10,000 images of the Fashion sample takes most of a second,
    which a page switch back to the map would pay each time. Nothing downstream changes the figure."""
    clustering = comp.regression_slices.clustering if comp.regression_slices is not None else None
    names = {c.cluster: c.title for c in clustering.clusters} if clustering is not None else None
    samples = samples_table(comp)
    if kind == "joint":
        return joint_embedding_figure(_proj, samples, colour_by, lines, cluster_names=names)
    return side_by_side_embedding_figure(_proj, samples, colour_by, cluster_names=names)


@st.cache_data(max_entries=512, show_spinner=False, hash_funcs=_HASH)
def neighbours(comp: Comparison, row: int, k: int = 6) -> lazy.Neighbours:
    """Same-class nearest neighbours of one sample (:func:`graceful_core.explore.on_demand.neighbours`)."""
    return lazy.neighbours(comp, row, k)


@st.cache_data(max_entries=4096, show_spinner=False, hash_funcs=_HASH)
def image_png(comp: Comparison, sample_id: str, size: int, frame: str | None = None) -> bytes | None:
    """PNG bytes of one sample upscaled to ``size`` px, optionally framed in a colour, or None without images."""
    return thumbnail_png(comp.dataset, sample_id, size, frame)


def _dataset_ident(ds: ImageDataset) -> str:
    return ds.content_hash()


@st.cache_resource(
    max_entries=8,
    show_spinner="Comparing the set of models (or waiting for another session that is computing the same set)...",
    hash_funcs={ImageDataset: _dataset_ident},
)
def _model_set(model_key: tuple, dataset: ImageDataset) -> tuple[ModelSet, SourcesReport]:
    # bundled models whose outputs on these images are on record need not run: their tables are read
    sources, report = recorded_sources(
        [p for p, _sha, _name in model_key], dataset, [s.predictions_dir for s in bundled_samples(sample_data_dir())]
    )
    bar, cb = progress_bar("Running the models")
    try:
        ms = model_matrix_report(sources, dataset=dataset, progress=cb, names=[name for _p, _sha, name in model_key])
        return ms, report
    finally:
        bar.empty()


def model_set(paths: list[str], dataset: ImageDataset, names: list[str] | None = None) -> ModelSet:
    """The model set of ``paths`` (in lineage order) on ``dataset``, once per (model contents, order, names, data).

    ``names`` are the models' names in the set (default: the file names).
    """
    return model_set_and_sources(paths, dataset, names)[0]


def model_set_and_sources(
    paths: list[str], dataset: ImageDataset, names: list[str] | None = None
) -> tuple[ModelSet, SourcesReport]:
    """:func:`model_set` and which models' outputs were read from the bundled predictions tables
    (:func:`graceful_core.comparing.bundled_predictions.recorded_sources`) instead of running."""
    names = names or [Path(p).name for p in paths]
    return _model_set(tuple((p, file_sha256(p), n) for p, n in zip(paths, names)), dataset)
