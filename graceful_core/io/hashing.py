"""SHA-256 of files, streamed and memoised in-process.

Content hashes are graceful's identities for cache keys (model files, tables, zips).
A file is read in 1 MiB blocks, never whole; the digest is remembered per
``(realpath, size, mtime_ns)``, so asking again for an unchanged file costs one
``stat`` call.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

from graceful_core.errors import InputError

#: Bytes read per block while hashing.
BLOCK_SIZE = 1 << 20
#: How many digests are remembered (least recently used ones are forgotten first).
MEMO_SIZE = 4096

_memo: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_memo_lock = threading.Lock()


def _stat_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(realpath, size, mtime_ns)`` of a regular file; InputError if it is not one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or type(e).__name__})") from None
    if os.path.isdir(path):
        raise InputError(path, "is a folder, not a file")
    return os.path.realpath(path), int(st.st_size), int(st.st_mtime_ns)


def stream_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in :data:`BLOCK_SIZE` blocks, without memo."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(BLOCK_SIZE):
                h.update(block)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or type(e).__name__})") from None
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content as 64 hex digits, memoised per (realpath, size, mtime_ns).

    Parameters
    ----------
    path : str or os.PathLike
        A regular file.

    Returns
    -------
    str
        ``hashlib.sha256(content).hexdigest()``.

    Raises
    ------
    InputError
        The file does not exist, is a folder, or cannot be read.
    """
    key = _stat_key(path)
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit
    digest = stream_sha256(path)
    if _stat_key(path) != key:  # changed while being read: do not remember a torn digest
        return digest
    with _memo_lock:
        _memo[key] = digest
        _memo.move_to_end(key)
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return digest


def clear_memo() -> None:
    """Forget every remembered digest (for tests)."""
    with _memo_lock:
        _memo.clear()
