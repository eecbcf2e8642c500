"""Save models in graceful's model-file formats (``docs/models.md``, ``docs/formats.md``), and convert between them.

- :func:`save_pt2`: ``torch.export`` of the module (eval mode, dynamic batch), ``forward``
  returning logits or ``(logits, embedding)``, saved with ``graceful.json`` in
  ``extra_files``. The preferred format for new files.
- :func:`save_torchscript`: ``torch.jit.save`` of the scripted model with the extra file
  ``graceful.json``; the scripted module keeps ``embed`` / ``head`` when the model
  exports them. (TorchScript is deprecated upstream since torch 2.13; graceful still reads it.)
- :func:`export_onnx`: input ``x`` ``[N, C, H, W]``, outputs ``logits`` ``[N, K]`` and, when
  the model has one, ``embedding`` ``[N, D]`` (dynamic batch), the same JSON in the
  metadata property ``graceful.json``. Works on ``nn.Module``s, loaded TorchScript modules
  and ``.pt2`` programs.
- :func:`convert_model_file`: ``graceful export MODEL --to onnx|pt2 --out FILE``.

Every writer produces the outputs of :func:`graceful_core.models.module.module_outputs`, so
the same module gives the same logits and embeddings in memory and in every file.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from typing import Protocol

import torch
from torch import nn

from graceful_core.cache import atomic_output, atomic_write_bytes
from graceful_core.errors import InputError
from graceful_core.models.info import info_from_mapping  # noqa: F401  (re-exported: it lived here)
from graceful_core.models.loader import load_model
from graceful_core.models.module import (
    Embeds,
    GracefulOutputs,
    HasHead,
    eval_mode,
    has_embed_method,
    has_head_method,
    module_has_embedding,
    module_outputs,
)
from graceful_core.models.onnx import OnnxModel
from graceful_core.models.outputs import short_reason
from graceful_core.models.pt2 import Pt2Model, quiet_torch_export
from graceful_core.models.torchscript import TorchScriptModel
from graceful_core.types import ModelInfo
from graceful_core.vocabulary import EXPORT_FORMATS

__all__ = [
    "info_json",
    "info_from_mapping",
    "save_torchscript",
    "export_onnx",
    "save_pt2",
    "convert_model_file",
    "EXPORT_FORMATS",
]

_INFO_FILE = "graceful.json"


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
        Destination ``.pt`` file (written atomically; the same weights and info give the same bytes).
    info : ModelInfo
        Preprocessing and class names written to ``graceful.json``.
    """
    text = info_json(info)
    with eval_mode(model):
        scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
        # Saved to memory, then written: torch names the archive's root folder after the file it writes to,
        # and a temporary name (atomic writes) would make the same weights give a different file every time.
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files={_INFO_FILE: text})
    atomic_write_bytes(path, buf.getvalue())


class _EmbedsWithHead(Embeds, HasHead, Protocol):
    """A module with ``embed(x)`` and ``head(e)``."""


class _CallableEmbeds(Embeds, Protocol):
    """A module with ``forward(x)`` (called) and ``embed(x)``."""

    def __call__(self, x: torch.Tensor, /) -> torch.Tensor: ...


class _ScriptedLogitsAndEmbedding(nn.Module):
    """Scriptable ``(head(embed(x)), embed(x))`` for a TorchScript module with both methods."""

    def __init__(self, model: _EmbedsWithHead) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.model.embed(x)
        return self.model.head(e), e


class _ScriptedForwardAndEmbedding(nn.Module):
    """Scriptable ``(forward(x), embed(x))`` for a TorchScript module with ``embed`` only."""

    def __init__(self, model: _CallableEmbeds) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x), self.model.embed(x)


def _exportable(model: nn.Module, info: ModelInfo) -> tuple[nn.Module, bool]:
    """The module to hand to an exporter (outputs of :func:`module_outputs`) and whether it has an embedding.

    A TorchScript module is wrapped in a scripted wrapper (tracing a Python wrapper
    around a ScriptModule fails with "not part of the active trace").
    """
    example = torch.zeros((2, *info.input_size), dtype=torch.float32)
    with_emb = module_has_embedding(model, example)
    if isinstance(model, torch.jit.ScriptModule):
        if has_embed_method(model):
            wrapper = (
                _ScriptedLogitsAndEmbedding(model) if has_head_method(model) else _ScriptedForwardAndEmbedding(model)
            )
            return torch.jit.script(wrapper), True
        return model, with_emb
    return GracefulOutputs(model, with_emb), with_emb


