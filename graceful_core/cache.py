"""An on-disk result cache keyed by content hashes.

Entries are NumPy ``.npz`` files read with ``allow_pickle=False`` (a cache file can
never execute code). Every entry carries a format tag and its own key; a file that is
truncated, foreign, or written for another key is ignored (and recomputed by the
caller), never trusted. Writes are atomic: a temporary file in the same folder, then
``os.replace``.

Location: ``$GRACEFUL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/graceful``, else
``~/.cache/graceful``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Bump when the meaning of cached arrays changes; old entries are then ignored.
CACHE_FORMAT = "graceful-cache-v1"


def cache_dir() -> Path:
    """The cache folder (created if missing)."""
    env = os.environ.get("GRACEFUL_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = Path(base) / "graceful"
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_key(*parts: str) -> str:
    """SHA-256 over the given strings (with separators), as hex."""
    h = hashlib.sha256(CACHE_FORMAT.encode())
    for p in parts:
        h.update(b"\x00")
        h.update(str(p).encode())
    return h.hexdigest()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """A temporary file name next to ``path`` that becomes ``path`` only if the block succeeds.

    The block writes the temporary file (by any library); on success it gets the usual
    ``rw-r--r--`` mode (``mkstemp`` creates ``rw-------``) and is moved into place with
    ``os.replace`` (atomic), so a reader never sees half a file. On any exception it is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        try:
            os.replace(tmp, path)
        except OSError as e:  # name the user's file, not the temporary one
            raise OSError(e.errno, e.strerror, os.fspath(path)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_output`), synced to disk."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _entry_path(kind: str, key: str, root: Path | None) -> Path:
    return (root or cache_dir()) / kind / f"{key}.npz"


def save_arrays(kind: str, key: str, arrays: dict[str, np.ndarray], root: Path | None = None) -> Path:
    """Store numeric/string arrays under ``kind/key`` atomically. No object arrays."""
    buf = io.BytesIO()
    payload = {"__format__": np.array(CACHE_FORMAT), "__key__": np.array(key)}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype == object:
            arr = arr.astype(str)
        payload[name] = arr
    np.savez(buf, allow_pickle=False, **payload)  # object arrays were turned into str above
    path = _entry_path(kind, key, root)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_arrays(kind: str, key: str, root: Path | None = None) -> dict[str, np.ndarray] | None:
    """Return the arrays stored under ``kind/key``, or None if absent or not trustworthy."""
    path = _entry_path(kind, key, root)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["__format__"]) != CACHE_FORMAT or str(z["__key__"]) != key:
                return None
            return {k: z[k] for k in z.files if not k.startswith("__")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def cached_arrays(
    kind: str,
    key: str,
    compute: Callable[[], dict[str, np.ndarray]],
    *,
    names: Collection[str] = (),
    root: Path | None = None,
) -> dict[str, np.ndarray]:
    """The arrays stored under ``kind/make_key(kind, key)``, or ``compute()`` stored there.

    The lazy results of a comparison (its embedding overlap, 2-D projections, class
    probabilities, pixel features) are cached this way under the comparison's content
    key, so a restarted server or another process does not compute them again. An empty
    ``key`` (inputs given in memory, no content identity) computes without caching. An
    entry that lacks one of ``names`` is computed again.
    """
    if not key:
        return compute()
    entry = make_key(kind, key)
    hit = load_arrays(kind, entry, root)
    if hit is not None and set(names) <= set(hit):
        return hit
    arrays = compute()
    save_arrays(kind, entry, arrays, root)
    return arrays
