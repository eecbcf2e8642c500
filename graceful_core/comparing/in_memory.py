"""A notebook's objects as predictions: models as modules or arrays, data as tensors, datasets or loaders.

:func:`side_of` classifies each side of a comparison (a model file or predictions table, a
``torch.nn.Module``, or an array of logits / class predictions); :func:`data_source`
classifies the data (a dataset path, ``(x, labels)``, a ``Dataset`` or a ``DataLoader``);
:func:`predictions_of` runs a side over the data (modules in batches, in the data's order)
and returns :class:`~graceful_core.types.Predictions`, which
:func:`graceful_core.comparing.predictions.compare_predictions` compares like any other.
Used by :func:`graceful_core.compare` (:mod:`graceful_core.api`) and by
:class:`graceful_core.FlipMonitor`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np

from graceful_core.comparing.options import RunKeywords, run_options
from graceful_core.comparing.sources import old_head, predictions_for
from graceful_core.errors import InputError, nonfinite_where
from graceful_core.inference import predict
from graceful_core.io.datasets import align_classes, load_dataset
from graceful_core.io.tables import is_glob
from graceful_core.metrics.confidence import argmax_lowest
from graceful_core.models.devices import resolve_device
from graceful_core.models.info import info_from_mapping
from graceful_core.models.outputs import checked_embedding
from graceful_core.types import ModelInfo, Predictions
from graceful_core.vocabulary import StageProgress


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Side:
    """One side of a comparison, classified.

    ``kind`` is ``"path"`` (model file or predictions table), ``"module"`` (an
    ``nn.Module``) or ``"array"`` (logits ``[N, K]`` or predictions ``[N]``, as float32 /
    int64 NumPy); ``role`` is ``"old"`` or ``"new"`` (named in errors).
    """

    role: str
    kind: str
    value: Any
    name: str


def _is_module(x: Any) -> bool:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a requirement
        return False
    return isinstance(x, nn.Module)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def side_of(value: Any, role: str, name: str | None = None) -> Side:
    """Classify ``value`` (path, module or array) as one side of a comparison.

    Raises
    ------
    InputError
        A path that does not exist, an array that is neither ``[N, K]`` finite scores nor
        ``[N]`` whole-number predictions, or a value of another type (named by ``role``).
    """
    if isinstance(value, (str, os.PathLike)):
        if not os.path.exists(value) and not is_glob(value):  # a glob of shards: its matches are checked when read
            raise InputError(os.fspath(value), "no such file")
        return Side(role, "path", os.fspath(value), name or Path(value).name)
    if _is_module(value):
        return Side(role, "module", value, name or type(value).__name__)
    if isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__") or hasattr(value, "detach"):
        arr = _to_numpy(value)
        whole = arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and bool(np.all(np.mod(arr, 1) == 0)))
        if arr.ndim == 2 and arr.dtype.kind in "fiu":
            arr = arr.astype(np.float32)
            if arr.shape[1] < 1:
                raise InputError(role, f"logits must be [N, K] with K >= 1, got shape {list(arr.shape)}")
            if not np.isfinite(arr).all():
                raise InputError(
                    role,
                    f"logits must be finite numbers, but there is {nonfinite_where(arr)}: fix or "
                    "drop those samples before comparing",
                )
        elif arr.ndim == 1 and whole:
            arr = arr.astype(np.int64)
            if arr.size and arr.min() < 0:
                raise InputError(role, "class predictions must be indices >= 0")
        else:
            raise InputError(
                role,
                f"expected logits [N, K] or class predictions [N], got an array of shape "
                f"{list(arr.shape)} and dtype {arr.dtype}",
            )
        return Side(role, "array", arr, name or role)
    raise InputError(
        role,
        f"expected a model file or table path, a torch.nn.Module, or an array of logits or "
        f"predictions; got {type(value).__name__}",
    )


@dataclass(frozen=True)
class DataSource:
    """The samples, classified: ``kind`` is ``"none"``, ``"path"`` (an image dataset on disk;
    ``dataset`` is the loaded :class:`~graceful_core.io.datasets.ImageDataset`), ``"tensors"``
    (``x`` and ``labels``) or ``"loader"`` (an iterable of ``(x, y)`` batches)."""

    kind: str
    dataset: Any = None
    x: Any = None
    labels: np.ndarray | None = None
    loader: Iterable | None = None
    path: str | None = None
    reordered: bool = False
    """True when the user's DataLoader was shuffled and is read in dataset order instead."""


