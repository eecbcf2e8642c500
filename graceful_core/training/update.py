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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from graceful_core import cache
from graceful_core.comparing.monitor import FlipMonitor
from graceful_core.errors import InputError
from graceful_core.io.datasets import ImageDataset, align_classes, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.models.devices import resolve_device
from graceful_core.models.loader import load_model  # validates the file (never unpickles)
from graceful_core.models.onnx import OnnxModel
from graceful_core.models.torchscript import TorchScriptModel
from graceful_core.training.architectures import ARCHITECTURES, INPUT_SIZES
from graceful_core.training.export import save_torchscript
from graceful_core.training.losses import ELODI_MIN_MODELS
from graceful_core.training.trainer import METHODS, tensors_from_dataset, train_model
from graceful_core.types import ModelInfo
from graceful_core.vocabulary import StageProgress

__all__ = [
    "TrainParams",
    "TrainedUpdate",
    "BATCH_SIZE",
    "WARM_START_LR",
    "WAITING_STAGE",
    "train_update",
    "trained_model_path",
    "train_update_cached",
]

#: Mini-batch size of every trained update (the trainer polls ``should_stop`` once per batch).
BATCH_SIZE = 64
#: Learning rate of a warm start (fine-tuning an existing model): a tenth of the trainer's from-scratch 2e-3,
#: so that a few epochs on a small training set refine the model instead of undoing it.
WARM_START_LR = 2e-4

#: ``progress(stage, done, total)`` (:data:`graceful_core.vocabulary.StageProgress`): stages "preparing
#: images", "training (epochs)" and, when another training of this process runs first, :data:`WAITING_STAGE`.
#: The stage reported while waiting for another training (trainings run one at a time).
WAITING_STAGE = "waiting for another training to finish"


@dataclass(frozen=True)
class TrainParams:
    """Everything that determines a trained update (with the old model and the data).

    ``lam`` weighs the extra loss (focal distillation, BCT influence loss or logit difference
    inhibition); ``alpha``, ``beta`` and ``temperature`` are the focal-distillation weights
    (Yan et al., CVPR 2021): ``w_i = alpha + beta * 1[old correct on i]``, KL at temperature T
    times T² (the PCT reference code uses T = 100); ``margin`` and ``p`` shape logit difference
    inhibition (``ldi``, ``elodi``; ELODI's reference code: 0.5 and 2); ``n_references`` is the
    size of ELODI's ensemble when the reference models are trained here (plain models of ``arch``
    with seeds ``seed + 1 .. seed + n_references``); ``lr`` is Adam's initial learning rate (the
    trainer's 2e-3 from scratch; a warm start usually wants less, e.g. :data:`WARM_START_LR`).
    """

    method: str = "plain"
    arch: str = "large-cnn"
    lam: float = 1.0
    alpha: float = 1.0
    beta: float = 5.0
    temperature: float = 1.0
    epochs: int = 30
    seed: int = 0
    margin: float = 0.5
    p: float = 2.0
    n_references: int = 3
    lr: float = 2e-3

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
        if not 0 < self.lr <= 1:
            raise ValueError(f"the learning rate must be in (0, 1], got {self.lr}")
        if not (self.margin >= 0 and self.p > 0):
            raise ValueError(f"need margin >= 0 and p > 0, got {self.margin} and {self.p}")
        if not ELODI_MIN_MODELS <= self.n_references <= 50:
            raise ValueError(f"ELODI needs {ELODI_MIN_MODELS} to 50 reference models, got {self.n_references}")

    def canonical(self) -> TrainParams:
        """The same update with the parameters its method ignores reset to their defaults.

        ``plain`` ignores ``lam``, ``alpha``, ``beta`` and ``temperature``; ``distill``
        ignores ``beta`` (forced to 0); ``bct`` ignores ``alpha``, ``beta`` and
        ``temperature``; only ``ldi`` and ``elodi`` use ``margin`` and ``p`` (and not
        ``alpha``, ``beta``, ``temperature``), only ``elodi`` ``n_references``. Equal
        canonical parameters train identical models, so they share one cache file.
        """
        d = TrainParams()
        if self.method != "elodi":
            self = replace(self, n_references=d.n_references)
        if self.method not in ("ldi", "elodi"):
            self = replace(self, margin=d.margin, p=d.p)
        if self.method == "plain":
            return replace(self, lam=d.lam, alpha=d.alpha, beta=d.beta, temperature=d.temperature)
        if self.method == "distill":
            return replace(self, beta=d.beta)
        if self.method in ("bct", "ldi", "elodi"):
            return replace(self, alpha=d.alpha, beta=d.beta, temperature=d.temperature)
        return self

    def key_fields(self) -> dict:
        """The canonical parameters as the cache key sees them: the fields only ``ldi`` / ``elodi`` use are
        left out for the other methods (their files keep the names they had before those methods existed)."""
        out = asdict(self.canonical())
        if self.method not in ("ldi", "elodi"):
            for k in ("margin", "p", "n_references"):
                out.pop(k)
        if self.lr == TrainParams.lr:  # likewise for the default learning rate
            out.pop("lr")
        return out


