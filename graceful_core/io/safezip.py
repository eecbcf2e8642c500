"""Zip archives from users, checked member by member before anything is written.

:func:`check_zip` inspects every member's header first and rejects the archive as a
whole if any member is unsafe: an absolute path (``/x``, ``C:\\x``, ``\\\\server\\x``), a
``..`` component, a symlink or other non-regular file, an encrypted member, too many
members, a declared total size over :data:`MAX_TOTAL_BYTES`, or a compression ratio over
:data:`MAX_RATIO` for a member larger than :data:`RATIO_MIN_BYTES` (zip bombs).

:func:`safe_extract` then extracts, streaming each member and counting the bytes
actually written, because headers can lie: a member that produces more bytes than it
declared aborts the extraction. Only regular files are written, each verified to lie
inside the destination, opened with ``O_EXCL | O_NOFOLLOW``.

Every problem is an :class:`~graceful_core.errors.InputError` naming the zip file and
the member.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from graceful_core.errors import InputError

#: Most members an archive may have.
MAX_MEMBERS = 200_000
#: Largest declared uncompressed total, in bytes (2 GiB).
MAX_TOTAL_BYTES = 2 << 30
#: Largest uncompressed/compressed ratio of one member ...
MAX_RATIO = 200
#: ... checked for members that declare more than this many bytes (1 MiB).
RATIO_MIN_BYTES = 1 << 20
#: Bytes copied per read while extracting.
CHUNK = 1 << 20

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_parts(name: str) -> tuple[str, ...]:
    """Path components of a member name, with ``\\`` read as a separator; ``()`` if unsafe.

    Unsafe: absolute (leading ``/`` or ``\\``, a drive letter such as ``C:``), a ``..``
    component, or a NUL character. Empty and ``.`` components are dropped.
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm) or "\x00" in norm:
        return ()
    parts = tuple(p for p in PurePosixPath(norm).parts if p not in ("", "."))
    if any(p == ".." for p in parts):
        return ()
    return parts


def _unix_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why one member is unsafe (without its name), or None if it is acceptable."""
    if not member_parts(info.filename):
        norm = info.filename.replace("\\", "/")
        if info.is_dir() and not norm.startswith("/") and all(p in ("", ".") for p in norm.split("/")):
            return None  # a bare "./" entry: nothing to write
        return "has an unsafe path (absolute or with '..')"
    mode = _unix_mode(info)
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is not a regular file or folder"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.file_size > RATIO_MIN_BYTES and (
        info.compress_size <= 0 or info.file_size / info.compress_size > MAX_RATIO
    ):
        ratio = "infinite" if info.compress_size <= 0 else f"{info.file_size / info.compress_size:.0f}"
        return f"declares {info.file_size:,} bytes at a compression ratio of {ratio} (limit {MAX_RATIO}; zip bomb?)"
    return None


def _open_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a zip archive") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise InputError(path, "not a valid zip archive") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or type(e).__name__})") from None


def check_infos(path: str | os.PathLike, infos: list[zipfile.ZipInfo]) -> None:
    """Raise InputError(path, ...) for the first unsafe member or archive-wide limit."""
    if len(infos) > MAX_MEMBERS:
        raise InputError(path, f"too many members in the zip ({len(infos):,} > {MAX_MEMBERS:,})")
    total = 0
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        problem = member_problem(info)
        if problem is not None:
            raise InputError(path, f"member {info.filename!r} {problem}")
        parts = member_parts(info.filename)
        if parts and not info.is_dir():
            if parts in seen:
                raise InputError(path, f"member {info.filename!r} appears twice in the zip")
            seen.add(parts)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise InputError(
                path,
                f"the zip declares more than {MAX_TOTAL_BYTES:,} bytes uncompressed (at member {info.filename!r}; zip bomb?)",
            )


def check_zip(path: str | os.PathLike) -> list[zipfile.ZipInfo]:
    """Inspect every member of a zip archive before anything is extracted.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.

    Returns
    -------
    list of zipfile.ZipInfo
        The members, all checked.

    Raises
    ------
    InputError
        Not a zip; more than :data:`MAX_MEMBERS` members; a member with an absolute or
        ``..`` path, a symlink, an encrypted member; more than :data:`MAX_TOTAL_BYTES`
        declared in total; a member over :data:`RATIO_MIN_BYTES` compressed more than
        :data:`MAX_RATIO` times; a member name twice.
    """
    with _open_zip(path) as z:
        infos = z.infolist()
    check_infos(path, infos)
    return infos


def read_member(
    zf: zipfile.ZipFile, name: str | zipfile.ZipInfo, max_bytes: int, zip_path: str | os.PathLike | None = None
) -> bytes:
    """Read one member's bytes, refusing more than ``max_bytes`` whatever its header says.

    Raises
    ------
    InputError
        The member produces more than ``max_bytes`` bytes, or is corrupt.
    """
    where = zip_path if zip_path is not None else zf.filename
    member = name.filename if isinstance(name, zipfile.ZipInfo) else name
    try:
        with zf.open(name) as src:
            data = src.read(max_bytes + 1)
    except KeyError:
        raise InputError(where, f"member {member!r} is not in the zip") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as e:
        raise InputError(where, f"member {member!r} is corrupt ({e or type(e).__name__})") from None
    if len(data) > max_bytes:
        raise InputError(where, f"member {member!r} expands to more than {max_bytes:,} bytes")
    return data


def _inside(root: str, target: str) -> bool:
    return os.path.commonpath([root, target]) == root


def _copy_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, target: str, zip_path: str | os.PathLike) -> int:
    """Stream one member into a new file; abort past its declared size. Returns bytes written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    written = 0
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as e:
        raise InputError(zip_path, f"member {info.filename!r} cannot be extracted ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as out, z.open(info) as src:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise InputError(
                        zip_path,
                        f"member {info.filename!r} expands beyond its declared size of {info.file_size:,} bytes",
                    )
                out.write(chunk)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise InputError(zip_path, f"member {info.filename!r} is corrupt ({e or type(e).__name__})") from None
    except OSError as e:
        raise InputError(zip_path, f"member {info.filename!r} cannot be extracted ({e.strerror or e})") from None
    return written


def safe_extract(path: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a zip archive into ``dest`` after :func:`check_zip`, counting real bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.
    dest : str or os.PathLike
        Destination folder (created if missing; should be new and empty).

    Returns
    -------
    list of Path
        The regular files written, in archive order.

    Raises
    ------
    InputError
        Anything :func:`check_zip` rejects; a member that produces more bytes than it
        declared or more than :data:`MAX_TOTAL_BYTES` in total; a corrupt member; a
        member that would land outside ``dest``.
    """
    infos = check_zip(path)
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    written_total = 0
    out: list[Path] = []
    with _open_zip(path) as z:
        for info in infos:
            parts = member_parts(info.filename)
            if not parts:
                continue
            target = os.path.join(root, *parts)
            parent = target if info.is_dir() else os.path.dirname(target)
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise InputError(path, f"member {info.filename!r} cannot be extracted ({e.strerror})") from None
            if not _inside(root, os.path.realpath(parent)):
                raise InputError(path, f"member {info.filename!r} would be written outside the destination folder")
            if info.is_dir():
                continue
            written_total += _copy_member(z, info, target, path)
            if written_total > MAX_TOTAL_BYTES:
                raise InputError(path, f"the zip expands to more than {MAX_TOTAL_BYTES:,} bytes")
            out.append(Path(target))
    return out
