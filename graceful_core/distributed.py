"""Batch inference on a Ray cluster (Ray Data): ``predict MODEL --data DATA --out DIR --engine ray``.

The dataset is listed as :func:`~graceful_core.io.datasets.load_dataset` lists it (same
ids, labels and checks as the single-process :func:`graceful_core.inference.predict`),
handed to Ray Data as a table of (id, image file, label) split into blocks, and mapped
by a pool of actors (``map_batches`` with a class: each actor loads the model once, from
bytes shipped through Ray's object store, so workers need not see the model file). An
actor decodes its batch's images with graceful's own decoder and preprocessing, runs the
model, and returns the rows in the predictions-table format of ``docs/formats.md``, which Ray Data
writes as Parquet shards ``DIR/part-<i>.parquet`` (in the dataset's order, with the
class list in each file's metadata). ``compare`` reads such a folder as one table.

Where Ray runs: with ``RAY_ADDRESS`` set, on that cluster (the image files must be
readable at the same paths on its workers, e.g. a shared file system); otherwise on this
machine, started for the call (``ray.init(num_cpus=…, include_dashboard=False)``, object
store in ``/dev/shm``) and shut down afterwards. The local package is shipped to the
workers (``runtime_env={"py_modules": [graceful_core]}``), so they run the same code.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from graceful_core.errors import InputError
from graceful_core.io.datasets import _shown, align_classes, load_dataset, natural_key
from graceful_core.io.images import open_image
from graceful_core.io.tables import predictions_to_arrow
from graceful_core.metrics.confidence import argmax_lowest
from graceful_core.transforms import preprocess
from graceful_core.types import Predictions

if TYPE_CHECKING:  # ray is optional and heavy: imported where a Ray run starts
    from ray import ObjectRef

__all__ = ["RayPredictResult", "predict_ray", "ray_session"]

#: Rows per Ray Data block, hence per output shard.
DEFAULT_ROWS_PER_SHARD = 50_000
#: Object store of a local Ray (bytes; in /dev/shm).
LOCAL_OBJECT_STORE = 512 << 20


@dataclass(frozen=True)
class RayPredictResult:
    """What :func:`predict_ray` wrote.

    Attributes
    ----------
    out_dir : str
        The folder of Parquet shards (one predictions table).
    files : tuple of str
        The shards, in row order.
    n_rows : int
        Predictions written (one per image).
    actors : int
        Size of the actor pool.
    address : str or None
        The cluster's address (``RAY_ADDRESS``), or None for a local Ray.
    """

    out_dir: str
    files: tuple[str, ...]
    n_rows: int
    actors: int
    address: str | None


@contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[str | None]:
    """A Ray connection for the block: the cluster at ``RAY_ADDRESS``, or a local Ray.

    A local Ray gets ``num_cpus`` cores (default: the machine's) plus one logical CPU for
    Ray Data's light write tasks (so an actor per core never starves them), no dashboard
    and a small object store in /dev/shm; it is shut down at the end, with its processes.
    Yields the cluster address (None when local). An already initialised Ray is used as it is.
    """
    import ray

    if ray.is_initialized():
        yield os.environ.get("RAY_ADDRESS")
        return
    address = os.environ.get("RAY_ADDRESS") or None
    # the package folder (this module sits at its top), shipped to the workers
    runtime_env = {
        "py_modules": [os.path.dirname(os.path.abspath(__file__))],
        "env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"},
    }
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            num_cpus=(num_cpus or os.cpu_count() or 1) + 1,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            runtime_env=runtime_env,
        )
    try:
        yield address
    finally:
        ray.shutdown()


class _Predictor:
    """Ray Data actor: loads the model once, predicts batches of (id, file, label) rows."""

    def __init__(
        self,
        model_ref: list[ObjectRef[bytes]],
        suffix: str,
        classes: list[str],
        device: str,
        display_root: tuple[str, str] | None,
    ) -> None:
        import ray

        from graceful_core.models.loader import load_model  # the model loaders import torch: only in an actor

        model_bytes = ray.get(model_ref[0])  # wrapped in a list: Ray does not resolve it for us (no restart hazard)
        folder = tempfile.mkdtemp(prefix="graceful-ray-model-")
        path = os.path.join(folder, "model" + suffix)
        with open(path, "wb") as f:
            f.write(model_bytes)
        self.model = _load(load_model, path, device)
        self.classes = classes
        self.display_root = display_root
        shutil.rmtree(folder, ignore_errors=True)

    def __call__(self, batch: pa.Table) -> pa.Table:
        files = batch.column("file").to_pylist()
        x = np.stack(
            [preprocess(open_image(f, name=_shown(f, self.display_root)), self.model.info) for f in files]
        ).astype(np.float32, copy=False)
        logits, emb = self.model.run(x)
        logits = np.asarray(logits, dtype=np.float32)
        preds = Predictions(
            ids=np.asarray(batch.column("id").to_pylist(), dtype=object),
            pred=argmax_lowest(logits),
            classes=self.classes,
            labels=batch.column("label").to_numpy().astype(np.int64),
            scores=logits,
            score_kind="logits",
            embedding=None if emb is None else np.asarray(emb, dtype=np.float32),
        )
        return predictions_to_arrow(preds, wide=False)


def _load(load_model, path: str, device: str):
    """``load_model(path)``, on ``device`` when the loader takes one (CPU otherwise)."""
    if device != "cpu" and "device" in inspect.signature(load_model).parameters:
        return load_model(path, device=device)
    if device != "cpu":
        raise InputError(path, f"this model loader cannot place models on {device!r}")
    return load_model(path)


def _input_error_in(e: BaseException) -> InputError | None:
    """The InputError an actor raised, from the exception Ray hands to the driver."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, InputError):
            return x
        stack += [getattr(x, "cause", None), x.__cause__, x.__context__]
        stack += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]
    return None


