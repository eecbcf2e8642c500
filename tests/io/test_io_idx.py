"""IDX files (MNIST's format): every type code, gzip, and the errors of a broken file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from graceful_core.errors import InputError
from graceful_core.io.idx import read_idx


def idx_bytes(arr: np.ndarray, code: int, fmt: str) -> bytes:
    """An IDX file written independently with ``struct`` (big-endian), not with NumPy's dtypes."""
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + b"".join(struct.pack(">" + fmt, v) for v in arr.reshape(-1).tolist())


@pytest.mark.parametrize(
    "code, fmt, values",
    [
        (0x08, "B", [0, 1, 127, 128, 254, 255]),
        (0x09, "b", [-128, -1, 0, 1, 2, 127]),
        (0x0B, "h", [-32768, -2, 0, 3, 258, 32767]),
        (0x0C, "i", [-(2**31), -5, 0, 7, 65536, 2**31 - 1]),
        (0x0D, "f", [-1.5, 0.0, 0.25, 3.0, 1e10, -2.0]),
        (0x0E, "d", [-1.5, 0.0, 1 / 3, 3.0, 1e300, -2.0]),
    ],
)
def test_every_type_code_reads_back(tmp_path, code, fmt, values):
    arr = np.array(values).reshape(2, 3)
    p = tmp_path / "x-idx2"
    p.write_bytes(idx_bytes(arr, code, fmt))
    got = read_idx(p)
    assert got.shape == (2, 3)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_gzip_is_detected_by_content_and_images_keep_their_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    p = tmp_path / "images-without-gz-suffix"
    p.write_bytes(gzip.compress(idx_bytes(images, 0x08, "B")))
    got = read_idx(p)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got[3, 10], images[3, 10])  # row-major: image, row, column


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x1f\x00\x08\x01\x00\x00\x00\x01\x05", "magic number starts with 1f00"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "the header needs 16 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02", "truncated: shape [4] needs 4 bytes of values, the file has 2"),
        (b"\x00\x00\x0c\x01\x00\x00\x00\x01\x00\x00", "truncated: shape [1] needs 4 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "1 bytes after the last value"),
    ],
)
def test_a_broken_file_is_named_with_its_problem(tmp_path, data, words):
    p = tmp_path / "bad-idx"
    p.write_bytes(data)
    with pytest.raises(InputError) as e:
        read_idx(p)
    assert e.value.path == str(p)
    assert words in e.value.problem


def test_a_truncated_gzip_and_a_missing_file(tmp_path):
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8), 0x08, "B"))[:30])
    with pytest.raises(InputError, match="broken gzip stream"):
        read_idx(p)
    with pytest.raises(InputError, match="no such file"):
        read_idx(tmp_path / "missing")
