"""Heavy results, computed once per content hash and kept across reruns and sessions.

``st.cache_resource`` holds one :class:`ComparisonStore` per server process. It maps
a spec's *fingerprint* (paths, sizes, mtimes: cheap to take on every rerun) to the
content key of its inputs, and the content key (SHA-256 of both model files and of the
dataset's content, :func:`graceful_core.sources.comparison_key`) to the finished
:class:`~graceful_core.comparison.Comparison` and its derived artefacts (report JSON,
CSV, probabilities, thumbnails). Inference itself is also cached on disk by the core,
so a fresh server on a warm disk cache does not run the models again.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from graceful_core.comparison import Comparison
from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.sources import compare_sources, comparison_key, predictions_for
from graceful_core.views import probabilities_for
from graceful_ui.inputs import Spec

Progress = Callable[[str, int, int], None]
MAX_COMPARISONS = 6
#: The progress stage shown while another session computes the same result.
WAITING_FOR_OTHER_SESSION = "another session is computing the same result; waiting for it"
#: Keep UMAP layouts on disk too (tests that swap the projection off turn this off).
PROJECTION_DISK_CACHE = True


class ComparisonStore:
    """Thread-safe, bounded (LRU) map: content key -> comparison and derived artefacts.

    :meth:`computing` gives one lock per key, so two sessions asking for the same result
    at once compute it once: the second waits (and is told so) and then finds it stored.
    """

    def __init__(self, max_items: int = MAX_COMPARISONS) -> None:
        self.lock = threading.RLock()
        self.max_items = max_items
        self.keys: dict[tuple, str] = {}
        self.items: OrderedDict[Hashable, dict] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    @contextmanager
    def computing(self, key: Hashable, on_wait: Callable[[], None] | None = None):
        """Hold ``key``'s lock; ``on_wait()`` first if another thread is computing ``key``."""
        with self.lock:
            if len(self._key_locks) > 4 * self.max_items:  # forget idle locks of old keys
                self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if not key_lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            key_lock.acquire()
        try:
            yield
        finally:
            key_lock.release()

    def get(self, key: Hashable) -> dict | None:
        with self.lock:
            item = self.items.get(key)
            if item is not None:
                self.items.move_to_end(key)
            return item

    def put(self, key: Hashable, item: dict) -> None:
        with self.lock:
            self.items[key] = item
            self.items.move_to_end(key)
            while len(self.items) > self.max_items:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def get_store() -> ComparisonStore:
    """The process-wide store (one per Streamlit server)."""
    return ComparisonStore()


@st.cache_resource(show_spinner=False)
def get_matrix_store() -> ComparisonStore:
    """The process-wide store of the Versions page's model-set reports."""
    return ComparisonStore(max_items=8)


def _stat(path: str | None) -> tuple:
    if path is None:
        return ()
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
    """Cheap identity of a spec's files (paths, sizes, modification times)."""
    return (_stat(spec.old), _stat(spec.new), _stat(spec.data))


def load_comparison(spec: Spec, progress: Progress | None = None) -> Comparison:
    """The comparison of ``spec``: from the store, or computed (with ``progress``) and stored.

    Raises
    ------
    InputError
        Any problem with the files (the path is the server path; see
        :func:`graceful_ui.inputs.user_message` for the user's name).
    """
    store = get_store()
    for p in (spec.old, spec.new):
        if not os.path.exists(p):
            raise InputError(p, "no such file")
    try:
        fp = fingerprint(spec)
    except OSError as e:
        raise InputError(spec.data, f"cannot be read ({e.strerror})") from None
    with store.lock:
        key = store.keys.get(fp)
        item = store.get(key) if key else None
    if item is not None:
        return item["comparison"]
    dataset = load_dataset(spec.data) if spec.data else None
    key = comparison_key(spec.old, spec.new, dataset)

    def on_wait() -> None:
        if progress is not None:
            progress(WAITING_FOR_OTHER_SESSION, 0, 0)

    with store.computing(key, on_wait):
        item = store.get(key)
        if item is None:
            comp = compare_sources(spec.old, spec.new, dataset=dataset, progress=progress)
            comp.old_name = Path(spec.display_name(spec.old)).name
            comp.new_name = Path(spec.display_name(spec.new)).name
            item = {"comparison": comp}
            store.put(key, item)
    with store.lock:
        store.keys[fp] = key
    return item["comparison"]


def _item(comp: Comparison) -> dict:
    item = get_store().get(comp.key)
    if item is None:  # evicted meanwhile: keep derived values on a throwaway dict
        item = {"comparison": comp}
    return item


def report_json(comp: Comparison) -> bytes:
    """The CLI's JSON report (``to_report()``), serialised once."""
    item = _item(comp)
    if "report" not in item:
        item["report"] = json.dumps(comp.to_report(), indent=2).encode()
    return item["report"]


def samples_csv(comp: Comparison) -> bytes:
    """The per-sample table as CSV, serialised once."""
    item = _item(comp)
    if "csv" not in item:
        item["csv"] = comp.samples().to_csv(index=False).encode()
    return item["csv"]


def samples_table(comp: Comparison):
    """:meth:`Comparison.samples`, built once per comparison."""
    item = _item(comp)
    if "samples" not in item:
        item["samples"] = comp.samples()
    return item["samples"]


