"""Batched inference of a model over an image dataset, with an on-disk cache.

``predict(model, dataset)`` decodes each image (Pillow, bomb guard on), applies the
model's preprocessing (:func:`graceful_core.transforms.preprocess`), runs the model in
batches under ``torch.inference_mode()`` and returns :class:`~graceful_core.types.Predictions`.

Results are cached by the SHA-256 of the model file and the dataset's content hash
(:mod:`graceful_core.cache`), so a second run on the same inputs does not recompute.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from graceful_core import cache
from graceful_core.io.datasets import ImageDataset, align_classes
from graceful_core.io.hashing import file_sha256
from graceful_core.metrics.confidence import argmax_lowest
from graceful_core.transforms import preprocess
from graceful_core.types import Model, Predictions

#: ``progress(done, total)`` is called after every batch (and once with ``done == total``).
ProgressCallback = Callable[[int, int], None]

_CACHE_KIND = "predictions"


def prediction_cache_key(model: Model, dataset: ImageDataset) -> str:
    """The cache key of ``predict(model, dataset)``: model file SHA-256, dataset content and row order.

    The cached arrays are in the dataset's row order, while its content hash does not
    depend on that order (a folder and a reordered manifest of the same images hash
    alike), so the ids in row order are part of the key.
    """
    return prediction_cache_key_of(file_sha256(model.path), list(model.info.classes), dataset)


def prediction_cache_key_of(model_sha256: str, classes: Sequence[str], dataset: ImageDataset) -> str:
    """:func:`prediction_cache_key` from the model file's SHA-256 and class list, without loading the model."""
    order = hashlib.sha256("\x00".join(map(str, dataset.ids)).encode()).hexdigest()
    return cache.make_key("predict", model_sha256, dataset.content_hash(), order, ",".join(classes))


#: Mean file size from which decoding in threads pays off (Pillow releases the GIL while
#: it decompresses; for tiny files the per-image Python overhead dominates and threads
#: only contend for the GIL: 8x8 PNGs decode 2.5x slower with 2 threads than with 1).
THREADED_DECODE_MIN_BYTES = 16_384


def default_workers(dataset: ImageDataset, probe: int = 32) -> int:
    """Decoding threads for ``dataset``: 1 for small files, else ``min(4, cpu_count)``.

    Looks at the sizes of the first ``probe`` files only.
    """
    files = list(getattr(dataset, "files", [])[:probe])
    sizes = [os.path.getsize(f) for f in files if os.path.isfile(f)]
    if not sizes or sum(sizes) / len(sizes) < THREADED_DECODE_MIN_BYTES:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _batch_tensor(model: Model, dataset: ImageDataset, idx: range, pool: ThreadPoolExecutor | None) -> np.ndarray:
    def one(i: int) -> np.ndarray:
        return preprocess(dataset.load_image(i), model.info)

    arrays = list(pool.map(one, idx)) if pool is not None else [one(i) for i in idx]
    return np.stack(arrays).astype(np.float32, copy=False)


