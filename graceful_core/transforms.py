"""Image transforms with Pillow + NumPy/torch only (no torchvision).

The one preprocessing pipeline used for inference *and* for training the sample
models, so the two can never drift apart:

1. convert to ``"L"`` (C = 1) or ``"RGB"`` (C = 3);
2. resize to ``(W, H)`` from ``info.input_size`` with bilinear filtering, only if the
   size differs;
3. scale to [0, 1] (``uint8 / 255``);
4. normalise per channel: ``(x - mean) / std`` with ``mean``/``std`` from ``graceful.json``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from graceful_core.types import ModelInfo


def preprocess(img: Image.Image, info: ModelInfo) -> np.ndarray:
    """Turn one decoded image into a normalised float32 array ``[C, H, W]``.

    Parameters
    ----------
    img : PIL.Image.Image
        The decoded image, any mode.
    info : ModelInfo
        Supplies ``input_size`` (C, H, W), ``mean`` and ``std`` (length C).

    Returns
    -------
    np.ndarray
        float32 array of shape ``info.input_size``.
    """
    c, h, w = info.input_size
    if c not in (1, 3):
        raise ValueError(f"input_size channels must be 1 or 3, got {c}")
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    arr = arr[None, :, :] if c == 1 else arr.transpose(2, 0, 1)
    mean = np.asarray(info.mean, dtype=np.float32).reshape(c, 1, 1)
    std = np.asarray(info.std, dtype=np.float32).reshape(c, 1, 1)
    return np.ascontiguousarray((arr - mean) / std, dtype=np.float32)