def _is_dataloader(x: Any) -> bool:
    from torch.utils.data import DataLoader

    return isinstance(x, DataLoader)


def _is_torch_dataset(x: Any) -> bool:
    from torch.utils.data import Dataset

    return isinstance(x, Dataset)


def data_source(data: Any, batch_size: int = 256) -> DataSource:
    """Classify ``data`` (see the module docstring).

    Raises
    ------
    InputError
        A dataset path that cannot be loaded (naming it), a tuple that is not
        ``(x, labels)`` of equal length, or another type.
    """
    if data is None:
        return DataSource("none")
    if isinstance(data, (str, os.PathLike)):
        return DataSource("path", dataset=load_dataset(data), path=os.fspath(data))
    if _is_dataloader(data):
        ordered = in_dataset_order(data)
        return DataSource("loader", loader=ordered, reordered=ordered is not data)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError("data", f"a tuple must be (x, labels), got {len(data)} items")
        x, labels = data
        y = _to_numpy(labels)
        if y.ndim != 1:
            raise InputError("data", f"labels must be one-dimensional [N], got shape {list(y.shape)}")
        if x is not None and len(x) != len(y):
            raise InputError("data", f"x has {len(x)} samples but labels has {len(y)}")
        return DataSource("tensors", x=x, labels=y)
    if _is_torch_dataset(data):
        from torch.utils.data import DataLoader

        return DataSource("loader", loader=DataLoader(data, batch_size=batch_size, shuffle=False))
    raise InputError(
        "data",
        f"expected a dataset path, a tuple (x, labels), a torch Dataset or a DataLoader; got {type(data).__name__}",
    )


def in_dataset_order(loader: Any) -> Any:
    """``loader`` itself when it yields its dataset in index order, else a DataLoader that does.

    Sample ids of a DataLoader are the positions of its samples; they are the dataset's
    indices (``flips()`` and the reports name the right images) only when it is read in
    order. A shuffled loader is therefore re-read unshuffled (same dataset, batch size,
    collate function and workers): both models still see every sample once, so the counts
    are those of the shuffled run. A loader with another sampler or a batch sampler of its
    own is refused: its order is not the dataset's and cannot be recovered.

    Raises
    ------
    InputError
        A sampler other than sequential or random order (e.g. a subset or weighted one).
    """
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler

    if isinstance(loader.dataset, IterableDataset):
        return loader  # no indices: positions are all there is
    sampler = loader.sampler
    if (
        isinstance(sampler, SequentialSampler)
        and isinstance(loader.batch_sampler, BatchSampler)
        and not loader.drop_last
    ):
        return loader
    if (
        isinstance(sampler, RandomSampler | SequentialSampler)
        and not getattr(sampler, "replacement", False)
        and getattr(sampler, "_num_samples", None) in (None, len(loader.dataset))
        and isinstance(loader.batch_sampler, BatchSampler)
    ):
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size or 1,
            shuffle=False,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn,
            timeout=loader.timeout,
        )
    raise InputError(
        "data",
        f"the DataLoader's sampler ({type(sampler).__name__}) reads its dataset in an order graceful "
        "cannot map back to dataset indices, so flips could name the wrong samples: pass a "
        "DataLoader with shuffle=False (or the Dataset itself)",
    )


def _is_shuffled(loader: Any) -> bool:
    from torch.utils.data import RandomSampler

    return isinstance(getattr(loader, "sampler", None), RandomSampler)