@dataclass
class TrainedUpdate:
    """A trained model saved as a graceful TorchScript file."""

    path: Path
    params: TrainParams
    seconds: float
    reused: bool = False
    history: list[dict] = field(default_factory=list)


def _load_old(
    old_path: str | os.PathLike, method: str = "plain", device: str = "cpu", arch: str = "large-cnn"
) -> tuple[torch.jit.ScriptModule, ModelInfo]:
    """The old model's TorchScript module (validated by the loader, never unpickled) and its info.

    Raises
    ------
    InputError
        No such file, not a model, an ONNX model (training needs TorchScript), or, for
        ``method="bct"``, a model without ``embed`` and ``head``.
    """
    model = load_model(old_path, device=device)
    if not isinstance(model, TorchScriptModel):
        kind = (
            "an ONNX model"
            if isinstance(model, OnnxModel)
            else "a torch.export .pt2 program"
            if type(model).__name__ == "Pt2Model"
            else f"a {type(model).__name__}"
        )
        raise InputError(
            old_path,
            f"training needs the old model as a TorchScript file (.pt), and this is {kind} "
            "(its weights cannot be trained further here): give the old model's TorchScript "
            "file, or train in your own loop with graceful_core.training.losses",
        )
    size = tuple(model.info.input_size[1:])
    if INPUT_SIZES.get(arch) != size:
        fits = sorted(a for a, s in INPUT_SIZES.items() if s == size)
        hint = (
            f"use --arch {' or '.join(fits)}"
            if fits
            else "train it with your own loop and graceful_core.training.losses"
        )
        raise InputError(
            old_path,
            f"architecture {arch} takes {'x'.join(map(str, INPUT_SIZES.get(arch, ())))} images; "
            f"this model's graceful.json says {list(model.info.input_size)}: {hint}",
        )
    if method == "bct" and not (model.has_embedding and model.has_head):
        raise InputError(old_path, "method bct needs an old model that exports embed(x) and head(e)")
    model.module.eval()
    return model.module, model.info


def _load_torchscript(path: str | os.PathLike, info: ModelInfo, device: str, role: str) -> torch.jit.ScriptModule:
    """A TorchScript model that takes the old model's images and predicts its classes (validated, never unpickled)."""
    model = load_model(path, device=device)
    if not isinstance(model, TorchScriptModel):
        raise InputError(path, f"{role} must be a TorchScript file (.pt)")
    if tuple(model.info.input_size) != tuple(info.input_size) or list(model.info.classes) != list(info.classes):
        raise InputError(
            path,
            f"{role} takes {list(model.info.input_size)} images of classes "
            f"{list(model.info.classes)}; the old model {list(info.input_size)} and {list(info.classes)}",
        )
    model.module.eval()
    return model.module


def _reference_modules(
    old_path,
    dataset: ImageDataset,
    params: TrainParams,
    reference_models,
    init_from,
    info: ModelInfo,
    device: str,
    *,
    progress=None,
    should_stop=None,
) -> list:
    """ELODI's reference models: the given files, else ``params.n_references`` plain models trained here (cached)."""
    if reference_models:  # at least ELODI_MIN_MODELS: checked by train_update before any work
        return [_load_torchscript(p, info, device, "a reference model") for p in reference_models]
    refs = []
    for j in range(params.n_references):
        plain = TrainParams(
            method="plain", arch=params.arch, epochs=params.epochs, seed=params.seed + 1 + j, lr=params.lr
        )
        done = train_update_cached(
            old_path, dataset, plain, progress=progress, should_stop=should_stop, init_from=init_from
        )
        refs.append(_load_torchscript(done.path, info, device, "a reference model"))
    return refs


def _dataset_for(data: str | os.PathLike | ImageDataset, info: ModelInfo) -> ImageDataset:
    dataset = data if isinstance(data, ImageDataset) else load_dataset(data)
    return align_classes(dataset, list(info.classes))