def predict(
    model: Model,
    dataset: ImageDataset,
    *,
    batch_size: int = 256,
    progress: ProgressCallback | None = None,
    use_cache: bool = True,
    workers: int | None = None,
) -> Predictions:
    """Run ``model`` over every image of ``dataset``.

    Parameters
    ----------
    model : Model
        A loaded model (TorchScript or ONNX).
    dataset : ImageDataset
        The images; its class names must all be among the model's classes
        (labels are re-indexed onto the model's class list).
    batch_size : int
        Images per forward pass.
    progress : callable, optional
        ``progress(done, total)`` after each batch.
    use_cache : bool
        Read and write the on-disk cache (keyed by content hashes).
    workers : int, optional
        Threads that decode images (default: :func:`default_workers`).

    Returns
    -------
    Predictions
        ``pred`` is the argmax of the logits, ties to the lowest class index;
        ``scores`` are the logits; ``embedding`` is set when the model has one.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset = align_classes(dataset, list(model.info.classes))
    n = len(dataset)
    key = prediction_cache_key(model, dataset) if use_cache else ""
    if use_cache:
        hit = cache.load_arrays(_CACHE_KIND, key)
        if hit is not None and _cache_entry_fits(hit, n, len(model.info.classes)):
            if progress:
                progress(n, n)
            return _to_predictions(model, dataset, hit["logits"], hit.get("embedding"))

    logits_parts: list[np.ndarray] = []
    emb_parts: list[np.ndarray] = []
    workers = workers if workers is not None else default_workers(dataset)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        if progress:
            progress(0, n)
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            logits, emb = model.run(_batch_tensor(model, dataset, idx, pool))
            logits_parts.append(np.asarray(logits, dtype=np.float32))
            if emb is not None:
                emb_parts.append(np.asarray(emb, dtype=np.float32))
            if progress:
                progress(idx.stop, n)
    finally:
        if pool is not None:
            pool.shutdown()
    k = len(model.info.classes)
    logits = np.concatenate(logits_parts) if logits_parts else np.zeros((0, k), np.float32)
    embedding = np.concatenate(emb_parts) if emb_parts else None
    if use_cache:
        arrays = {"logits": logits}
        if embedding is not None:
            arrays["embedding"] = embedding
        cache.save_arrays(_CACHE_KIND, key, arrays)
    return _to_predictions(model, dataset, logits, embedding)


def cached_predictions(
    model_sha256: str, classes: Sequence[str], dataset: ImageDataset
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The cached ``(logits, embedding)`` of the model file with this SHA-256 and class list on ``dataset``
    (in its row order), or None; ``dataset``'s classes must already be ``classes`` (:func:`align_classes`)."""
    hit = cache.load_arrays(_CACHE_KIND, prediction_cache_key_of(model_sha256, classes, dataset))
    if hit is None or not _cache_entry_fits(hit, len(dataset), len(classes)):
        return None
    return hit["logits"], hit.get("embedding")


def cache_predictions(
    model_sha256: str,
    classes: Sequence[str],
    dataset: ImageDataset,
    logits: np.ndarray,
    embedding: np.ndarray | None,
) -> None:
    """Store outputs of a model file obtained elsewhere as :func:`predict`'s own cache entry.

    For outputs whose origin is on record (the bundled predictions tables,
    :mod:`graceful_core.comparing.bundled_predictions`): the file's SHA-256 and class list
    make the same key as :func:`prediction_cache_key` of the loaded model. ``logits``
    ``[N, K]`` and ``embedding`` ``[N, D]`` are in ``dataset``'s row order.

    Raises
    ------
    ValueError
        The arrays do not fit ``len(dataset)`` x ``len(classes)`` or are not finite.
    """
    arrays = {"logits": np.ascontiguousarray(logits, dtype=np.float32)}
    if embedding is not None:
        arrays["embedding"] = np.ascontiguousarray(embedding, dtype=np.float32)
    if not _cache_entry_fits(arrays, len(dataset), len(classes)):
        raise ValueError(
            f"outputs of shape {arrays['logits'].shape} do not fit {len(dataset)} images x {len(classes)} classes "
            "(or are not finite)"
        )
    cache.save_arrays(_CACHE_KIND, prediction_cache_key_of(model_sha256, classes, dataset), arrays)


def _cache_entry_fits(arrays: dict[str, np.ndarray], n: int, k: int) -> bool:
    logits = arrays.get("logits")
    if logits is None or logits.shape != (n, k) or logits.dtype != np.float32:
        return False
    if not np.isfinite(logits).all():
        return False
    emb = arrays.get("embedding")
    return emb is None or (emb.ndim == 2 and emb.shape[0] == n and emb.dtype == np.float32)


def _to_predictions(
    model: Model, dataset: ImageDataset, logits: np.ndarray, embedding: np.ndarray | None
) -> Predictions:
    return Predictions(
        ids=np.asarray(dataset.ids, dtype=object),
        pred=argmax_lowest(logits),
        classes=list(model.info.classes),
        labels=np.asarray(dataset.labels, dtype=np.int64),
        scores=logits,
        score_kind="logits",
        embedding=embedding,
        source=model.path,
        extra={"model_name": model.info.name, "slices": dataset.slices},
    )


