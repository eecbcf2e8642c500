"""Thumbnails of dataset images, the same for the app's grids and the HTML report.

Small images (8x8 digits, 28x28 clothes) are enlarged by nearest-neighbour sampling, so
pixels stay sharp squares (no smoothing that would invent detail); large ones are
shrunk. :func:`thumbnail_png` gives PNG bytes of one sample of a comparison (optionally
with a coloured frame); :func:`thumbnail_data_uri` a small ``data:`` URI for the report.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps

from graceful_core.errors import InputError
from graceful_core.vocabulary import REPORT_THUMB_PX

#: Longer side of a thumbnail in the report's negative-flips grid, in pixels (the vocabulary's size).
THUMB_PX = REPORT_THUMB_PX
#: A PNG thumbnail larger than this (photos) is re-encoded as JPEG if that is smaller.
_PNG_BUDGET = 4096


def upscale(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longer side is ``size`` px with nearest-neighbour sampling (no smoothing)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
    w, h = img.size
    f = size / max(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.NEAREST)


def thumbnail_data_uri(img: Image.Image, px: int = THUMB_PX) -> str:
    """A small ``data:`` URI of ``img``, the longer side scaled to at most ``px`` pixels.

    Images smaller than ``px`` are enlarged by an integer factor with nearest-neighbour
    sampling (no smoothing); larger ones are shrunk. Grey images stay single-channel PNG;
    a colour thumbnail whose PNG exceeds a few kB is sent as JPEG when that is smaller, so
    the report stays small for photographs too.
    """
    if px < 1:
        raise ValueError(f"px must be >= 1, got {px}")
    img = img.convert("L" if img.mode in ("L", "1", "I", "I;16", "F", "LA") else "RGB")
    img.thumbnail((px, px), Image.Resampling.BILINEAR)
    if max(img.size) < px:
        s = px // max(img.size)
        if s > 1:
            img = img.resize((img.width * s, img.height * s), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    data, mime = buf.getvalue(), "image/png"
    if img.mode == "RGB" and len(data) > _PNG_BUDGET:
        jbuf = io.BytesIO()
        img.save(jbuf, format="JPEG", quality=85)
        if len(jbuf.getvalue()) < len(data):
            data, mime = jbuf.getvalue(), "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def thumbnail_png(dataset, sample_id: str, size: int, frame: str | None = None) -> bytes | None:
    """PNG bytes of one sample of ``dataset`` upscaled to ``size`` px, or None without its image.

    Parameters
    ----------
    dataset : ImageDataset or None
        Where the image is (by ``sample_id``); None gives None.
    sample_id : str
        The sample's id.
    size : int
        Longer side of the result in px (the frame included).
    frame : str, optional
        A colour (e.g. ``"#2ca02c"``): draw a 4 px frame of it around the image.

    Returns
    -------
    bytes or None
        None when the dataset has no such id or the image cannot be read.
    """
    if dataset is None:
        return None
    row = dataset.row_of(str(sample_id))
    if row is None:
        return None
    try:
        img = dataset.load_image(row)
    except (InputError, OSError, ValueError):
        return None
    border = 4 if frame else 0
    img = upscale(img, max(1, size - 2 * border))
    if frame:
        img = ImageOps.expand(img.convert("RGB"), border=border, fill=frame)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