def trained_model_path(
    old_path: str | os.PathLike,
    dataset: ImageDataset,
    params: TrainParams,
    root: Path | None = None,
    reference_models: Sequence[str | os.PathLike] | None = None,
    init_from: str | os.PathLike | None = None,
) -> Path:
    """The content-addressed file of a trained update in the cache folder.

    ``<root>/models/<method>-<first 16 hex digits of SHA-256(old file, dataset content,
    canonical parameters, batch size[, reference model files][, initial weights' file])>.pt``.
    """
    extra = []
    if reference_models:
        extra.append("references=" + ",".join(file_sha256(p) for p in reference_models))
    if init_from is not None:
        extra.append("init=" + file_sha256(init_from))
    key = cache.make_key(
        "train",
        file_sha256(old_path),
        dataset.content_hash(),
        json.dumps(params.key_fields(), sort_keys=True),
        f"batch={BATCH_SIZE}",
        *extra,
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
    reference_models: Sequence[str | os.PathLike] | None = None,
    init_from: str | os.PathLike | None = None,
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
    reference_models : paths, optional
        ``elodi``: the ``k >= 3`` reference models (TorchScript, the old model's classes and input
        size). Without them ``params.n_references`` plain models of ``params.arch`` are trained
        first (seeds ``seed + 1 ..``; cached like any update, warm-started like this one).
    init_from : path, optional
        A TorchScript model of ``params.arch`` (same sizes) to start from instead of a random
        initialisation: a warm start, e.g. from the current new model.
    """
    params.validate()
    if params.method == "elodi" and reference_models and len(reference_models) < ELODI_MIN_MODELS:
        raise InputError(
            reference_models[0],
            f"ELODI needs at least {ELODI_MIN_MODELS} reference models "
            f"(trained with different seeds), got {len(reference_models)}",
        )
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

    epoch_end: Callable[[torch.nn.Module, int], dict | None] | None = None
    if monitor is not None:
        val = _dataset_for(monitor, info)
        flips = FlipMonitor(old, tensors_from_dataset(val, info), classes=list(info.classes), device=device)

        def monitor_epoch(model, epoch: int) -> dict:
            stats = flips.update(model, step=epoch)
            return {
                k: stats[k] for k in ("error_rate", "nfr", "pfr", "btc", "n_negative_flips", "cross_top1") if k in stats
            }

        epoch_end = monitor_epoch

    if progress:
        progress("training (epochs)", 0, params.epochs)
    kw: dict = {}
    if params.method in ("distill", "focal-distillation", "bct"):
        kw = {
            "old_model": old,
            "lam": params.lam,
            "alpha": params.alpha,
            "beta": params.beta,
            "temperature": params.temperature,
        }
    elif params.method == "ldi":
        kw = {"old_model": old, "lam": params.lam, "margin": params.margin, "p": params.p}
    elif params.method == "elodi":
        refs = _reference_modules(
            old_path,
            dataset,
            params,
            reference_models,
            init_from,
            info,
            device,
            progress=progress,
            should_stop=should_stop,
        )
        kw = {"reference_models": refs, "lam": params.lam, "margin": params.margin, "p": params.p}
        if progress:
            progress("training (epochs)", 0, params.epochs)
    if init_from is not None:
        kw["init_from"] = _load_torchscript(init_from, info, device, "the model to start from")
    try:
        model = train_model(
            params.arch,
            X,
            y,
            method=params.method,
            epochs=params.epochs,
            seed=params.seed,
            lr=params.lr,
            num_classes=len(info.classes),
            batch_size=BATCH_SIZE,
            progress=on_epoch,
            should_stop=should_stop,
            on_wait=on_wait,
            epoch_end=epoch_end,
            device=device,
            **kw,
        )
    except ValueError as e:
        if "init_from" in str(e):
            raise InputError(init_from, f"cannot start {params.arch} from this model: {e}") from None
        raise
    out = Path(out)
    new_info = ModelInfo(name=out.stem, input_size=info.input_size, mean=info.mean, std=info.std, classes=info.classes)
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
    reference_models: Sequence[str | os.PathLike] | None = None,
    init_from: str | os.PathLike | None = None,
) -> TrainedUpdate:
    """Like :func:`train_update`, into the content-addressed cache file; reuses an existing one.

    ``monitor`` (a validation set) does not change the weights, so it is not part of the
    file's key; a reused file comes without :attr:`TrainedUpdate.history` (keep it with
    the run, as the app does).
    """
    params.validate()
    _, info = _load_old(old_path, params.method, arch=params.arch)
    dataset = _dataset_for(data, info)
    path = trained_model_path(old_path, dataset, params, reference_models=reference_models, init_from=init_from)
    if path.exists():
        return TrainedUpdate(path=path, params=params, seconds=0.0, reused=True)
    return train_update(
        old_path,
        dataset,
        path,
        params,
        progress=progress,
        should_stop=should_stop,
        monitor=monitor,
        reference_models=reference_models,
        init_from=init_from,
    )
