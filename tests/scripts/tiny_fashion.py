"""A tiny Fashion-MNIST look-alike in IDX format, written by the tests (no Debian package needed)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

NAMES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def idx_ubyte(arr: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array, written with ``struct`` (independent of the reader)."""
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def write_tiny_fashion(folder: Path, train_per_class: int = 10, test_per_class: int = 3, seed: int = 0) -> dict:
    """Write the four gzip IDX files; returns the arrays (``train_images``, ``train_labels``, ...).

    Each image is noise plus a class-dependent bright block, so a model can learn something;
    labels cycle 0..9 so every class has the same count.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        labels = np.tile(np.arange(10, dtype=np.uint8), per)
        images = rng.integers(0, 120, (len(labels), 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 2 * y : 2 * y + 6, 4:24] = 200 + y
        images[0, 0, 0], images[-1, -1, -1] = 0, 255  # both extremes survive the PNG round trip
        (folder / NAMES[(split, "images")]).write_bytes(gzip.compress(idx_ubyte(images), mtime=0))
        (folder / NAMES[(split, "labels")]).write_bytes(gzip.compress(idx_ubyte(labels), mtime=0))
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out