def check_class_count(model: nn.Module, info: ModelInfo) -> None:
    """InputError unless ``model`` returns one logit per class name of ``info`` (one forward of 2 zero images).

    A file whose ``graceful.json`` names 9 classes for 10 logits would load nowhere (the
    loaders refuse it) or, worse, label every prediction after the missing name wrongly.
    """
    with eval_mode(model), torch.inference_mode():
        logits, _ = module_outputs(model, torch.zeros((2, *info.input_size), dtype=torch.float32))
    k = int(logits.shape[-1])
    if k != len(info.classes):
        raise InputError(
            "info",
            f"classes lists {len(info.classes)} names but the model returns {k} logits per "
            f"image: give exactly one class name per logit, in the order of the logits",
        )


def export_onnx(model: nn.Module, path: str | os.PathLike, info: ModelInfo | dict, *, opset: int = 17) -> None:
    """Export ``model`` to ONNX with outputs ``logits`` (and ``embedding``) and ``graceful.json`` metadata.

    Parameters
    ----------
    model : nn.Module
        An ``nn.Module``, a loaded TorchScript module or a ``.pt2`` program's module;
        its outputs follow :func:`graceful_core.models.module.module_outputs`.
    path : str or PathLike
        Destination ``.onnx`` file (written atomically).
    info : ModelInfo
        Gives the input shape and the metadata.
    opset : int
        ONNX opset version.
    """
    import onnx

    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx(model, path, info): model must be a torch.nn.Module, got {type(model).__name__}")
    info = info_from_mapping(info)
    text = info_json(info)
    check_class_count(model, info)
    with eval_mode(model):
        wrapped, with_emb = _exportable(model, info)
        names = ["logits", "embedding"] if with_emb else ["logits"]
        dummy = torch.zeros((2, *info.input_size), dtype=torch.float32)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
            # a .pt2 program's input checks; torch.jit re-exports TracerWarning without listing it in __all__
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # pyright: ignore[reportPrivateImportUsage]
            torch.onnx.export(
                # torch annotates f as a path only; the TorchScript-based exporter (dynamo=False) writes to a file object
                wrapped,
                (dummy,),
                buf,  # pyright: ignore[reportArgumentType]
                dynamo=False,
                input_names=["x"],
                output_names=names,
                dynamic_axes={n: {0: "N"} for n in ["x", *names]},
                opset_version=opset,
            )
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = _INFO_FILE, text
    atomic_write_bytes(path, proto.SerializeToString())


class FixedMode(nn.Module):
    """Holds a module whose mode cannot change (``ExportedProgram.module()``): ``train()`` stops here."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> FixedMode:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor):
        return self.inner(x)


def export_program(model: nn.Module, info: ModelInfo):
    """The ``torch.export`` program of ``model`` (a TorchScript model is converted first), batch dimension dynamic."""
    example = torch.zeros((2, *info.input_size), dtype=torch.float32)
    if isinstance(model, torch.jit.ScriptModule):
        from torch._export.converter import TS2EPConverter  # torch's TorchScript -> ExportedProgram converter

        wrapped, _ = _exportable(model, info)
        scripted = wrapped if isinstance(wrapped, torch.jit.ScriptModule) else torch.jit.script(wrapped)
        # The converter makes every dimension dynamic (with guards on H and W); exporting
        # its result again with only N dynamic gives the contract's program, without guards.
        wrapped = TS2EPConverter(scripted, (example,)).convert().module()
    else:
        wrapped, _ = _exportable(model, info)
    batch = torch.export.Dim("N", min=1)
    return torch.export.export(wrapped, (example,), dynamic_shapes=({0: batch},), strict=False)


def save_pt2(module: nn.Module, info: ModelInfo | dict, path: str | os.PathLike) -> None:
    """Export ``module`` with ``torch.export`` and save it as a graceful ``.pt2`` file.

    The saved program's ``forward(x)`` takes ``[N, C, H, W]`` with a dynamic N and returns
    logits, or ``(logits, embedding)`` when the module has an embedding (the convention of
    :func:`graceful_core.models.module.module_outputs`). It is traced in eval mode (the
    module's training flag is restored). ``graceful.json`` goes into ``extra_files``.

    Parameters
    ----------
    module : nn.Module
        The model (an ``nn.Module`` or a loaded TorchScript module).
    info : ModelInfo or dict
        Its ``graceful.json`` fields (``name``, ``input_size``, ``mean``, ``std``, ``classes``).
    path : str or PathLike
        Destination ``.pt2`` file (written atomically).

    Examples
    --------
    >>> from graceful_core.training.architectures import build_model
    >>> info = ModelInfo("m", (1, 8, 8), (0.5,), (0.25,), tuple("abc"))
    >>> save_pt2(build_model("edge-cnn", num_classes=3), info, "/tmp/m.pt2")  # doctest: +SKIP
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"save_pt2(module, info, path): module must be a torch.nn.Module, got {type(module).__name__}")
    info = info_from_mapping(info)
    text = info_json(info)
    check_class_count(module, info)
    with eval_mode(module), quiet_torch_export():
        ep = export_program(module, info)
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={_INFO_FILE: text})
    atomic_write_bytes(path, buf.getvalue())


