"""Decoding one image safely: size checked from the header before any pixel is decoded.

:func:`open_image` is the only place graceful decodes a user's image. Pillow reads the
header first (``Image.open`` is lazy); the declared ``width * height`` is compared with
:data:`MAX_PIXELS` before ``load()`` decodes anything, so a tiny file that declares
50000 x 50000 pixels is rejected without allocating. Pillow's own decompression-bomb
guard stays on (``Image.MAX_IMAGE_PIXELS`` is never changed) and its error becomes
:class:`~graceful_core.errors.InputError`. Its *warning* (between 1x and 2x Pillow's
limit of ~89 M pixels) cannot fire, because :data:`MAX_PIXELS` is below that limit; the
warnings filters are not touched (``warnings.catch_warnings`` is not thread-safe, and
images are decoded in threads).
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from graceful_core.errors import InputError

#: Largest image graceful decodes, in pixels (width * height): e.g. 8000 x 5000.
MAX_PIXELS = 40_000_000

_GREY_MODES = frozenset({"1", "L", "LA", "La", "F"})
_WIDE_INT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})

#: What a broken image file makes Pillow (and the codecs under it) raise.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, TypeError)


def check_pixel_count(size: tuple[int, int], name: str | os.PathLike | None, limit: int = MAX_PIXELS) -> None:
    """Raise InputError if an image of ``size = (width, height)`` has more than ``limit`` pixels.

    Parameters
    ----------
    size : (int, int)
        Width and height as declared by the image header.
    name : str or os.PathLike or None
        The file named in the error.
    limit : int
        Largest allowed ``width * height``.
    """
    w, h = int(size[0]), int(size[1])
    if w <= 0 or h <= 0:
        raise InputError(name, f"not a readable image (declares an empty size {w}x{h})")
    if w * h > limit:
        raise InputError(
            name,
            f"image declares {w}x{h} = {w * h:,} pixels, more than the limit of {limit:,} (decompression-bomb guard)",
        )


def _bomb_problem(e: Exception) -> str:
    """Pillow's decompression-bomb message in graceful's words (pixel count kept)."""
    m = re.search(r"\((\d+) pixels\)", str(e))
    declared = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
    return f"image declares {declared}, more than the limit of {MAX_PIXELS:,} (decompression-bomb guard)"


def _wide_int_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer grey -> 8-bit "L": values above 255 are taken as 16-bit, ``v // 257``."""
    arr = np.asarray(img)
    if arr.size and int(arr.max()) > 255:
        arr = np.clip(arr.astype(np.int64) // 257, 0, 255)
    else:
        arr = np.clip(arr, 0, 255)
    return Image.fromarray(arr.astype(np.uint8), mode="L")


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """A new image in mode "L" (grey inputs) or "RGB" (everything else).

    Grey modes ("1", "L", "LA", "F") become "L" (alpha dropped); 16-bit grey ("I;16",
    "I") is scaled to 8 bits (``v // 257``) rather than clipped; palette, alpha, CMYK
    and other colour modes become "RGB".
    """
    if img.mode in _WIDE_INT_MODES:
        return _wide_int_to_l(img)
    if img.mode in _GREY_MODES:
        return img.convert("L")
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("P", "PA") and "transparency" in img.info:
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def open_image(
    source: str | os.PathLike | bytes | bytearray | memoryview, name: str | os.PathLike | None = None
) -> Image.Image:
    """Decode one image fully, in mode "L" or "RGB", refusing decompression bombs.

    Parameters
    ----------
    source : path or bytes
        An image file, or its bytes.
    name : str or os.PathLike, optional
        What error messages call the image (default: ``source`` when it is a path).

    Returns
    -------
    PIL.Image.Image
        A loaded image (no open file behind it), mode "L" or "RGB". Multi-frame files
        give their first frame.

    Raises
    ------
    InputError
        Missing file; more than :data:`MAX_PIXELS` pixels declared (checked before
        decoding); Pillow's decompression-bomb guard; not an image; corrupt or
        truncated data. The message names ``name``.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if name is None:
        name = "<image bytes>" if is_bytes else os.fspath(source)
    fp = io.BytesIO(bytes(source)) if is_bytes else source
    try:
        with Image.open(fp) as img:
            check_pixel_count(img.size, name)
            img.load()
            return to_l_or_rgb(img)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(name, "no such file") from None
    except IsADirectoryError:
        raise InputError(name, "is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(name, _bomb_problem(e)) from None
    except UnidentifiedImageError:
        raise InputError(name, "not a readable image (unknown or broken format)") from None
    except MemoryError:
        raise InputError(name, "not a readable image (too large to decode)") from None
    except _DECODE_ERRORS as e:
        detail = str(e) or type(e).__name__
        raise InputError(name, f"not a readable image ({detail})") from None
