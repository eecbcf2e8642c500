"""TorchScript model files (``torch.jit.save`` archives with ``graceful.json``; docs/formats.md).

Before anything is handed to ``torch.jit.load`` the archive's member list is read with
:mod:`zipfile`: a TorchScript archive has a ``<archive>/code/`` folder (the compiled
TorchScript source) next to ``<archive>/data.pkl``. A ``torch.save`` checkpoint has
``data.pkl`` but no ``code/``; loading one would mean unpickling arbitrary objects, so it
is refused with an :class:`~graceful_core.errors.InputError` and never opened by torch.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import torch

from graceful_core.errors import InputError
from graceful_core.models.devices import resolve_device
from graceful_core.models.info import parse_model_info
from graceful_core.models.outputs import (
    as_embeddings,
    as_input_batch,
    checked_embedding,
    checked_logits,
    short_reason,
)
from graceful_core.types import ModelInfo

__all__ = ["TorchScriptModel", "PICKLED_CHECKPOINT", "check_torchscript_archive", "torchscript_archive_kind"]

#: The problem reported for a pickled ``torch.save`` checkpoint (zip or legacy format).
PICKLED_CHECKPOINT = (
    "a pickled PyTorch checkpoint, not a TorchScript model: graceful never unpickles checkpoints; "
    "export with torch.jit.save (see README)"
)

_INFO_FILE = "graceful.json"


def torchscript_archive_kind(names: list[str]) -> str:
    """Classify a zip archive by its member names.

    Parameters
    ----------
    names : list of str
        ``ZipFile.namelist()``.

    Returns
    -------
    str
        ``"torchscript"`` when some ``<archive>/data.pkl`` has a sibling ``<archive>/code/``
        folder; ``"checkpoint"`` when there is a ``<archive>/data.pkl`` but no ``code/``
        (a ``torch.save`` file); ``"other"`` otherwise.
    """
    pickles: set[str] = set()
    code: set[str] = set()
    for name in names:
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl":
            pickles.add(parts[0])
        elif len(parts) >= 3 and parts[1] == "code":
            code.add(parts[0])
    if pickles & code:
        return "torchscript"
    if pickles:
        return "checkpoint"
    return "other"


def check_torchscript_archive(path: str) -> None:
    """Refuse a zip file that is not a TorchScript archive, before torch reads it.

    A file that starts like a pickle (``0x80`` and protocol 2-5, the legacy ``torch.save``
    format) is refused too; other files that are not zip archives are left to
    ``torch.jit.load``, which rejects them without unpickling.

    Raises
    ------
    InputError
        A pickled ``torch.save`` checkpoint, a corrupt zip, or a zip without a model in it.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or short_reason(e)})") from None
    if len(head) == 2 and head[0] == 0x80 and head[1] in (2, 3, 4, 5):
        raise InputError(path, PICKLED_CHECKPOINT)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(path, f"not a TorchScript model (corrupt zip archive: {short_reason(e)})") from None
    kind = torchscript_archive_kind(names)
    if kind == "checkpoint":
        raise InputError(path, PICKLED_CHECKPOINT)
    if kind == "other":
        raise InputError(path, "not a model file: a zip archive without a TorchScript model (no code/ and data.pkl)")


def _decode(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


class TorchScriptModel:
    """A TorchScript model file (implements :class:`graceful_core.types.Model`).

    TorchScript is deprecated upstream (torch 2.13); graceful keeps reading it and
    prefers ``.pt2`` (:mod:`graceful_core.models.pt2`) for new files.

    Parameters
    ----------
    path : str or PathLike
        The ``.pt`` archive, as the user named it (kept in :attr:`path` for messages).
    device : str
        ``"cpu"`` (default), ``"cuda[:N]"`` or ``"auto"``
        (:func:`graceful_core.models.devices.resolve_device`).

    Attributes
    ----------
    info : ModelInfo
        The validated ``graceful.json``.
    path : str
        The file.
    module : torch.jit.ScriptModule
        The loaded module, in eval mode, on :attr:`device`.
    device : str
        The torch device the module runs on (``"cpu"`` or ``"cuda[:N]"``).

    Raises
    ------
    InputError
        A pickled checkpoint, a file torch cannot load as TorchScript, a missing or
        invalid ``graceful.json``, or a CUDA device asked for where there is none.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        self.path = os.fspath(path)
        self.device = resolve_device(device)
        check_torchscript_archive(self.path)
        extra = {_INFO_FILE: ""}
        try:
            module = torch.jit.load(self.path, map_location=self.device, _extra_files=extra)
        except Exception as e:  # any failure to load a user's file is that file's problem
            raise InputError(self.path, f"not a TorchScript model ({short_reason(e)})") from None
        module.eval()
        self.module = module
        self.info: ModelInfo = parse_model_info(_decode(extra[_INFO_FILE]), self.path)

    def __repr__(self) -> str:
        return f"TorchScriptModel({self.path!r}, name={self.info.name!r}, classes={len(self.info.classes)})"

    @property
    def has_embedding(self) -> bool:
        """True when the module exports ``embed(x) -> [N, D]``."""
        return hasattr(self.module, "embed")

    @property
    def has_head(self) -> bool:
        """True when the module exports ``head(e) -> [N, K]``."""
        return hasattr(self.module, "head")

    def _call(self, what: str, fn, arg: torch.Tensor) -> np.ndarray:
        try:
            out = fn(arg)
        except Exception as e:
            raise InputError(
                self.path, f"{what} failed on a batch of shape {list(arg.shape)} ({short_reason(e)})"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise InputError(self.path, f"{what} returns {type(out).__name__}, not a tensor")
        return out.detach().to(device="cpu", dtype=torch.float32).numpy()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``[N, K]`` and embeddings ``[N, D]`` (or None) of a normalised batch ``[N, C, H, W]``.

        With ``embed`` and ``head`` the model runs once: ``e = embed(x)``, ``logits = head(e)``
        (equal to ``forward(x)`` by the file contract); with ``embed`` only, ``forward(x)``
        gives the logits; otherwise only ``forward(x)`` runs.

        Raises
        ------
        ValueError
            ``x`` is not ``[N, *info.input_size]``.
        InputError
            The model fails on the batch or returns shapes that disagree with ``graceful.json``.
        """
        batch = as_input_batch(x, self.info)
        n = batch.shape[0]
        with torch.inference_mode():
            t = torch.from_numpy(batch).to(self.device)
            if self.has_embedding:
                emb = checked_embedding(self._call("embed", self.module.embed, t), n, self.path)
                if self.has_head:
                    logits = self._call("head", self.module.head, torch.from_numpy(emb).to(self.device))
                    return checked_logits(logits, n, self.info, self.path, "head"), emb
                return checked_logits(self._call("forward", self.module, t), n, self.info, self.path), emb
            return checked_logits(self._call("forward", self.module, t), n, self.info, self.path), None

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Apply the exported classifier ``head(e)`` to embeddings ``[N, D]``; logits ``[N, K]``.

        Raises
        ------
        NotImplementedError
            The module exports no ``head`` method.
        ValueError
            ``embedding`` is not 2-D.
        InputError
            ``head`` fails or returns the wrong shape.
        """
        if not self.has_head:
            raise NotImplementedError(f"{self.path}: the model exports no head(e) method")
        e = as_embeddings(embedding)
        with torch.inference_mode():
            logits = self._call("head", self.module.head, torch.from_numpy(e).to(self.device))
        return checked_logits(logits, e.shape[0], self.info, self.path, "head")