def probabilities(comp: Comparison, spec: Spec) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both models' full class probabilities aligned to ``comp.ids`` (None without scores).

    The comparison keeps only per-sample confidences, so the predictions are loaded
    again; inference results come from the core's disk cache, not a new model run.
    """
    item = _item(comp)
    if "probs" not in item:
        ids = np.asarray(comp.ids).astype(str)
        out = []
        for src in (spec.old, spec.new):
            preds = predictions_for(src, comp.dataset, classes=list(comp.classes))
            out.append(probabilities_for(preds, ids, comp.classes))
        item["probs"] = tuple(out)
    return item["probs"]


def dataset_index(comp: Comparison) -> dict[str, int]:
    """Sample id -> index into ``comp.dataset`` (empty without a dataset)."""
    item = _item(comp)
    if "ds_index" not in item:
        ds = comp.dataset
        item["ds_index"] = {} if ds is None else {str(i): k for k, i in enumerate(ds.ids)}
    return item["ds_index"]


def upscale(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longer side is ``size`` px with nearest-neighbour (no smoothing)."""
    img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
    w, h = img.size
    f = size / max(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.NEAREST)


def image_png(comp: Comparison, sample_id: str, size: int) -> bytes | None:
    """PNG bytes of one sample upscaled to ``size`` px (cached), or None without images."""
    item = _item(comp)
    cache = item.setdefault("thumbs", {})
    k = (sample_id, size)
    if k not in cache:
        idx = dataset_index(comp).get(str(sample_id))
        if idx is None:
            return None
        try:
            img = comp.dataset.load_image(idx)
        except InputError:
            return None
        buf = io.BytesIO()
        upscale(img, size).save(buf, format="PNG")
        cache[k] = buf.getvalue()
    return cache[k]


def pixel_features(comp: Comparison, rows: np.ndarray, size: int = 16) -> np.ndarray:
    """Rows' images as flattened grey ``size``x``size`` vectors in [0, 1] (pixel neighbours).

    Returns an ``[n_samples, size*size]`` array filled for ``rows`` (cached per row).
    """
    item = _item(comp)
    feats = item.get("pixels")
    if feats is None:
        feats = item["pixels"] = np.full((comp.n_samples, size * size), np.nan, dtype=np.float32)
    idx = dataset_index(comp)
    ids = np.asarray(comp.ids).astype(str)
    for r in np.asarray(rows, dtype=np.int64):
        if np.isnan(feats[r, 0]):
            j = idx.get(ids[r])
            if j is None:
                feats[r] = 0.0
                continue
            img = comp.dataset.load_image(j).convert("L").resize((size, size), Image.Resampling.BILINEAR)
            feats[r] = np.asarray(img, dtype=np.float32).ravel() / 255.0
    return feats


def projection(comp: Comparison, kind: str):
    """The 2-D UMAP layout of both embeddings (``kind`` "joint" or "separate"), computed once.

    Also kept on disk under the comparison's content key, so a restarted server does
    not fit UMAP again.
    """
    from graceful_core import cache
    from graceful_core.projection import ProjectionResult, joint_umap, separate_umap

    if kind not in ("joint", "separate"):
        raise ValueError(f"kind must be 'joint' or 'separate', got {kind!r}")
    item = _item(comp)
    key = f"projection-{kind}"
    if key not in item:
        disk_key = cache.make_key("app-projection", kind, comp.key)
        use_disk = PROJECTION_DISK_CACHE and bool(comp.key)
        hit = cache.load_arrays("app-projection", disk_key) if use_disk else None
        if hit is not None and {"old_xy", "new_xy", "indices", "flags"} <= set(hit):
            item[key] = ProjectionResult(old_xy=hit["old_xy"], new_xy=hit["new_xy"], indices=hit["indices"],
                                         subsampled=bool(hit["flags"][0]), aligned=bool(hit["flags"][1]))
        else:
            fn = joint_umap if kind == "joint" else separate_umap
            res = fn(comp.old_embedding, comp.new_embedding)
            if use_disk:
                cache.save_arrays("app-projection", disk_key, {
                    "old_xy": res.old_xy, "new_xy": res.new_xy, "indices": res.indices,
                    "flags": np.array([res.subsampled, res.aligned])})
            item[key] = res
    return item[key]


def embedding_overlap(comp: Comparison) -> float:
    """Share of new embeddings whose nearest old embedding is the same image (nan if sizes differ)."""
    from graceful_core.metrics.retrieval import nearest_neighbour_overlap

    item = _item(comp)
    if "overlap" not in item:
        item["overlap"] = nearest_neighbour_overlap(comp.old_embedding, comp.new_embedding)
    return item["overlap"]


def framed_png(comp: Comparison, sample_id: str, size: int, colour: str) -> bytes | None:
    """A thumbnail with a coloured frame (e.g. green = right result, red = wrong), cached."""
    item = _item(comp)
    cache = item.setdefault("framed", {})
    k = (sample_id, size, colour)
    if k not in cache:
        raw = image_png(comp, sample_id, size - 8)
        if raw is None:
            return None
        from PIL import ImageOps

        img = Image.open(io.BytesIO(raw)).convert("RGB")
        buf = io.BytesIO()
        ImageOps.expand(img, border=4, fill=colour).save(buf, format="PNG")
        cache[k] = buf.getvalue()
    return cache[k]
