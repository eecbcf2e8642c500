"""One deployable model file for a recommended remedy (``graceful mitigate --export``).

- mixing and gating: :class:`TransitionModule` runs both models on the input and returns
  ``(log p, embedding)``, ``p`` the mixed (or gated) class probabilities and the embedding
  the new model's (so an index built with the new model keeps working); the predicted
  class, ``argmax log p``, is the remedy's. The probabilities are computed in float64, as
  :mod:`graceful_core.metrics.whatif` computes them.
- interpolation: the interpolated model itself (:mod:`.interpolation`).

The file is a ``torch.export`` ``.pt2`` archive or ONNX (by the suffix of the output), with
the new model's ``graceful.json`` (name ``transition``); ``graceful predict`` on it gives
exactly the remedy's predictions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import torch
from torch import nn

from graceful_core.errors import InputError
from graceful_core.models.outputs import short_reason
from graceful_core.models.pt2 import Pt2Model, quiet_torch_export
from graceful_core.models.torchscript import TorchScriptModel
from graceful_core.remedies.interpolation import interpolation_module
from graceful_core.training.export import EXPORT_FORMATS, FixedMode, export_onnx, export_program, save_pt2
from graceful_core.types import Model, ModelInfo

__all__ = ["TransitionModule", "export_remedy", "EXPORT_SUFFIXES", "TRANSITION_NAME"]

#: Output suffixes of :func:`export_remedy`: those of ``graceful export``'s formats.
EXPORT_SUFFIXES = tuple(f".{f}" for f in EXPORT_FORMATS)
#: ``name`` in the exported file's ``graceful.json``.
TRANSITION_NAME = "transition"


def _outputs(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(out, (tuple, list)):
        return out[0], out[1] if len(out) > 1 else None
    return out, None


class TransitionModule(nn.Module):
    """Both models on one input: ``log`` of the mixed (``w_new``) or gated (``t``, ``s``) probabilities.

    Parameters
    ----------
    old, new : nn.Module
        ``forward(x)`` giving logits or ``(logits, embedding)`` (graceful's contract).
    method : {"mixing", "gating"}
    params : mapping
        ``{"w_new": w}`` or ``{"t": t, "s": s}``.
    old_shift, old_scale : float tensors of one value per channel
        The input is normalised for the new model; old's input is ``x·old_scale + old_shift``
        (identity when both models normalise alike).
    """

    # buffers (register_buffer below), declared so their type is known
    old_shift: torch.Tensor
    old_scale: torch.Tensor

    def __init__(
        self,
        old: nn.Module,
        new: nn.Module,
        method: str,
        params: Mapping[str, float],
        old_shift: torch.Tensor,
        old_scale: torch.Tensor,
    ) -> None:
        super().__init__()
        if method not in ("mixing", "gating"):
            raise ValueError(f"method must be mixing or gating, got {method!r}")
        self.old, self.new, self.method = old, new, method
        self.w = float(params.get("w_new", 0.0))
        self.t, self.s = float(params.get("t", 0.0)), float(params.get("s", 0.0))
        self.register_buffer("old_shift", old_shift.reshape(1, -1, 1, 1).float())
        self.register_buffer("old_scale", old_scale.reshape(1, -1, 1, 1).float())

    def forward(self, x: torch.Tensor):
        lo, _ = _outputs(self.old(x * self.old_scale + self.old_shift))
        ln, emb = _outputs(self.new(x))
        po = torch.softmax(lo.double(), dim=1)
        pn = torch.softmax(ln.double(), dim=1)
        if self.method == "mixing":
            p = po + self.w * (pn - po)
        else:
            keep = (po.max(dim=1, keepdim=True).values >= self.t) & (pn.max(dim=1, keepdim=True).values <= self.s)
            p = torch.where(keep, po, pn)
        logp = torch.log(p).float()
        return logp if emb is None else (logp, emb)


def _program_module(model: Model) -> nn.Module:
    """A traceable module of a TorchScript or ``.pt2`` file (forward gives logits or (logits, embedding))."""
    # An exported program's module cannot switch modes (the ONNX exporter tries): FixedMode stops train() there.
    if isinstance(model, Pt2Model):
        return FixedMode(model.program.module())
    if isinstance(model, TorchScriptModel):
        return FixedMode(export_program(model.module, model.info).module())
    raise InputError(
        model.path,
        "--export needs TorchScript (.pt) or torch.export (.pt2) model files "
        "(an ONNX model cannot be embedded in another model)",
    )


def export_remedy(old: Model, new: Model, method: str, params: Mapping[str, float], out: str | os.PathLike) -> str:
    """Write the model of a remedy point to ``out`` (``.pt2`` or ``.onnx``); returns a one-line description.

    Raises
    ------
    InputError
        Another suffix, models with other input sizes or classes, an ONNX model, or a
        failing export.
    """
    out = os.fspath(out)
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in EXPORT_SUFFIXES:
        raise InputError(out, f"--export writes {' or '.join(EXPORT_SUFFIXES)} files: name the output so")
    if old.info.input_size != new.info.input_size or old.info.classes != new.info.classes:
        raise InputError(out, "the models take other input sizes or classes: one file cannot run both")
    info: ModelInfo = dataclasses.replace(new.info, name=TRANSITION_NAME)
    if method == "interpolation":
        module = interpolation_module(old, new, float(params["alpha"]))
        if not isinstance(module, torch.jit.ScriptModule):  # a .pt2 program's module: its mode is fixed
            module = FixedMode(module)
        info = dataclasses.replace(old.info, name=TRANSITION_NAME)
        what = f"the interpolated model (alpha {params['alpha']:g})"
    else:
        mo, so = torch.tensor(old.info.mean), torch.tensor(old.info.std)
        mn, sn = torch.tensor(new.info.mean), torch.tensor(new.info.std)
        with quiet_torch_export():
            module = TransitionModule(
                _program_module(old), _program_module(new), method, params, old_shift=(mn - mo) / so, old_scale=sn / so
            )
        what = (
            f"both models, mixing their probabilities (w_new {params['w_new']:g})"
            if method == "mixing"
            else f"both models, gated (t {params['t']:g}, s {params['s']:g})"
        )
    try:
        if suffix == ".pt2":
            save_pt2(module, info, out)
        else:
            export_onnx(module, out, info)
    except InputError:
        raise
    except Exception as e:  # an export failure concerns these models
        raise InputError(out, f"could not export the remedy ({short_reason(e)})") from None
    return f"wrote {out}: {what}"
