"""Read IDX files: the array format of MNIST and Fashion-MNIST.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):

    offset 0   2 bytes   0x00 0x00
    offset 2   1 byte    type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                         0x0D float32, 0x0E float64
    offset 3   1 byte    number of dimensions d (>= 1)
    offset 4   4·d bytes each dimension's size, unsigned 32-bit big-endian
    then       the values, big-endian, in C (row-major) order

A file may be gzip-compressed (as distributed); that is detected by gzip's own magic
bytes (``1f 8b``), not by the file name. Every problem is an
:class:`~graceful_core.errors.InputError` naming the file.

Examples
--------
>>> import tempfile, os
>>> raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
>>> with tempfile.TemporaryDirectory() as d:
...     p = os.path.join(d, "tiny-idx2-ubyte")
...     _ = open(p, "wb").write(raw)
...     read_idx(p).tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from graceful_core.errors import InputError

__all__ = ["IDX_TYPES", "read_idx", "parse_idx"]

#: IDX type code -> NumPy dtype (big-endian where it matters).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """The array held by the IDX bytes ``data`` (already decompressed).

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        What error messages call the file.

    Returns
    -------
    np.ndarray
        Shape from the header; a writable copy in native byte order.

    Raises
    ------
    InputError
        Bad magic, unknown type code, zero dimensions, a header or body shorter than the
        header promises (truncated), or bytes after the last value.
    """
    if len(data) < 4:
        raise InputError(name, f"not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise InputError(name, f"not an IDX file: magic number starts with {data[:2].hex()} instead of 0000")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise InputError(name, f"not an IDX file: unknown type code 0x{code:02X} (known: {known})")
    if ndim < 1:
        raise InputError(name, "not an IDX file: the header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(
            name, f"truncated: the header needs {header} bytes for {ndim} dimensions, the file has {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header
    if body < expected:
        raise InputError(name, f"truncated: shape {list(shape)} needs {expected} bytes of values, the file has {body}")
    if body > expected:
        raise InputError(name, f"{body - expected} bytes after the last value of shape {list(shape)}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns
    -------
    np.ndarray
        See :func:`parse_idx`.

    Raises
    ------
    InputError
        Missing or unreadable file, a broken gzip stream, or a bad IDX body (:func:`parse_idx`).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError(name, "no such file") from None
    except OSError as e:
        raise InputError(name, f"cannot be read ({e.strerror or type(e).__name__})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(name, f"broken gzip stream ({str(e) or type(e).__name__})") from None
    return parse_idx(raw, name)