# --------------------------------------------------------------------------- running
def _module_info(module: Any, info: ModelInfo | dict | None, role: str) -> ModelInfo:
    found = info if info is not None else getattr(module, "graceful_info", None)
    if found is None:
        raise InputError(
            role,
            "a module run on a dataset path needs its preprocessing and class names: pass "
            "info=ModelInfo(...) (or a dict of the graceful.json fields), or set "
            "module.graceful_info",
        )
    return info_from_mapping(found, role)


def _batches(src: DataSource, batch_size: int) -> Iterable[tuple[Any, np.ndarray]]:
    """``(x batch, labels batch)`` pairs of in-memory data, in order."""
    if src.kind == "tensors":
        labels = src.labels
        assert labels is not None  # data_source gives (x, labels) data its labels
        n = len(labels)
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield (None if src.x is None else src.x[start:stop]), labels[start:stop]
        return
    assert src.loader is not None  # the other kind, "loader", always has its loader
    for item in src.loader:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputError("data", "the DataLoader must yield (x, y) batches")
        yield item[0], _to_numpy(item[1]).reshape(-1)


def _as_input(x: Any, device: Any):
    import torch

    if x is None:
        raise InputError("data", "x is None, but a module needs inputs: give data=(x, labels) with a tensor x")
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device)


def _input_device(module: Any, device: str):
    """Where a module's inputs go: ``auto`` = the module's own device; else the resolved device."""
    import torch

    from graceful_core.models.module import module_device  # imports torch: only when a module runs

    if device == "auto":
        own = module_device(module)
        return own if own is not None else torch.device(resolve_device("auto"))
    return torch.device(resolve_device(device))


def _run_in_memory(
    sides: Sequence[Side], src: DataSource, batch_size: int, device: str, progress: StageProgress | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], np.ndarray]:
    """One pass over in-memory data, running every module side on each batch.

    Returns ``{role: (logits [N, K], embedding or None)}`` for module sides and the labels.
    """
    from graceful_core.models.module import run_module  # imports torch: only when a module runs

    modules = [s for s in sides if s.kind == "module"]
    devices_ = {s.role: _input_device(s.value, device) for s in modules}
    parts: dict[str, list] = {s.role: [] for s in modules}
    embs: dict[str, list] = {s.role: [] for s in modules}
    labels: list[np.ndarray] = []
    total = len(src.labels) if src.labels is not None else _loader_len(src.loader)
    done = 0
    stage = " and ".join(s.name for s in modules) or "labels"
    for xb, yb in _batches(src, batch_size):
        labels.append(np.asarray(yb))
        for s in modules:
            lo, em = run_module(s.value, _as_input(xb, devices_[s.role]))
            parts[s.role].append(lo)
            if em is not None:
                embs[s.role].append(em)
        done += len(yb)
        if progress is not None:
            progress(stage, done, total or done)
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    out = {}
    for s in modules:
        if not parts[s.role]:
            raise InputError("data", "no samples")
        lo = np.concatenate(parts[s.role])
        em = np.concatenate(embs[s.role]) if embs[s.role] and len(embs[s.role]) == len(parts[s.role]) else None
        out[s.role] = (lo, em)
    return out, y


def _loader_len(loader: Any) -> int:
    try:
        return len(loader.dataset)  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return 0


def _class_names(classes: Sequence[str] | None, k: int, role: str, classes_from: str | None = None) -> list[str]:
    """The class names for ``k`` logits; ``classes_from`` says where ``classes`` came from when not classes=."""
    if classes is None:
        return [str(i) for i in range(k)]
    names = [str(c) for c in classes]
    if len(names) != k:
        if classes_from is not None:
            raise InputError(
                role,
                f"gives {k} logits per sample but {classes_from} has {len(names)} classes "
                f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}): the model must score "
                "the same classes in the same order",
            )
        raise InputError(role, f"has {k} classes but classes= lists {len(names)} names")
    if len(set(names)) != len(names):
        raise InputError("classes", "class names must be unique")
    return names


