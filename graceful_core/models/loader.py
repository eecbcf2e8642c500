"""Open a model file by its content, not its name: :func:`load_model`.

Detection reads the first bytes of the file:

- ``PK\\x03\\x04`` (or an empty zip's ``PK\\x05\\x06``): a zip archive: a ``torch.export``
  archive (``<root>/archive_format`` and ``<root>/models/``) opens as ``.pt2``
  (:class:`graceful_core.models.pt2.Pt2Model`, every member checked first); any other zip
  as TorchScript after checking that it is not a pickled ``torch.save`` checkpoint
  (:func:`graceful_core.models.torchscript.check_torchscript_archive`);
- ``0x80`` followed by a pickle protocol number 2-5: a legacy (non-zip) ``torch.save``
  checkpoint or another pickle, refused without unpickling;
- a ``.onnx`` suffix, or a first byte ``0x08`` (protobuf field 1, ``ir_version``, which ONNX
  writers put first): ONNX;
- anything else (a text file, an image, ...) is not a model file.

Loaded models are kept in a small in-process LRU cache keyed by the file's real path,
size, modification time and device, so the app does not reload a model on every rerun
and a rewritten file is loaded afresh.
"""

from __future__ import annotations

import copy
import functools
import os
import zipfile

from graceful_core.errors import InputError
from graceful_core.models.devices import validate_device
from graceful_core.models.onnx import NOT_ONNX, OnnxModel
from graceful_core.models.outputs import short_reason
from graceful_core.models.pt2 import Pt2Model
from graceful_core.models.pt2_archive import is_pt2_member_list
from graceful_core.models.torchscript import PICKLED_CHECKPOINT, TorchScriptModel
from graceful_core.types import Model

__all__ = ["load_model", "sniff_model_format", "clear_model_cache", "NOT_A_MODEL", "CACHE_SIZE"]

#: The problem reported for files that are neither torch.export, TorchScript nor ONNX.
NOT_A_MODEL = (
    "not a model file: expected a torch.export archive (.pt2), a TorchScript archive (.pt) or an ONNX model (.onnx)"
)
#: How many loaded models the in-process cache keeps.
CACHE_SIZE = 8

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTOCOLS = (2, 3, 4, 5)
_ONNX_FIRST_BYTE = 0x08


def sniff_model_format(head: bytes, suffix: str = "") -> str:
    """Guess a model file's format from its first bytes (and, for ONNX, its suffix).

    Parameters
    ----------
    head : bytes
        At least the first 4 bytes of the file (fewer for tiny files).
    suffix : str
        The file name's suffix, e.g. ``".onnx"`` (case-insensitive).

    Returns
    -------
    str
        ``"zip"``, ``"pickle"``, ``"onnx"`` or ``"unknown"``.
    """
    if head[:4] in _ZIP_MAGICS:
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        return "pickle"
    if suffix.lower() == ".onnx" or (head and head[0] == _ONNX_FIRST_BYTE):
        return "onnx"
    return "unknown"


def _read_head(path: str, n: int = 16) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or short_reason(e)})") from None


def _is_pt2(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return is_pt2_member_list(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False  # the TorchScript check reports the corrupt zip


def _load_uncached(path: str, device: str = "cpu") -> Model:
    """Open ``path`` (an existing regular file) by its content; errors name ``path``."""
    if os.path.getsize(path) == 0:
        raise InputError(path, "is empty (0 bytes), not a model file")
    suffix = os.path.splitext(path)[1]
    kind = sniff_model_format(_read_head(path), suffix)
    if kind == "zip":
        if _is_pt2(path):
            return Pt2Model(path, device=device)
        return TorchScriptModel(path, device=device)
    if kind == "pickle":
        raise InputError(path, PICKLED_CHECKPOINT)
    if kind == "onnx":
        try:
            return OnnxModel(path, device=device)
        except InputError as e:
            if suffix.lower() != ".onnx" and e.problem.startswith(NOT_ONNX):
                raise InputError(path, NOT_A_MODEL) from None
            raise
    raise InputError(path, NOT_A_MODEL)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_cached(realpath: str, size: int, mtime_ns: int, device: str = "cpu") -> Model:
    """:func:`_load_uncached` memoised on the file's identity (``size``/``mtime_ns`` are key parts only)."""
    return _load_uncached(realpath, device)


def clear_model_cache() -> None:
    """Forget every model loaded so far (the next :func:`load_model` reads the file again)."""
    _load_cached.cache_clear()


def load_model(path: str | os.PathLike, *, device: str = "cpu") -> Model:
    """Load a torch.export, TorchScript or ONNX model file, detected by its content.

    Parameters
    ----------
    path : str or PathLike
        The model file, as the user named it; the returned model's ``path`` is this name.
    device : str
        ``"cpu"`` (default), ``"auto"`` or ``"cuda[:N]"``
        (:mod:`graceful_core.models.devices`).

    Returns
    -------
    Model
        A :class:`~graceful_core.models.pt2.Pt2Model`,
        :class:`~graceful_core.models.torchscript.TorchScriptModel` or
        :class:`~graceful_core.models.onnx.OnnxModel`. Repeated calls for an unchanged
        file (same real path, size and mtime) and device return the cached model without
        reloading.

    Raises
    ------
    InputError
        ``<path>: <problem>`` for a missing file, a folder, an empty file, a pickled
        checkpoint, a file that is no model, or a model whose ``graceful.json`` or
        outputs are invalid; ``<problem>`` alone for a CUDA device that is not there.
    """
    shown = os.fspath(path)
    device = validate_device(device)
    if not os.path.exists(shown):
        raise InputError(shown, "no such file")
    if os.path.isdir(shown):
        raise InputError(shown, "is a folder, not a model file")
    real = os.path.realpath(shown)
    try:
        st = os.stat(real)
    except OSError as e:
        raise InputError(shown, f"cannot be read ({e.strerror or short_reason(e)})") from None
    try:
        model = _load_cached(real, st.st_size, st.st_mtime_ns, device)
    except InputError as e:
        if e.path == real and real != shown:
            raise InputError(shown, e.problem) from None
        raise
    if model.path != shown:
        model = copy.copy(model)  # shares the loaded module/session; only the shown name differs
        model.path = shown
    return model
