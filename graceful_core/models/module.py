"""In-memory ``torch.nn.Module``s under graceful's model contract (the Python API's models).

One convention, used by the API (:func:`graceful_core.compare`), the flip monitor and the
exporters, so a module gives the same logits and embeddings in memory as in any file
written from it:

- a module with ``embed(x)`` and ``head(e)``: ``e = embed(x)``, logits ``= head(e)``
  (equal to ``forward(x)`` by the contract; the TorchScript back end runs it the same way);
- a module with ``embed(x)`` only: logits ``= forward(x)``, embedding ``= embed(x)``;
- otherwise ``forward(x)`` returns logits ``[N, K]`` or a tuple ``(logits, embedding)``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from graceful_core.errors import InputError
from graceful_core.models.devices import resolve_device
from graceful_core.models.outputs import as_input_batch, checked_embedding, checked_logits, short_reason
from graceful_core.types import ModelInfo

if TYPE_CHECKING:  # typing.TypeIs from Python 3.13; annotations only (never evaluated here)
    from typing_extensions import TypeIs

__all__ = [
    "eval_mode",
    "GracefulOutputs",
    "module_outputs",
    "module_has_embedding",
    "ModuleModel",
    "module_device",
    "module_label",
    "Embeds",
    "HasHead",
    "has_embed_method",
    "has_head_method",
]


class Embeds(Protocol):
    """A module with ``embed(x) -> embedding [N, D]`` (the contract above)."""

    def embed(self, x: torch.Tensor, /) -> torch.Tensor: ...


class HasHead(Protocol):
    """A module with ``head(embedding) -> logits [N, K]`` (the contract above)."""

    def head(self, embedding: torch.Tensor, /) -> torch.Tensor: ...


def has_embed_method(module: object) -> TypeIs[Embeds]:
    """True when ``module`` has ``embed``: a method, a scripted method or a submodule (the contract's test)."""
    return hasattr(module, "embed")


def has_head_method(module: object) -> TypeIs[HasHead]:
    """True when ``module`` has ``head``: a method, a scripted method or a submodule (the contract's test)."""
    return hasattr(module, "head")


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Put ``module`` in eval mode for the block and restore its training flag afterwards.

    Modules that cannot switch modes (``ExportedProgram.module()`` raises on ``eval()``;
    it is fixed at export time) are left as they are.
    """
    was = module.training
    try:
        module.eval()
        switched = True
    except NotImplementedError:
        switched = False
    try:
        yield module
    finally:
        if switched:
            module.train(was)


def module_label(module: nn.Module) -> str:
    """How messages name an in-memory module: ``<module ClassName>``."""
    return f"<module {type(module).__name__}>"


def _split(out, label: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(out, torch.Tensor):
        return out, None
    if isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out):
        return out[0], out[1]
    raise InputError(
        label, f"forward returns {type(out).__name__}; expected logits [N, K] or a tuple (logits, embedding)"
    )


def module_outputs(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and embedding (or None) of ``module`` on ``x`` under the contract above.

    Raises
    ------
    InputError
        ``forward`` returns something other than a tensor or a pair of tensors, or a
        method fails (the message names the module's class).
    """
    label = module_label(module)
    try:
        if has_embed_method(module):
            e = module.embed(x)
            logits = module.head(e) if has_head_method(module) else _split(module(x), label)[0]
            return logits, e
        return _split(module(x), label)
    except InputError:
        raise
    except Exception as err:
        raise InputError(label, f"failed on a batch of shape {list(x.shape)} ({short_reason(err)})") from None


class GracefulOutputs(nn.Module):
    """``forward(x)`` = :func:`module_outputs` as a plain tensor or an ``(logits, embedding)`` tuple.

    Wraps a module for exporters (ONNX, ``torch.export``) so that every file format holds
    the same outputs as the module in memory.
    """

    def __init__(self, model: nn.Module, with_embedding: bool) -> None:
        super().__init__()
        self.model = model
        self.with_embedding = with_embedding

    def forward(self, x: torch.Tensor):
        logits, e = module_outputs(self.model, x)
        return (logits, e) if self.with_embedding else logits


def module_has_embedding(module: nn.Module, example: torch.Tensor) -> bool:
    """True when ``module`` gives an embedding on ``example`` (runs it once, eval mode, no grad)."""
    with eval_mode(module), torch.inference_mode():
        return module_outputs(module, example)[1] is not None


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the module's first parameter or buffer (None when it has neither)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


class ModuleModel:
    """An ``nn.Module`` with its ``graceful.json`` fields, as a :class:`graceful_core.types.Model`.

    Lets :func:`graceful_core.inference.predict` run an in-memory module over an image
    dataset (decoding and preprocessing by ``info``); run with ``use_cache=False`` (a module
    has no file to hash).

    Parameters
    ----------
    module : nn.Module
        Run in eval mode under ``torch.inference_mode``; its training flag is restored
        after every batch.
    info : ModelInfo
        Preprocessing and class names.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``: the device batches are moved to. The
        module is not moved: it must already live there (``"auto"`` uses the module's own
        device).
    """

    def __init__(self, module: nn.Module, info: ModelInfo, device: str = "auto") -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.info = info
        self.path = module_label(module)
        own = module_device(module)
        self.device = str(own) if (device == "auto" and own is not None) else resolve_device(device)
        c, h, w = info.input_size
        self._has_embedding = module_has_embedding(module, torch.zeros((1, c, h, w), device=self.device))

    @property
    def has_embedding(self) -> bool:
        """True when the module gives embeddings (``embed`` or a ``(logits, embedding)`` forward)."""
        return self._has_embedding

    @property
    def has_head(self) -> bool:
        """True when the module has ``head(e)``."""
        return has_head_method(self.module)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``[N, K]`` and embeddings ``[N, D]`` (or None) of a normalised batch ``[N, C, H, W]``."""
        batch = as_input_batch(x, self.info)
        n = batch.shape[0]
        logits, emb = run_module(self.module, torch.from_numpy(batch).to(self.device))
        out = checked_logits(logits, n, self.info, self.path)
        return out, (checked_embedding(emb, n, self.path) if emb is not None else None)

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Apply ``module.head`` to embeddings ``[N, D]``; logits ``[N, K]``."""
        if not has_head_method(self.module):
            raise NotImplementedError(f"{self.path}: the module has no head(e) method")
        with eval_mode(self.module), torch.inference_mode():
            e = torch.from_numpy(np.ascontiguousarray(embedding, dtype=np.float32)).to(self.device)
            out = self.module.head(e).detach().to("cpu", torch.float32).numpy()
        return checked_logits(out, out.shape[0], self.info, self.path, "head")


def run_module(module: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`module_outputs` in eval mode without gradients, as CPU float32 arrays.

    The module's training flag is restored afterwards, so a training loop can call this
    between steps.
    """
    with eval_mode(module), torch.inference_mode():
        logits, e = module_outputs(module, x)
        lo = logits.detach().to("cpu", torch.float32).numpy()
        em = None if e is None else e.detach().to("cpu", torch.float32).numpy()
    return lo, em