def _resave_pt2(program, info: ModelInfo, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={_INFO_FILE: info_json(info)})
    atomic_write_bytes(path, buf.getvalue())


def convert_model_file(src: str | os.PathLike, to: str, out: str | os.PathLike) -> str:
    """Convert a graceful model file to ONNX or ``.pt2``, keeping its embedding and ``graceful.json``.

    Supported: TorchScript ``.pt`` -> ONNX or ``.pt2`` (``.pt2`` through torch's
    TorchScript converter); ``.pt2`` -> ONNX, or ``.pt2`` again (re-saved). ONNX -> ``.pt2``
    is not supported (there is no converter in torch); ONNX -> ONNX copies the file.
    The source is loaded with :func:`graceful_core.models.loader.load_model` (checked,
    never unpickled).

    Returns
    -------
    str
        A one-line description of what was written.

    Raises
    ------
    InputError
        A bad source file, an unknown target, ONNX -> ``.pt2``, an output that is the
        source, or a failing conversion (naming the source).
    """
    src, out = os.fspath(src), os.fspath(out)
    if to not in EXPORT_FORMATS:
        raise InputError(None, f"--to must be one of {', '.join(EXPORT_FORMATS)}, got {to!r}")
    if os.path.isdir(out):
        raise InputError(out, "is a folder: give a file name for the output")
    if os.path.exists(out) and os.path.exists(src) and os.path.samefile(src, out):
        raise InputError(out, "is the source file: give another output name")
    model = load_model(src)
    kind = {TorchScriptModel: "TorchScript", Pt2Model: "torch.export", OnnxModel: "ONNX"}.get(type(model), "model")
    try:
        if isinstance(model, OnnxModel):
            if to == "pt2":
                raise InputError(
                    src,
                    "converting ONNX to .pt2 is not supported: export the PyTorch module with "
                    "graceful_core.training.export.save_pt2 instead",
                )
            with atomic_output(out) as tmp, open(src, "rb") as f, open(tmp, "wb") as g:
                g.write(f.read())
        elif isinstance(model, Pt2Model):
            if to == "onnx":
                export_onnx(FixedMode(model.module), out, model.info)
            else:
                _resave_pt2(model.program, model.info, out)
        elif isinstance(model, TorchScriptModel):
            if to == "onnx":
                export_onnx(model.module, out, model.info)
            else:
                save_pt2(model.module, model.info, out)
        else:
            raise InputError(src, f"cannot convert a {type(model).__name__}")
    except InputError:
        raise
    except Exception as e:  # a conversion failure is about the source model
        raise InputError(src, f"could not convert this {kind} model to {to} ({short_reason(e)})") from None
    emb = " with its embedding" if model.has_embedding else ""
    return f"wrote {out}: {kind} {os.path.basename(src)} as {'ONNX' if to == 'onnx' else 'torch.export .pt2'}{emb}"
