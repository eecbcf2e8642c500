"""Compiled inner loops of the streamed comparison (numba, compiled once and cached on disk).

Two loops run over every row of a large table and are too slow as NumPy expressions:

- :func:`argmax_rows`: the prediction of each row of a score matrix (argmax, ties to the
  lowest index, ``docs/metrics.md``) and the finiteness check, in one pass over the values.
  ``np.argmax(axis=1)`` plus ``np.isfinite`` take about 4x longer for 10 classes.
- :func:`hash_strings`: a 64-bit hash of each string of an Arrow string array, read
  straight from its offsets and data buffers (no Python strings), for the duplicate-id
  check (:mod:`graceful_core.streaming.ids`).

Both release the GIL (``nogil=True``), so a reading thread keeps decoding Parquet while
they run.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["argmax_rows", "hash_strings", "string_buffers"]

_JIT = None


def _compiled():
    """The numba functions, compiled on first use (the import of numba costs ~0.3 s)."""
    global _JIT
    if _JIT is not None:
        return _JIT
    import numba

    @numba.njit(nogil=True, cache=True)
    def _argmax(values, k, out):  # pragma: no cover - compiled
        n = out.shape[0]
        for i in range(n):
            base = i * k
            best = values[base]
            bi = 0
            acc = best - best  # x - x is 0 for finite x and NaN for NaN or +-inf
            for j in range(1, k):
                x = values[base + j]
                acc += x - x
                if x > best:  # strictly greater: the first maximum wins (lowest index)
                    best = x
                    bi = j
            if acc != 0:
                return i
            out[i] = bi
        return -1

    @numba.njit(nogil=True, cache=True)
    def _hash(offsets, data, out):  # pragma: no cover - compiled
        for i in range(out.shape[0]):
            start = offsets[i]
            stop = offsets[i + 1]
            # FNV-1a over the bytes, seeded with the length ...
            h = np.uint64(0xCBF29CE484222325) ^ np.uint64(stop - start)
            for p in range(start, stop):
                h = (h ^ np.uint64(data[p])) * np.uint64(0x100000001B3)
            # ... then the splitmix64 finaliser, so that similar ids spread over all 64 bits
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
            out[i] = h

    _JIT = (_argmax, _hash)
    return _JIT


def argmax_rows(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Argmax of each row (ties to the lowest index) and the first row with a non-finite value.

    ``pred_i = min{j : s_ij = max_k s_ik}`` (``docs/metrics.md``). Rows after the first non-finite one
    are not computed.

    Parameters
    ----------
    scores : np.ndarray
        float32 or float64 ``[N, K]``, C-contiguous, K >= 1.

    Returns
    -------
    pred : np.ndarray
        int64 ``[N]``.
    bad_row : int
        Index of the first row holding a NaN or an infinite value, or -1 if none.

    Examples
    --------
    >>> argmax_rows(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], dtype=np.float32))[0].tolist()
    [1, 0]
    >>> argmax_rows(np.array([[0.0, 1.0], [np.nan, 0.0]], dtype=np.float32))[1]
    1
    """
    s = np.ascontiguousarray(scores)
    if s.ndim != 2 or s.shape[1] < 1 or s.dtype not in (np.float32, np.float64):
        raise ValueError(f"scores must be a float32/float64 [N, K] array with K >= 1, got {s.dtype} {s.shape}")
    out = np.zeros(s.shape[0], dtype=np.int64)
    if s.shape[0] == 0:
        return out, -1
    bad = _compiled()[0](s.reshape(-1), s.shape[1], out)
    return out, int(bad)


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets (``[N + 1]``) and data bytes of an Arrow string/large_string array, zero-copy.

    The offsets index into the returned data array (the array's slice offset is applied).
    """
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"expected a string array, got {arr.type}")
    _, offsets_buf, data_buf = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    if offsets_buf is None or len(arr) == 0:
        return np.zeros(len(arr) + 1, dtype=dtype), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=dtype, count=len(arr) + 1, offset=arr.offset * np.dtype(dtype).itemsize)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def hash_strings(arr: pa.Array) -> np.ndarray:
    """64-bit hash of each value of a string array (FNV-1a with the splitmix64 finaliser).

    Equal strings have equal hashes; different strings collide with probability about
    2**-64 per pair, so a repeated hash is a *candidate* duplicate that the caller
    confirms on the strings (:class:`graceful_core.streaming.ids.DuplicateFinder`).
    Null values hash like the empty string (callers reject null ids first).

    Examples
    --------
    >>> h = hash_strings(pa.array(["a", "b", "a"]))
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    offsets, data = string_buffers(arr)
    out = np.empty(len(arr), dtype=np.uint64)
    if len(arr):
        _compiled()[1](offsets, data, out)
    return out