def _label_indices(y: np.ndarray, names: list[str]) -> np.ndarray:
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        out = y.astype(np.int64)
    else:
        pos = {c: i for i, c in enumerate(names)}
        bad = [v for v in map(str, y) if v not in pos]
        if bad:
            raise InputError("data", f"label {bad[0]!r:.40} is not among the classes {names[:10]}")
        out = np.array([pos[str(v)] for v in y], dtype=np.int64)
    if out.size and (out.min() < 0 or out.max() >= len(names)):
        raise InputError(
            "data", f"labels must be class indices in [0, {len(names)}), got range [{int(out.min())}, {int(out.max())}]"
        )
    return out


def _predictions(
    role: str,
    name: str,
    ids: np.ndarray,
    labels: np.ndarray | None,
    classes: list[str],
    logits: np.ndarray | None,
    pred: np.ndarray | None,
    emb: np.ndarray | None,
    extra: dict | None = None,
) -> Predictions:
    n = len(ids)
    if logits is not None:
        if logits.shape[0] != n:
            raise InputError(role, f"has {logits.shape[0]} rows of logits for {n} samples")
        if logits.shape[1] != len(classes):
            raise InputError(role, f"has {logits.shape[1]} logits per sample but there are {len(classes)} classes")
        if not np.isfinite(logits).all():
            raise InputError(role, f"returns NaN or infinite logits: {nonfinite_where(logits, ids)}")
        pred = argmax_lowest(logits)
    elif pred is not None:
        if pred.shape[0] != n:
            raise InputError(role, f"has {pred.shape[0]} predictions for {n} samples")
        if pred.size and pred.max() >= len(classes):
            raise InputError(role, f"predicts class {int(pred.max())} but there are {len(classes)} classes")
    if emb is not None:
        emb = checked_embedding(emb, n, role, "embedding")
    return Predictions(
        ids=ids,
        pred=np.asarray(pred, dtype=np.int64),
        classes=list(classes),
        labels=labels,
        scores=None if logits is None else np.ascontiguousarray(logits, dtype=np.float32),
        score_kind=None if logits is None else "logits",
        embedding=emb,
        source=role,
        extra={"model_name": name, **(extra or {})},
    )


def predictions_of(
    side: Side,
    src: DataSource,
    *,
    classes: Sequence[str] | None = None,
    info: ModelInfo | dict | None = None,
    **run: Unpack[RunKeywords],
) -> Predictions:
    """Predictions of one side on a dataset path (``src.kind == "path"``).

    A path runs as on the command line; a module through
    :class:`~graceful_core.models.module.ModuleModel` (preprocessing from ``info``); an
    array is taken in the dataset's row order. ``run``: the run options
    (:class:`~graceful_core.comparing.options.RunOptions`; a module's inputs go to ``device``).
    """
    from graceful_core.models.module import ModuleModel  # imports torch: only when a module runs

    ds = src.dataset
    if side.kind == "path":
        return predictions_for(side.value, ds, classes=list(classes) if classes else None, **run)
    opts = run_options(**run)
    if side.kind == "module":
        model = ModuleModel(side.value, _module_info(side.value, info, side.role), device=opts.device)
        p = predict(model, ds, batch_size=opts.batch_size, progress=opts.stage(side.name), use_cache=False)
        p.source = side.role
        p.extra["model_name"] = side.name
        return p
    arr = side.value
    names = list(classes) if classes is not None else list(ds.classes)
    k = arr.shape[1] if arr.ndim == 2 else None
    if k is not None and k != len(names):
        raise InputError(
            side.role,
            f"has {k} logits per sample but the dataset {ds.source} has {len(names)} classes "
            "(pass classes= in the model's order)",
        )
    ds = align_classes(ds, names)
    if arr.shape[0] != len(ds):
        raise InputError(
            side.role,
            f"has {arr.shape[0]} rows but the dataset {ds.source} has {len(ds)} images "
            "(rows must follow the dataset's order)",
        )
    return _predictions(
        side.role,
        side.name,
        np.asarray(ds.ids, dtype=object),
        np.asarray(ds.labels),
        names,
        arr if arr.ndim == 2 else None,
        arr if arr.ndim == 1 else None,
        None,
        {"slices": ds.slices},
    )


