"""The reference trainer: train a new model, optionally against an old one, deterministically.

Methods (``method=``):

- ``"plain"``: cross-entropy only.
- ``"distill"``: :class:`~graceful_core.training.losses.FocalDistillationLoss` with
  ``beta = 0`` (uniform distillation from the old model's logits).
- ``"focal-distillation"``: the same loss with ``alpha``, ``beta`` (Yan et al., CVPR 2021).
- ``"bct"``: :class:`~graceful_core.training.losses.BCTInfluenceLoss` with the old model's
  frozen ``head`` (Shen et al., CVPR 2020); the new embedding size must equal the old
  head's input size.
- ``"ldi"``: :class:`~graceful_core.training.losses.LogitDifferenceInhibitionLoss` toward the
  old model's logits.
- ``"elodi"``: the same loss toward the mean logits of ``k >= 3`` reference models
  (:func:`~graceful_core.training.losses.ensemble_logits`; Zhao et al., 2022), e.g. models of
  the new architecture trained with other seeds; the old model is not needed.

Everything runs on the CPU. The result depends only on the inputs and ``seed`` (the
global RNG state is saved and restored around training).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graceful_core.training.architectures import build_model
from graceful_core.training.losses import (
    BCTInfluenceLoss,
    FocalDistillationLoss,
    LogitDifferenceInhibitionLoss,
    ensemble_logits,
)
from graceful_core.transforms import preprocess
from graceful_core.types import ModelInfo
from graceful_core.vocabulary import TRAINING_METHODS as METHODS

if TYPE_CHECKING:
    from graceful_core.models.module import HasHead

__all__ = ["METHODS", "TrainingCancelled", "tensors_from_dataset", "old_logits_of", "load_init_weights", "train_model"]

#: ``progress(done_epochs, total_epochs, info)``; ``info`` has ``epoch``, ``loss``, ``train_accuracy``.
ProgressCallback = Callable[[int, int, dict], None]


#: Training seeds torch's process-wide generator (dropout draws from it on every batch), so
#: two trainings in threads of one process (two app sessions) would mix their random draws
#: and break "same seed, same weights": they run one after the other.
_TRAIN_LOCK = threading.Lock()


class TrainingCancelled(Exception):
    """Raised by :func:`train_model` when ``should_stop()`` returned True."""


@contextmanager
def _training_slot(on_wait: Callable[[bool], None] | None, should_stop: Callable[[], bool] | None):
    """Hold :data:`_TRAIN_LOCK`; if another training has it, say so and wait (cancellable).

    ``on_wait(True)`` is called when the wait starts, ``on_wait(False)`` when this training
    gets its turn; neither is called when the lock was free.
    """
    if not _TRAIN_LOCK.acquire(blocking=False):
        if on_wait is not None:
            on_wait(True)
        while not _TRAIN_LOCK.acquire(timeout=0.25):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("training cancelled while waiting for another training to finish")
        try:
            if on_wait is not None:
                on_wait(False)
        except BaseException:
            _TRAIN_LOCK.release()
            raise
    try:
        yield
    finally:
        _TRAIN_LOCK.release()


def tensors_from_dataset(dataset: Any, info: ModelInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """Preprocess every image of a dataset into training tensors.

    Parameters
    ----------
    dataset : object
        Has ``__len__``, ``load_image(i) -> PIL.Image`` and ``labels`` (int array, one per image).
    info : ModelInfo
        The preprocessing (:func:`graceful_core.transforms.preprocess`), the same as at inference.

    Returns
    -------
    X : torch.Tensor
        float32 ``[N, C, H, W]``.
    y : torch.Tensor
        int64 ``[N]``.
    """
    n = len(dataset)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"dataset.labels must have one label per image ({n}), got shape {labels.shape}")
    if n == 0:
        return torch.zeros((0, *info.input_size), dtype=torch.float32), torch.zeros(0, dtype=torch.int64)
    X = np.stack([preprocess(dataset.load_image(i), info) for i in range(n)])
    return torch.from_numpy(X), torch.from_numpy(labels)


@torch.no_grad()
def old_logits_of(old_model: Any, X: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """The old model's logits ``[N, K]`` on ``X`` (eval mode, no gradient)."""
    if hasattr(old_model, "eval"):
        old_model.eval()
    parts = [old_model(X[i : i + batch_size]).detach() for i in range(0, X.shape[0], batch_size)]
    return torch.cat(parts).float()


