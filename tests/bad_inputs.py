"""Builders of hostile or broken input files, for the CLI's exit-2 tests."""

from __future__ import annotations

import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares width x height (8-bit gray) with a tiny, wrong IDAT."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def first_png(root: Path) -> Path:
    return sorted(root.rglob("*.png"))[0]


def zip_with_member(path: Path, name: str, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("digits/0/ok.png", data)
        z.writestr(name, data)
    return path


def zip_bomb(path: Path, declared: int = 50 * 2**30) -> Path:
    """A small zip whose headers declare a huge uncompressed size."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("digits/0/big.png", b"\x00" * 10_000)
    raw = bytearray(path.read_bytes())
    # Patch the uncompressed size in the local header (offset 22) and central directory (offset 24).
    local = raw.find(b"PK\x03\x04")
    raw[local + 22 : local + 26] = struct.pack("<I", 0xFFFFFFF0)
    central = raw.find(b"PK\x01\x02")
    raw[central + 24 : central + 28] = struct.pack("<I", 0xFFFFFFF0)
    path.write_bytes(bytes(raw))
    return path


def pickled_checkpoint(path: Path) -> Path:
    torch.save({"weight": torch.zeros(3, 3)}, path)
    return path


def table(path: Path, df: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def scores_frame(ids, k: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((len(ids), k))
    df = pd.DataFrame({"id": list(ids)})
    for j in range(k):
        df[f"logit_{j}"] = logits[:, j]
    return df