def _in_memory_predictions(
    sides: Sequence[Side],
    src: DataSource,
    classes: Sequence[str] | None,
    batch_size: int,
    device: str,
    progress: StageProgress | None,
    ids: Sequence[str] | None = None,
    classes_from: str | None = None,
) -> list[Predictions]:
    if src.kind == "loader" and (src.reordered or _is_shuffled(src.loader)) and any(s.kind == "array" for s in sides):
        raise InputError(
            "data", "a shuffled DataLoader cannot be aligned with an array of predictions: use shuffle=False"
        )
    if src.kind == "tensors" and src.x is None and any(s.kind == "module" for s in sides):
        raise InputError("data", "x is None, but a module needs inputs: give data=(x, labels) with a tensor x")
    outs, y = _run_in_memory(sides, src, batch_size, device, progress)
    n = len(y)
    ks = [
        outs[s.role][0].shape[1] if s.kind == "module" else (s.value.shape[1] if s.value.ndim == 2 else None)
        for s in sides
    ]
    known = [k for k in ks if k is not None]
    if known and len(set(known)) > 1:
        raise InputError(sides[1].role, f"gives {known[-1]} logits per sample but {sides[0].role} gives {known[0]}")
    if known:
        k = known[0]
    elif classes is not None:
        k = len(classes)
    elif y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        # The labels define the classes; a prediction beyond them is refused below, not a new class.
        k = int(y.max(initial=0)) + 1
        for s in sides:
            if s.value.size and int(s.value.max()) >= k:
                raise InputError(
                    s.role,
                    f"predicts class {int(s.value.max())} but the labels use classes 0..{k - 1}: "
                    "if that class exists, pass classes=[...] with every class name",
                )
    else:
        raise InputError("classes", "the labels are class names: pass classes=[...] in the models' index order")
    names = _class_names(
        classes,
        k,
        sides[-1].role if classes_from else "classes" if classes is not None else sides[0].role,
        classes_from,
    )
    labels = _label_indices(y, names)
    if ids is None:
        ids = [str(i) for i in range(n)]
    elif len(ids) != n:
        raise InputError("ids", f"has {len(ids)} ids for {n} samples")
    ids_arr = np.array([str(i) for i in ids], dtype=object)
    if len(set(ids_arr.tolist())) != n:
        raise InputError("ids", "sample ids must be unique")
    preds = []
    for s in sides:
        if s.kind == "module":
            lo, em = outs[s.role]
            preds.append(_predictions(s.role, s.name, ids_arr, labels, names, lo, None, em))
        else:
            a = s.value
            if a.shape[0] != n:
                raise InputError(s.role, f"has {a.shape[0]} rows but the data has {n} samples")
            preds.append(
                _predictions(
                    s.role, s.name, ids_arr, labels, names, a if a.ndim == 2 else None, a if a.ndim == 1 else None, None
                )
            )
    return preds


def _old_head(old: Side, device: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The old side's classifier ``head`` (embeddings -> logits) as a NumPy function, or None.

    A model file's exported ``head`` (:func:`graceful_core.comparing.sources.old_head`) or a module's
    ``head`` method; :func:`~graceful_core.comparing.predictions.compare_predictions` measures its
    accuracy on the new embeddings (the BCT influence check).
    """
    if old.kind == "path":
        return old_head(old.value)
    if old.kind != "module" or not hasattr(old.value, "head"):
        return None
    import torch

    from graceful_core.models.module import eval_mode  # imports torch: only when a module runs

    module = old.value
    dev = _input_device(module, device)

    def head(embedding: np.ndarray) -> np.ndarray:
        with eval_mode(module), torch.inference_mode():
            logits = module.head(torch.from_numpy(np.ascontiguousarray(embedding)).to(dev))
        return logits.detach().cpu().float().numpy()

    return head