def _check_out_dir(out_dir: str) -> None:
    if os.path.isfile(out_dir):
        raise InputError(out_dir, "is a file: with --engine ray, --out is a folder for Parquet shards")
    if Path(out_dir).suffix.lower() == ".csv":
        raise InputError(out_dir, "with --engine ray, --out is a folder of Parquet shards, not a .csv file")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise InputError(out_dir, "exists and is not empty: give a new folder for the Parquet shards")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise InputError(out_dir, "its parent folder does not exist")


def predict_ray(
    model_path: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    device: str = "cpu",
    actors: int | None = None,
    batch_size: int = 256,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    num_cpus: int | None = None,
) -> RayPredictResult:
    """Run a model over a dataset with Ray Data and write Parquet shards to ``out_dir``.

    The rows equal :func:`graceful_core.inference.predict`'s (same ids in the same order,
    labels, logits within float tolerance, argmax predictions, embeddings).

    Parameters
    ----------
    model_path : path
        TorchScript or ONNX model file (read by the driver, shipped to the actors).
    data : path
        Dataset: folder of class folders, ``.zip`` of one, or manifest.
    out_dir : path
        A new (or empty) folder; shards appear there only when all are written.
    device : str
        ``"cpu"``, ``"cuda"`` (then each actor asks Ray for one GPU) or ``"auto"`` (``cuda``
        when the cluster has GPUs).
    actors : int, optional
        Size of the actor pool (default: the cluster's CPUs minus one, at least one; with
        ``cuda``, its GPUs).
    batch_size : int
        Images per model call.
    rows_per_shard : int
        Most rows per Ray Data block and output file (there are at least 4 blocks per
        actor while the dataset has enough batches).
    num_cpus : int, optional
        CPUs of a local Ray (default: this machine's).

    Raises
    ------
    InputError
        Bad model or dataset, an unreadable image (naming it), an output folder that
        exists and is not empty.
    """
    import ray

    from graceful_core.models.loader import load_model  # imports torch: only when a Ray run starts

    out_dir = os.fspath(out_dir)
    _check_out_dir(out_dir)
    if batch_size < 1 or rows_per_shard < 1:
        raise ValueError("batch_size and rows_per_shard must be >= 1")
    model = load_model(model_path)  # validates the file; gives the class list
    classes = list(model.info.classes)
    dataset = align_classes(load_dataset(data), classes)
    if len(dataset) == 0:
        raise InputError(os.fspath(data), "no images found")
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    listing = pa.table(
        {
            "id": pa.array(dataset.ids, type=pa.string()),
            "file": pa.array(dataset.files, type=pa.string()),
            "label": pa.array(np.asarray(dataset.labels, dtype=np.int64)),
        }
    )
    parent = os.path.dirname(os.path.abspath(out_dir))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", suffix=".tmp", dir=parent)
    try:
        with ray_session(num_cpus) as address:
            res = ray.cluster_resources()
            if device == "auto":  # a GPU per actor when the cluster has GPUs
                device = "cuda" if res.get("GPU", 0) > 0 else "cpu"
            cuda = device.startswith("cuda")
            if actors is None:
                actors = max(1, int(res.get("GPU", 0))) if cuda else max(1, int(res.get("CPU", 1)) - 1)
            ctx = ray.data.DataContext.get_current()
            ctx.execution_options.preserve_order = True  # shards in the dataset's order: compare aligns them
            # blocks: at most rows_per_shard rows each, and enough of them (4 per actor) to keep every actor busy
            n_blocks = max(
                math.ceil(len(dataset) / rows_per_shard), min(4 * actors, math.ceil(len(dataset) / batch_size))
            )
            ds = ray.data.from_arrow(listing).repartition(n_blocks)
            out = ds.map_batches(
                _Predictor,
                fn_constructor_args=(
                    [ray.put(model_bytes)],
                    Path(model_path).suffix,
                    classes,
                    device,
                    dataset.display_root,
                ),
                batch_size=batch_size,
                batch_format="pyarrow",
                concurrency=actors,
                num_cpus=1,
                num_gpus=1 if cuda else 0,
            )
            try:
                out.write_parquet(tmp)
            except Exception as e:  # noqa: BLE001 - Ray wraps the actors' errors in its own types
                err = _input_error_in(e)
                if err is not None:
                    raise err from None
                raise
        # Ray names files <write uuid>_<task index>-<block>.parquet: rename them part-<i>.parquet in row order
        written = sorted((f for f in os.listdir(tmp) if f.endswith(".parquet")), key=natural_key)
        files = [f"part-{i:06d}.parquet" for i in range(len(written))]
        for src, dst in zip(written, files):
            os.replace(os.path.join(tmp, src), os.path.join(tmp, dst))
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty (checked above)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import pyarrow.parquet as pq

    paths = tuple(os.path.join(out_dir, f) for f in files)
    n_rows = sum(pq.read_metadata(p).num_rows for p in paths)
    return RayPredictResult(out_dir=out_dir, files=paths, n_rows=n_rows, actors=int(actors), address=address)
