"""Save trained models in graceful's model-file formats (DESIGN §3).

- :func:`save_torchscript`: ``torch.jit.save`` of the scripted model with the extra file
  ``graceful.json``; the scripted module keeps ``embed`` / ``head`` when the model
  exports them.
- :func:`export_onnx`: input ``x`` ``[N, C, H, W]``, outputs ``logits`` ``[N, K]`` and
  ``embedding`` ``[N, D]`` (dynamic batch), the same JSON in the metadata property
  ``graceful.json``.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from graceful_core.types import ModelInfo

__all__ = ["info_json", "save_torchscript", "export_onnx"]


def info_json(info: ModelInfo) -> str:
    """The ``graceful.json`` text of ``info`` (keys ``name``, ``input_size``, ``mean``, ``std``, ``classes``)."""
    c = info.input_size[0]
    if len(info.mean) != c or len(info.std) != c:
        raise ValueError(f"mean/std need {c} values (one per channel), got {len(info.mean)} and {len(info.std)}")
    return json.dumps(
        {
            "name": info.name,
            "input_size": [int(v) for v in info.input_size],
            "mean": [float(v) for v in info.mean],
            "std": [float(v) for v in info.std],
            "classes": [str(v) for v in info.classes],
        }
    )


def save_torchscript(model: nn.Module, path: str | os.PathLike, info: ModelInfo) -> None:
    """Script ``model`` (in eval mode) and save it with ``graceful.json`` as an extra file.

    Parameters
    ----------
    model : nn.Module
        Scriptable; ``embed`` and ``head`` must be ``@torch.jit.export`` methods to be kept.
    path : str or PathLike
        Destination ``.pt`` file.
    info : ModelInfo
        Preprocessing and class names written to ``graceful.json``.
    """
    text = info_json(info)
    was_training = model.training
    model.eval()
    try:
        scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
        torch.jit.save(scripted, os.fspath(path), _extra_files={"graceful.json": text})
    finally:
        model.train(was_training)


class _LogitsAndEmbedding(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.model.embed(x)
        return self.model.head(e), e


def export_onnx(model: nn.Module, path: str | os.PathLike, info: ModelInfo, *, opset: int = 17) -> None:
    """Export ``model`` to ONNX with outputs ``logits`` and ``embedding`` and ``graceful.json`` metadata.

    Parameters
    ----------
    model : nn.Module
        Must have ``embed(x)`` and ``head(e)``.
    path : str or PathLike
        Destination ``.onnx`` file.
    info : ModelInfo
        Gives the input shape and the metadata.
    opset : int
        ONNX opset version.
    """
    import onnx

    if not (hasattr(model, "embed") and hasattr(model, "head")):
        raise ValueError("export_onnx needs a model with embed(x) and head(e) methods")
    text = info_json(info)
    was_training = model.training
    model.eval()
    try:
        dummy = torch.zeros((2, *info.input_size), dtype=torch.float32)
        torch.onnx.export(
            _LogitsAndEmbedding(model),
            (dummy,),
            os.fspath(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits", "embedding"],
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}, "embedding": {0: "N"}},
            opset_version=opset,
        )
    finally:
        model.train(was_training)
    proto = onnx.load(os.fspath(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "graceful.json", text
    onnx.save(proto, os.fspath(path))