class _MethodHead(nn.Module):
    """An ``nn.Module`` whose forward is ``model.head`` (works for scripted models too)."""

    def __init__(self, model: HasHead) -> None:
        super().__init__()
        self.model = model

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.model.head(e)


def load_init_weights(model: nn.Module, init_from: Any) -> None:
    """Copy ``init_from``'s weights (a module or a state dict) into ``model``.

    Raises
    ------
    ValueError
        Missing or unexpected parameter names, or a shape that differs, listed by name.
    """
    state = init_from.state_dict() if hasattr(init_from, "state_dict") else init_from
    if not hasattr(state, "items"):
        raise ValueError(f"init_from must be a module or a state dict, got {type(init_from).__name__}")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or shapes:
        parts = [
            f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for what, names in (("missing", missing), ("unexpected", extra), ("different shape", shapes))
            if names
        ]
        raise ValueError("init_from does not fit the architecture (" + "; ".join(parts) + ")")
    model.load_state_dict({k: v.detach().clone() for k, v in state.items()})


def _check_inputs(X: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float) -> None:
    if not isinstance(X, torch.Tensor) or X.ndim != 4 or not X.is_floating_point():
        raise ValueError("X must be a float tensor [N, C, H, W]")
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != X.shape[0] or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor [N] with N = {X.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("no training samples")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")


def train_model(
    arch: str,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "plain",
    old_model: Any = None,
    old_logits: torch.Tensor | None = None,
    lam: float = 1.0,
    alpha: float = 1.0,
    beta: float = 5.0,
    temperature: float = 1.0,
    kind: str = "kl",
    margin: float = 0.5,
    p: float = 2.0,
    reference_models: Any = None,
    reference_logits: Any = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    num_classes: int | None = None,
    embedding_dim: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_wait: Callable[[bool], None] | None = None,
    epoch_end: Callable[[nn.Module, int], dict | None] | None = None,
    device: str = "cpu",
    init_from: Any = None,
) -> nn.Module:
    """Train an ``arch`` model on ``(X, y)`` with Adam and a cosine learning-rate decay.

    The model starts from a random initialisation (seeded), or from ``init_from``'s weights
    (a warm start: fine-tuning an existing model of the same architecture).

    Parameters
    ----------
    arch : str
        A name from :data:`graceful_core.training.architectures.ARCHITECTURES`.
    X, y : torch.Tensor
        Preprocessed images float32 ``[N, C, H, W]`` and labels int64 ``[N]``.
    method : {"plain", "distill", "focal-distillation", "bct", "ldi", "elodi"}
        The objective (module docstring).
    old_model : module, optional
        The old model (e.g. a loaded TorchScript module): ``forward`` gives logits for the
        distillation methods; ``embed`` / ``head`` for ``"bct"``. It is not modified
        except that ``"bct"`` freezes (``requires_grad = False``) its parameters.
    old_logits : torch.Tensor, optional
        Precomputed old logits ``[N, K]`` aligned with ``X``, instead of ``old_model``
        (distillation methods only).
    lam, alpha, beta, temperature, kind
        Loss parameters (:class:`FocalDistillationLoss`, :class:`BCTInfluenceLoss`).
        ``"distill"`` forces ``beta = 0``.
    margin, p
        Logit difference inhibition (``"ldi"``, ``"elodi"``): the free margin and the power
        (:class:`LogitDifferenceInhibitionLoss`; ``lam`` weighs it).
    reference_models : sequence of modules, optional
        ``"elodi"``: the ``k >= 3`` reference models whose mean logits the new model is held to.
    reference_logits : tensor or sequence of tensors, optional
        ``"elodi"``: their precomputed logits, ``[k, N, K]`` aligned with ``X``, instead.
    epochs, batch_size, lr, weight_decay
        Optimisation budget.
    num_classes : int, optional
        K (default: ``max(y) + 1``, or the old model's K).
    embedding_dim : int, optional
        D (default 64; for ``"bct"`` the old embedding size, which it must equal).
    seed : int
        Seeds initialisation, shuffling and dropout; same inputs and seed give the same weights.
    progress : callable, optional
        ``progress(done_epochs, total_epochs, info)`` after each epoch.
    should_stop : callable, optional
        Polled before every batch; when it returns True, :class:`TrainingCancelled` is raised.
        Also polled (every 0.25 s) while waiting for another training of this process.
    on_wait : callable, optional
        Trainings of one process run one at a time (they share torch's random generator).
        ``on_wait(True)`` when this one has to wait for another, ``on_wait(False)`` when it starts.
    epoch_end : callable, optional
        ``epoch_end(model, epoch) -> dict or None`` after each epoch (e.g.
        ``graceful_core.FlipMonitor(old, val).update``); its numbers join the epoch's
        ``progress`` info. It must leave the model's training mode and the RNG as they were.
    device : str
        Torch device to train on (``"cpu"`` or ``"cuda[:N]"``); ``old_model`` must live
        there. Deterministic by seed on the CPU.
    init_from : module or mapping, optional
        Weights to start from instead of the random initialisation: a module (an
        ``nn.Module`` or a loaded TorchScript model) or a state dict with exactly the
        parameter names and shapes of ``arch`` built with these sizes. The module is not
        modified (its tensors are copied).

    Returns
    -------
    nn.Module
        The trained model in eval mode.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    _check_inputs(X, y, epochs, batch_size, lr)
    X, y = X.float().to(device), y.to(device)
    n = X.shape[0]

    criterion: nn.Module | None = None
    if method == "elodi":
        if reference_logits is None:
            if not reference_models:
                raise ValueError("method 'elodi' needs reference_models or reference_logits (k >= 3 models)")
            reference_logits = [old_logits_of(m, X) for m in reference_models]
        old_logits = ensemble_logits(reference_logits).to(device)
        if old_logits.shape[0] != n:
            raise ValueError(f"reference logits must be [k, N, K] with N = {n}, got N = {old_logits.shape[0]}")
        num_classes = num_classes or old_logits.shape[1]
        criterion = LogitDifferenceInhibitionLoss(margin=margin, p=p, lam=lam)
    elif method in ("distill", "focal-distillation", "ldi"):
        if old_logits is None:
            if old_model is None:
                raise ValueError(f"method {method!r} needs old_model or old_logits")
            old_logits = old_logits_of(old_model, X)
        old_logits = old_logits.detach().float().to(device)
        if old_logits.ndim != 2 or old_logits.shape[0] != n:
            raise ValueError(f"old_logits must be [N, K] with N = {n}, got {tuple(old_logits.shape)}")
        num_classes = num_classes or old_logits.shape[1]
        if method == "ldi":
            criterion = LogitDifferenceInhibitionLoss(margin=margin, p=p, lam=lam)
        else:
            criterion = FocalDistillationLoss(
                alpha=alpha, beta=0.0 if method == "distill" else beta, lam=lam, temperature=temperature, kind=kind
            )
    elif method == "bct":
        if old_model is None or not (hasattr(old_model, "embed") and hasattr(old_model, "head")):
            raise ValueError("method 'bct' needs an old_model with embed(x) and head(e)")
        old_model.eval()
        with torch.no_grad():
            old_emb = old_model.embed(X[:1])
            probe = old_model.head(old_emb)
        old_dim = int(old_emb.shape[1])
        if embedding_dim is not None and embedding_dim != old_dim:
            raise ValueError(f"bct: embedding_dim {embedding_dim} differs from the old head's input size {old_dim}")
        embedding_dim = old_dim
        num_classes = num_classes or int(probe.shape[1])
        criterion = BCTInfluenceLoss(_MethodHead(old_model), lam=lam)
    num_classes = num_classes or int(y.max()) + 1
    if int(y.max()) >= num_classes or int(y.min()) < 0:
        raise ValueError(f"labels must be in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]")

    with _training_slot(on_wait, should_stop), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(
            arch, in_channels=X.shape[1], num_classes=num_classes, embedding_dim=embedding_dim or 64
        ).to(device)
        if init_from is not None:
            load_init_weights(model, init_from)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = math.ceil(n / batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            total_loss, correct = 0.0, 0
            for start in range(0, n, batch_size):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"training cancelled in epoch {epoch + 1} of {epochs}")
                idx = order[start : start + batch_size]
                xb, yb = X[idx], y[idx]
                if method == "bct":
                    assert criterion is not None  # invariant: the "bct" branch above built it
                    emb = model.embed(xb)
                    logits = model.head(emb)
                    loss = criterion(emb, logits, yb)
                elif criterion is None:
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                else:
                    assert old_logits is not None  # invariant: every distilling branch above set it
                    logits = model(xb)
                    loss = criterion(logits, old_logits[idx], yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total_loss += float(loss.detach()) * len(idx)
                correct += int((logits.detach().argmax(1) == yb).sum())
            stats = {"epoch": epoch + 1, "loss": total_loss / n, "train_accuracy": correct / n}
            if epoch_end is not None:
                stats.update(epoch_end(model, epoch + 1) or {})
            if progress is not None:
                progress(epoch + 1, epochs, stats)
    return model.eval()
