"""Train an update of a deployed model from files: the one path the CLI and the app share.

``train_update(old_path, data, method=...)`` loads the old TorchScript model and the
training dataset, trains a new model with :func:`graceful_core.training.trainer.train_model`
and saves it as a graceful model file (``docs/formats.md``) that can be compared like any other.

Trained models are content-addressed: :func:`trained_model_path` names the file by the
SHA-256 of the old model, the dataset's content and every training parameter, so the
same request never trains twice (the app keeps its runs in the cache folder).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from graceful_core import cache
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset, align_classes, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.training.architectures import ARCHITECTURES, INPUT_SIZES
from graceful_core.training.export import save_torchscript
from graceful_core.training.trainer import METHODS, tensors_from_dataset, train_model
from graceful_core.types import ModelInfo
from graceful_core.vocabulary import StageProgress

__all__ = ["TrainParams", "TrainedUpdate", "BATCH_SIZE", "WAITING_STAGE", "train_update", "trained_model_path", "train_update_cached"]

#: Mini-batch size of every trained update (the trainer polls ``should_stop`` once per batch).
BATCH_SIZE = 64

#: ``progress(stage, done, total)`` (:data:`graceful_core.vocabulary.StageProgress`): stages "preparing
#: images", "training (epochs)" and, when another training of this process runs first, :data:`WAITING_STAGE`.
#: The stage reported while waiting for another training (trainings run one at a time).
WAITING_STAGE = "waiting for another training to finish"


@dataclass(frozen=True)
class TrainParams:
    """Everything that determines a trained update (with the old model and the data).

    ``lam`` weighs the extra loss (focal distillation or BCT influence loss); ``alpha``,
    ``beta`` and ``temperature`` are the focal-distillation weights (Yan et al., CVPR 2021):
    ``w_i = alpha + beta * 1[old correct on i]``.
    """

    method: str = "plain"
    arch: str = "large-cnn"
    lam: float = 1.0
    alpha: float = 1.0
    beta: float = 5.0
    temperature: float = 1.0
    epochs: int = 30
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` for an unknown method/architecture or out-of-range numbers."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {', '.join(sorted(ARCHITECTURES))}; got {self.arch!r}")
        if not (self.lam >= 0 and self.alpha >= 0 and self.beta >= 0 and self.temperature > 0):
            raise ValueError("need lambda >= 0, alpha >= 0, beta >= 0 and temperature > 0")
        if not 1 <= self.epochs <= 10_000:
            raise ValueError(f"epochs must be in [1, 10000], got {self.epochs}")

    def canonical(self) -> TrainParams:
        """The same update with the parameters its method ignores reset to their defaults.

        ``plain`` ignores ``lam``, ``alpha``, ``beta`` and ``temperature``; ``distill``
        ignores ``beta`` (forced to 0); ``bct`` ignores ``alpha``, ``beta`` and
        ``temperature``. Equal canonical parameters train identical models, so they
        share one cache file.
        """
        d = TrainParams()
        if self.method == "plain":
            return replace(self, lam=d.lam, alpha=d.alpha, beta=d.beta, temperature=d.temperature)
        if self.method == "distill":
            return replace(self, beta=d.beta)
        if self.method == "bct":
            return replace(self, alpha=d.alpha, beta=d.beta, temperature=d.temperature)
        return self


@dataclass
class TrainedUpdate:
    """A trained model saved as a graceful TorchScript file."""

    path: Path
    params: TrainParams
    seconds: float
    reused: bool = False
    history: list[dict] = field(default_factory=list)


def _load_old(old_path: str | os.PathLike, method: str = "plain",
              device: str = "cpu", arch: str = "large-cnn") -> tuple[torch.jit.ScriptModule, ModelInfo]:
    """The old model's TorchScript module (validated by the loader, never unpickled) and its info.

    Raises
    ------
    InputError
        No such file, not a model, an ONNX model (training needs TorchScript), or, for
        ``method="bct"``, a model without ``embed`` and ``head``.
    """
    from graceful_core.models.loader import load_model  # validates the file (never unpickles)
    from graceful_core.models.torchscript import TorchScriptModel

    model = load_model(old_path, device=device)
    if not isinstance(model, TorchScriptModel):
        from graceful_core.models.onnx import OnnxModel

        kind = "an ONNX model" if isinstance(model, OnnxModel) else "a torch.export .pt2 program" \
            if type(model).__name__ == "Pt2Model" else f"a {type(model).__name__}"
        raise InputError(old_path, f"training needs the old model as a TorchScript file (.pt), and this is {kind} "
                                   "(its weights cannot be trained further here): give the old model's TorchScript "
                                   "file, or train in your own loop with graceful_core.training.losses")
    size = tuple(model.info.input_size[1:])
    if INPUT_SIZES.get(arch) != size:
        fits = sorted(a for a, s in INPUT_SIZES.items() if s == size)
        hint = (f"use --arch {' or '.join(fits)}" if fits else
                "train it with your own loop and graceful_core.training.losses")
        raise InputError(old_path, f"architecture {arch} takes {'x'.join(map(str, INPUT_SIZES.get(arch, ())))} images; "
                                   f"this model's graceful.json says {list(model.info.input_size)}: {hint}")
    if method == "bct" and not (model.has_embedding and model.has_head):
        raise InputError(old_path, "method bct needs an old model that exports embed(x) and head(e)")
    model.module.eval()
    return model.module, model.info


def _dataset_for(data: str | os.PathLike | ImageDataset, info: ModelInfo) -> ImageDataset:
    dataset = data if isinstance(data, ImageDataset) else load_dataset(data)
    return align_classes(dataset, list(info.classes))


def trained_model_path(
    old_path: str | os.PathLike, dataset: ImageDataset, params: TrainParams, root: Path | None = None
) -> Path:
    """The content-addressed file of a trained update in the cache folder.

    ``<root>/models/<method>-<first 16 hex digits of SHA-256(old file, dataset content,
    canonical parameters, batch size)>.pt``.
    """
    key = cache.make_key(
        "train", file_sha256(old_path), dataset.content_hash(),
        json.dumps(asdict(params.canonical()), sort_keys=True), f"batch={BATCH_SIZE}",
    )
    return (root or cache.cache_dir()) / "models" / f"{params.method}-{key[:16]}.pt"


def train_update(
    old_path: str | os.PathLike,
    data: str | os.PathLike | ImageDataset,
    out: str | os.PathLike,
    params: TrainParams,
    *,
    progress: StageProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    monitor: str | os.PathLike | ImageDataset | None = None,
    device: str = "cpu",
) -> TrainedUpdate:
    """Train a new model against the old one and save it (atomically) at ``out``.

    Parameters
    ----------
    old_path : path
        The deployed model (TorchScript with ``graceful.json``; ``embed``/``head`` for BCT).
    data : path or ImageDataset
        The training images; class names must be among the old model's.
    out : path
        Destination ``.pt``; written only when training finishes (never partially).
    params : TrainParams
        Method and hyper-parameters.
    progress : callable, optional
        ``progress(stage, done, total)``.
    should_stop : callable, optional
        Polled before every batch; raises
        :class:`~graceful_core.training.trainer.TrainingCancelled` when it returns True.
    monitor : path or ImageDataset, optional
        A validation set: after every epoch a :class:`graceful_core.FlipMonitor` of the old
        model on it adds ``error_rate``, ``nfr``, ``pfr``, ``btc`` (and ``cross_top1``)
        to that epoch's :attr:`TrainedUpdate.history` entry. Costs one pass per epoch.
    device : str
        ``"cpu"`` (default; deterministic by seed), ``"auto"`` or ``"cuda"``.
    """
    from graceful_core.models.devices import resolve_device

    params.validate()
    t0 = time.perf_counter()
    device = resolve_device(device)
    old, info = _load_old(old_path, params.method, device, arch=params.arch)
    dataset = _dataset_for(data, info)
    if progress:
        progress("preparing images", 0, len(dataset))
    X, y = tensors_from_dataset(dataset, info)
    if progress:
        progress("preparing images", len(dataset), len(dataset))
    history: list[dict] = []

    def on_epoch(done: int, total: int, stats: dict) -> None:
        history.append(stats)
        if progress:
            progress("training (epochs)", done, total)

    def on_wait(waiting: bool) -> None:  # another training of this process runs first
        if progress and waiting:
            progress(WAITING_STAGE, 0, 0)
        elif progress:
            progress("training (epochs)", 0, params.epochs)

    epoch_end = None
    if monitor is not None:
        from graceful_core.monitor import FlipMonitor

        val = _dataset_for(monitor, info)
        flips = FlipMonitor(old, tensors_from_dataset(val, info), classes=list(info.classes), device=device)

        def epoch_end(model, epoch: int) -> dict:
            stats = flips.update(model, step=epoch)
            return {k: stats[k] for k in ("error_rate", "nfr", "pfr", "btc", "n_negative_flips", "cross_top1")
                    if k in stats}

    if progress:
        progress("training (epochs)", 0, params.epochs)
    kw = {}
    if params.method != "plain":
        kw = {"old_model": old, "lam": params.lam, "alpha": params.alpha, "beta": params.beta,
              "temperature": params.temperature}
    model = train_model(
        params.arch, X, y, method=params.method, epochs=params.epochs, seed=params.seed,
        num_classes=len(info.classes), batch_size=BATCH_SIZE, progress=on_epoch, should_stop=should_stop,
        on_wait=on_wait, epoch_end=epoch_end, device=device, **kw,
    )
    out = Path(out)
    new_info = ModelInfo(name=out.stem, input_size=info.input_size, mean=info.mean, std=info.std,
                         classes=info.classes)
    with cache.atomic_output(out) as tmp:
        save_torchscript(model, tmp, new_info)
    return TrainedUpdate(path=out, params=params, seconds=time.perf_counter() - t0, history=history)


def train_update_cached(
    old_path: str | os.PathLike,
    data: str | os.PathLike | ImageDataset,
    params: TrainParams,
    *,
    progress: StageProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    monitor: str | os.PathLike | ImageDataset | None = None,
) -> TrainedUpdate:
    """Like :func:`train_update`, into the content-addressed cache file; reuses an existing one.

    ``monitor`` (a validation set) does not change the weights, so it is not part of the
    file's key; a reused file comes without :attr:`TrainedUpdate.history` (keep it with
    the run, as the app does).
    """
    params.validate()
    _, info = _load_old(old_path, params.method, arch=params.arch)
    dataset = _dataset_for(data, info)
    path = trained_model_path(old_path, dataset, params)
    if path.exists():
        return TrainedUpdate(path=path, params=params, seconds=0.0, reused=True)
    return train_update(old_path, dataset, path, params, progress=progress, should_stop=should_stop, monitor=monitor)