def predict_together(
    models: Sequence[Model],
    dataset: ImageDataset,
    *,
    batch_size: int = 256,
    progress: Sequence[ProgressCallback | None] | None = None,
    use_cache: bool = True,
    workers: int | None = None,
) -> list[Predictions]:
    """:func:`predict` for several models over the same images, decoding each image once.

    Decoding dominates inference of small models on PNGs, so the images of a batch are
    decoded once and every model still to run (not found in the cache) gets its own
    preprocessing of them (models with the same input size, mean and std share it).
    Each model's result, and its cache entry, are exactly what :func:`predict` gives.

    Parameters
    ----------
    models : sequence of Model
    dataset : ImageDataset
    batch_size, use_cache, workers
        As for :func:`predict`.
    progress : sequence of callable, optional
        One ``progress(done, total)`` (or None) per model.

    Returns
    -------
    list of Predictions
        One per model, in the order given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    progress = list(progress) if progress is not None else [None] * len(models)
    if len(progress) != len(models):
        raise ValueError(f"one progress callback per model: {len(models)} models, {len(progress)} callbacks")
    aligned = [align_classes(dataset, list(m.info.classes)) for m in models]  # a class mismatch fails first
    n = len(dataset)
    out: list[Predictions | None] = [None] * len(models)
    keys = [prediction_cache_key(m, d) if use_cache else "" for m, d in zip(models, aligned)]
    todo = []
    for j, (m, d) in enumerate(zip(models, aligned)):
        hit = cache.load_arrays(_CACHE_KIND, keys[j]) if use_cache else None
        if hit is not None and _cache_entry_fits(hit, n, len(m.info.classes)):
            report = progress[j]
            if report:
                report(n, n)
            out[j] = _to_predictions(m, d, hit["logits"], hit.get("embedding"))
        else:
            todo.append(j)
    if len(todo) == 1:
        j = todo[0]
        out[j] = predict(
            models[j], dataset, batch_size=batch_size, progress=progress[j], use_cache=use_cache, workers=workers
        )
    elif todo:
        _run_together(
            [models[j] for j in todo],
            [aligned[j] for j in todo],
            [keys[j] for j in todo],
            [progress[j] for j in todo],
            batch_size=batch_size,
            use_cache=use_cache,
            workers=workers,
            out=out,
            slots=todo,
        )
    return [p for p in out if p is not None]


def _run_together(
    models: list[Model],
    datasets: list[ImageDataset],
    keys: list[str],
    progress: list[ProgressCallback | None],
    *,
    batch_size: int,
    use_cache: bool,
    workers: int | None,
    out: list[Predictions | None],
    slots: list[int],
) -> None:
    dataset = datasets[0]
    n = len(dataset)
    groups: dict[tuple, list[int]] = {}
    for j, m in enumerate(models):
        sig = (tuple(m.info.input_size), tuple(m.info.mean), tuple(m.info.std))
        groups.setdefault(sig, []).append(j)
    logits_parts: list[list[np.ndarray]] = [[] for _ in models]
    emb_parts: list[list[np.ndarray]] = [[] for _ in models]
    workers = workers if workers is not None else default_workers(dataset)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for cb in progress:
            if cb:
                cb(0, n)
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            images = (
                list(pool.map(dataset.load_image, idx)) if pool is not None else [dataset.load_image(i) for i in idx]
            )
            for members in groups.values():
                info = models[members[0]].info
                batch = np.stack([preprocess(img, info) for img in images]).astype(np.float32, copy=False)
                for j in members:
                    logits, emb = models[j].run(batch)
                    logits_parts[j].append(np.asarray(logits, dtype=np.float32))
                    if emb is not None:
                        emb_parts[j].append(np.asarray(emb, dtype=np.float32))
            for cb in progress:
                if cb:
                    cb(idx.stop, n)
    finally:
        if pool is not None:
            pool.shutdown()
    for j, m in enumerate(models):
        k = len(m.info.classes)
        logits = np.concatenate(logits_parts[j]) if logits_parts[j] else np.zeros((0, k), np.float32)
        embedding = np.concatenate(emb_parts[j]) if emb_parts[j] else None
        if use_cache:
            arrays = {"logits": logits}
            if embedding is not None:
                arrays["embedding"] = embedding
            cache.save_arrays(_CACHE_KIND, keys[j], arrays)
        out[slots[j]] = _to_predictions(m, datasets[j], logits, embedding)
