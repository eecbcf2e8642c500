"""Weight interpolation of two models of one architecture (BCWI; ``docs/metrics.md``, "What-if remedies").

Schumann et al., "Backward Compatibility During Data Updates by Weight Interpolation",
EACL 2024: the model with weights ``θ(α) = (1 − α)·θ_old + α·θ_new`` keeps more of the old
model's correct answers for small ``α`` at the cost of one model at inference.

Only TorchScript (``.pt``) and ``torch.export`` (``.pt2``) files have weights graceful can
read without running pickled code; both must have the same parameter and buffer names,
shapes and dtypes (:func:`interpolation_problem`). The interpolated weights are loaded
into the *old* file's module (its code); that this code with ``α = 1`` reproduces the
new model's logits is checked by :func:`interpolation_predictions`, so two files that only
happen to share names and shapes are refused rather than interpolated wrongly.
Floating-point tensors are interpolated (batch-norm running statistics too); integer
buffers (e.g. ``num_batches_tracked``, unused at inference) keep the old model's values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from graceful_core.models.module import ModuleModel
from graceful_core.models.pt2 import Pt2Model
from graceful_core.models.torchscript import TorchScriptModel
from graceful_core.types import Model, Predictions

__all__ = [
    "interpolation_problem",
    "interpolated_state",
    "interpolation_module",
    "interpolation_predictions",
    "ALPHA_ONE_TOLERANCE",
]

#: ``α = 1`` in the old code must give the new model's logits within this (absolute and relative) tolerance.
ALPHA_ONE_TOLERANCE = 1e-4


def _module_of(model: Model) -> nn.Module | None:
    if isinstance(model, Pt2Model):
        # ExportedProgram.module() shares its tensors with the (cached) program: loading weights into
        # it would change the loaded model itself, so the file is read again into a program of its own.
        return Pt2Model(model.path, device="cpu").program.module()
    if isinstance(model, TorchScriptModel):
        return torch.jit.load(model.path, map_location="cpu")
    return None


def _state(model: Model) -> dict[str, torch.Tensor] | None:
    module = _module_of(model)
    return None if module is None else {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def interpolation_problem(old: Model, new: Model) -> str | None:
    """Why ``old`` and ``new`` cannot be interpolated, or None when they can.

    Reasons: a file format without readable weights (ONNX, a predictions table), other
    preprocessing or classes, or different parameter names, shapes or dtypes.
    """
    so, sn = _state(old), _state(new)
    if so is None or sn is None:
        which = old if so is None else new
        return (
            f"{which.path}: weight interpolation needs TorchScript (.pt) or torch.export (.pt2) files, "
            f"whose weights graceful can read"
        )
    if old.info.input_size != new.info.input_size or old.info.classes != new.info.classes:
        return "the models take other input sizes or classes"
    if so.keys() != sn.keys():
        only = sorted(set(so) ^ set(sn))
        return (
            f"the models have different parameter names ({len(only)} not in both, e.g. {only[0]!r}): "
            "they are not one architecture"
        )
    for k in so:
        if so[k].shape != sn[k].shape or so[k].dtype != sn[k].dtype:
            return (
                f"parameter {k!r} has shape {list(so[k].shape)} in old and {list(sn[k].shape)} in new: "
                "they are not one architecture"
            )
    return None


def interpolated_state(
    old_state: dict[str, torch.Tensor], new_state: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 − α)·θ_old + α·θ_new`` for every floating-point tensor; other tensors are old's.

    >>> a, b = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([1.0, 4.0]), "n": torch.tensor(9)}
    >>> s = interpolated_state(a, b, 0.25)
    >>> s["w"].tolist(), int(s["n"])
    ([0.25, 2.5], 3)
    """
    out = {}
    for k, v in old_state.items():
        if v.is_floating_point():
            out[k] = (1.0 - alpha) * v + alpha * new_state[k]
        else:
            out[k] = v.clone()
    return out


def interpolation_module(old: Model, new: Model, alpha: float) -> nn.Module:
    """Old's module with the interpolated weights (check :func:`interpolation_problem` first)."""
    module = _module_of(old)
    so, sn = _state(old), _state(new)
    if module is None or so is None or sn is None:
        raise ValueError("weight interpolation needs TorchScript or torch.export models")
    module.load_state_dict(interpolated_state(so, sn, alpha))
    return module  # in eval mode: loaded TorchScript and exported programs are


def interpolation_predictions(
    old: Model,
    new_logits: np.ndarray,
    new: Model,
    run: Callable[[Model, float], Predictions],
    alphas: Sequence[float],
) -> tuple[np.ndarray | None, str | None]:
    """Predictions ``[A, N]`` of the interpolated models (one ``run`` per ``α``), or ``(None, reason)``.

    ``run(model, alpha)`` predicts one model over the evaluation images (in the order of
    ``new_logits``, the new model's logits there). ``α = 1`` is run first: if old's code
    with new's weights does not reproduce ``new_logits`` (within :data:`ALPHA_ONE_TOLERANCE`),
    the models are not one architecture and nothing is returned but the reason.
    """
    problem = interpolation_problem(old, new)
    if problem is not None:
        return None, problem
    so, sn = _state(old), _state(new)
    module = _module_of(old)
    assert so is not None and sn is not None and module is not None
    order = sorted(range(len(alphas)), key=lambda i: -alphas[i])  # α = 1 first: the architecture check
    out = np.empty((len(alphas), new_logits.shape[0]), np.int32)
    for done, i in enumerate(order):
        module.load_state_dict(interpolated_state(so, sn, float(alphas[i])))
        preds = run(ModuleModel(module, old.info, device="cpu"), float(alphas[i]))
        if done == 0 and float(alphas[i]) == 1.0:
            got = np.asarray(preds.scores, np.float32)
            if got.shape != new_logits.shape or not np.allclose(
                got, new_logits, rtol=ALPHA_ONE_TOLERANCE, atol=ALPHA_ONE_TOLERANCE
            ):
                return None, (
                    "the old model's code with the new model's weights does not give the new model's "
                    "logits: the two files share parameter names and shapes but not the architecture"
                )
        out[i] = preds.pred
    return out, None
