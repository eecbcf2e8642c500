"""Checks shared by the model back ends: the input batch and the shapes a model returns.

A model whose outputs disagree with its ``graceful.json`` is a broken *file*, so those
problems are :class:`~graceful_core.errors.InputError` naming it; a wrongly shaped
*input* batch is a caller's bug and raises :class:`ValueError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graceful_core.errors import InputError, nonfinite_where
from graceful_core.types import ModelInfo

__all__ = ["short_reason", "as_input_batch", "as_embeddings", "checked_logits", "checked_embedding"]

_MAX_REASON = 160


def short_reason(exc: BaseException) -> str:
    """The first sentence of the first non-empty line of ``str(exc)``, at most 160 characters.

    Falls back to the exception's type name when the message is empty.
    """
    for line in str(exc).splitlines():
        line = line.strip().split(". ")[0].strip()
        if line:
            return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."
    return type(exc).__name__


def as_input_batch(x: np.ndarray, info: ModelInfo) -> np.ndarray:
    """``x`` as a C-contiguous float32 ``[N, C, H, W]`` array matching ``info.input_size``.

    Raises
    ------
    ValueError
        ``x`` is not 4-D or its ``[C, H, W]`` differs from ``info.input_size``.
    """
    arr = np.asarray(x)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(info.input_size):
        raise ValueError(f"expected a batch [N, {', '.join(map(str, info.input_size))}], got shape {list(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_embeddings(embedding: np.ndarray) -> np.ndarray:
    """``embedding`` as a C-contiguous float32 ``[N, D]`` array.

    Raises
    ------
    ValueError
        ``embedding`` is not 2-D.
    """
    arr = np.asarray(embedding)
    if arr.ndim != 2:
        raise ValueError(f"expected embeddings [N, D], got shape {list(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def checked_logits(logits: Any, n: int, info: ModelInfo, path: str, what: str = "forward") -> np.ndarray:
    """Check that ``logits`` is ``[n, K]`` with ``K == len(info.classes)``; return it as float32.

    ``logits`` is whatever the model returned (an array, a list, another runtime's value): checked here.

    Raises
    ------
    InputError
        ``<path>: outputs 12 logits but graceful.json lists 10 classes`` (or a shape problem).
    """
    k = len(info.classes)
    shape = list(np.shape(logits))
    if len(shape) != 2 or shape[0] != n:
        raise InputError(path, f"{what} returns shape {shape} for a batch of {n}; expected [{n}, {k}] logits")
    if shape[1] != k:
        raise InputError(path, f"outputs {shape[1]} logits but graceful.json lists {k} classes")
    out = np.ascontiguousarray(logits, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(
            path,
            f"{what} returns NaN or infinite logits: {nonfinite_where(out)} of the batch; check "
            "the model's weights and the images' preprocessing",
        )
    return out


def checked_embedding(embedding: Any, n: int, path: str, what: str = "embed") -> np.ndarray:
    """Check that ``embedding`` is ``[n, D]`` with ``D >= 1``; return it as float32 (``embedding``: as for
    :func:`checked_logits`, whatever the model returned).

    Raises
    ------
    InputError
        The shape is not ``[n, D]``.
    """
    shape = list(np.shape(embedding))
    if len(shape) != 2 or shape[0] != n or shape[1] < 1:
        raise InputError(path, f"{what} returns shape {shape} for a batch of {n}; expected [{n}, D] embeddings")
    out = np.ascontiguousarray(embedding, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(path, f"{what} returns NaN or infinite embedding values: {nonfinite_where(out)} of the batch")
    return out
