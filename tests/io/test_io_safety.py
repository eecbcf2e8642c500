"""Hostile inputs: zip members and bombs, image bombs and broken images, file hashing."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graceful_core.errors import InputError
from graceful_core.io import hashing, images, safezip
from graceful_core.io.datasets import load_dataset
from tests import bad_inputs as bad


def _png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


# --------------------------------------------------------------------------- zip
@pytest.mark.parametrize(
    "member",
    [
        "../evil.png",
        "digits/../../evil.png",
        "/tmp/evil.png",
        "C:\\evil.png",
        "C:/evil.png",
        "\\\\server\\share\\evil.png",
        "..\\evil.png",
    ],
)
def test_unsafe_member_paths_are_rejected_naming_zip_and_member(tmp_path, member):
    z = bad.zip_with_member(tmp_path / "bad.zip", member)
    with pytest.raises(InputError) as e:
        safezip.check_zip(z)
    assert e.value.path == str(z)
    assert repr(member) in e.value.problem and "unsafe path" in e.value.problem


def test_safe_extract_writes_nothing_when_one_member_is_unsafe(tmp_path):
    z = _zip(tmp_path / "a.zip", [("digits/0/ok.png", b"x"), ("../evil.png", b"y")])
    dest = tmp_path / "out"
    with pytest.raises(InputError):
        safezip.safe_extract(z, dest)
    assert not (tmp_path / "evil.png").exists()
    assert not dest.exists() or not any(dest.rglob("*"))  # the check ran before any extraction


def test_symlink_member_is_rejected(tmp_path):
    info = zipfile.ZipInfo("digits/0/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "link.zip", [("digits/0/ok.png", b"x"), (info, b"/etc/passwd")])
    with pytest.raises(InputError, match="symbolic link") as e:
        safezip.check_zip(z)
    assert "link.zip" in e.value.message and "digits/0/link.png" in e.value.message


def test_encrypted_member_is_rejected(tmp_path):
    z = _zip(tmp_path / "enc.zip", [("digits/0/secret.png", b"xx")])
    raw = bytearray(z.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 6] |= 0x1  # general purpose flag bit 0: encrypted
    raw[central + 8] |= 0x1
    z.write_bytes(bytes(raw))
    assert zipfile.ZipFile(z).infolist()[0].flag_bits & 0x1
    with pytest.raises(InputError, match="encrypted"):
        safezip.check_zip(z)


def test_too_many_members(tmp_path, monkeypatch):
    monkeypatch.setattr(safezip, "MAX_MEMBERS", 5)
    z = _zip(tmp_path / "many.zip", [(f"d/0/{i}.png", b"x") for i in range(6)])
    with pytest.raises(InputError, match="too many members") as e:
        safezip.check_zip(z)
    assert e.value.path == str(z)
    ok = _zip(tmp_path / "five.zip", [(f"d/0/{i}.png", b"x") for i in range(5)])
    assert len(safezip.check_zip(ok)) == 5


def test_bomb_with_lying_4gib_header_is_rejected_before_extraction(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    z = bad.zip_bomb(tmp_path / "bomb.zip")
    declared = zipfile.ZipFile(z).infolist()[0].file_size
    assert declared > 2**32 - 100  # what the header claims (about 4 GiB)
    with pytest.raises(InputError) as e:
        safezip.check_zip(z)
    assert "bomb.zip" in e.value.message and "digits/0/big.png" in e.value.message
    with pytest.raises(InputError, match="bomb.zip"):
        load_dataset(z)
    extracted = list((tmp_path / "cache" / "datasets").rglob("*")) if (tmp_path / "cache" / "datasets").exists() else []
    assert [p for p in extracted if p.is_file()] == []


def test_total_declared_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(safezip, "MAX_TOTAL_BYTES", 25)
    z = _zip(tmp_path / "big.zip", [("d/0/a.png", b"x" * 10), ("d/0/b.png", b"x" * 10), ("d/0/c.png", b"x" * 10)])
    with pytest.raises(InputError, match="more than 25 bytes") as e:
        safezip.check_zip(z)
    assert "d/0/c.png" in e.value.problem  # the member that crosses 25 = 10 + 10 + 10


def test_high_compression_ratio_over_one_mib_is_rejected(tmp_path):
    zeros = b"\x00" * (2 << 20)  # 2 MiB of zeros deflate about 1000:1
    z = _zip(tmp_path / "ratio.zip", [("d/0/a.png", zeros)], compression=zipfile.ZIP_DEFLATED)
    info = zipfile.ZipFile(z).infolist()[0]
    assert info.file_size / info.compress_size > 200
    with pytest.raises(InputError, match="compression ratio"):
        safezip.check_zip(z)
    # the same ratio on a small member is fine (below the 1 MiB threshold)
    small = _zip(tmp_path / "small.zip", [("d/0/a.png", b"\x00" * 100_000)], compression=zipfile.ZIP_DEFLATED)
    assert len(safezip.check_zip(small)) == 1


def test_header_that_understates_the_size_aborts_extraction(tmp_path):
    data = bytes(range(256)) * 40  # 10240 bytes, stored
    z = _zip(tmp_path / "liar.zip", [("d/0/a.png", data)])
    raw = bytearray(z.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")
    raw[local + 22 : local + 26] = struct.pack("<I", 100)  # declared uncompressed size
    raw[central + 24 : central + 28] = struct.pack("<I", 100)
    z.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    with pytest.raises(InputError) as e:
        safezip.safe_extract(z, dest)
    assert "liar.zip" in e.value.message and "d/0/a.png" in e.value.message
    written = [p for p in dest.rglob("*") if p.is_file()]
    assert all(p.stat().st_size <= 100 for p in written)


def test_not_a_zip(tmp_path):
    f = tmp_path / "data.zip"
    f.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not a valid zip") as e:
        safezip.check_zip(f)
    assert e.value.path == str(f)


def test_safe_extract_round_trip(tmp_path):
    members = [("top/0/a.png", b"alpha"), ("top/1/b.png", b"beta" * 1000), ("top/1/sub/c.png", b"")]
    z = _zip(tmp_path / "ok.zip", members + [("top/empty/", b"")], compression=zipfile.ZIP_DEFLATED)
    dest = tmp_path / "out"
    written = safezip.safe_extract(z, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == sorted(n for n, _ in members)
    for name, data in members:
        assert (dest / name).read_bytes() == data
    assert (dest / "top" / "empty").is_dir()


# --------------------------------------------------------------------------- images
def test_truncated_png_names_the_file(tmp_path):
    f = tmp_path / "0010.png"
    f.write_bytes(_png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8))[:40])
    with pytest.raises(InputError, match="not a readable image") as e:
        images.open_image(f)
    assert "0010.png" in e.value.message


def test_cut_png_data_is_not_silently_padded(tmp_path):
    rng = np.random.default_rng(0)
    full = _png_bytes(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    f = tmp_path / "cut.png"
    f.write_bytes(full[: len(full) // 2])  # header intact, pixel data cut in half
    with pytest.raises(InputError, match="not a readable image"):
        images.open_image(f)


def test_huge_png_header_is_rejected_quickly(tmp_path, monkeypatch):
    """Rejected from the header alone: no pixel is decoded and only the file's few bytes are read."""
    from PIL import ImageFile

    f = bad.png_header_only(tmp_path / "huge.png", 50000, 50000)
    decoded, read = [], []

    def no_decoding(self, *args, **kwargs):
        decoded.append(self.size)
        raise AssertionError("a 2.5-gigapixel image was decoded")

    real_open = open

    class CountingFile(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            read.append(len(data))
            return data

        def readinto(self, b):
            n = super().readinto(b)
            read.append(n or 0)
            return n

    def counting_open(file, mode="r", *args, **kwargs):
        if os.fspath(file) == os.fspath(f) and "b" in mode:
            return io.BufferedReader(CountingFile(file, "rb"))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(InputError, match="decompression-bomb guard") as e:
        images.open_image(f)
    assert decoded == [] and 0 < sum(read) <= f.stat().st_size
    assert "huge.png" in e.value.message and "2,500,000,000" in e.value.problem


@pytest.mark.parametrize("side", [7000, 10000])  # 49 M (graceful's limit) and 100 M pixels (Pillow's warning)
def test_headers_above_the_project_limit_are_rejected_before_decoding(tmp_path, side):
    f = bad.png_header_only(tmp_path / "big.png", side, side)
    with pytest.raises(InputError) as e:
        images.open_image(f)
    assert f"{side * side:,}" in e.value.problem and f"{images.MAX_PIXELS:,}" in e.value.problem


def test_pillow_global_limit_is_untouched(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InputError):
        images.open_image(bad.png_header_only(tmp_path / "h.png", 10000, 10000))
    assert before == Image.MAX_IMAGE_PIXELS and before is not None


def test_open_image_from_bytes_and_modes():
    grey = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    img = images.open_image(_png_bytes(grey), "g.png")
    assert img.mode == "L" and np.array_equal(np.asarray(img), grey)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    img = images.open_image(_png_bytes(rgba, "RGBA"), "c.png")
    assert img.mode == "RGB" and np.asarray(img)[0, 0].tolist() == [200, 0, 0]
    pal = Image.fromarray(grey).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    assert images.open_image(buf.getvalue(), "p.png").mode == "RGB"


def test_sixteen_bit_grey_is_scaled_not_clipped():
    vals = np.array([[0, 257 * 100], [65535, 257]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(vals).save(buf, format="PNG")
    img = images.open_image(buf.getvalue(), "deep.png")
    assert img.mode == "L"
    assert np.asarray(img).tolist() == [[0, 100], [255, 1]]  # v // 257


def test_not_an_image_and_missing(tmp_path):
    f = tmp_path / "notes.png"
    f.write_text("hello")
    with pytest.raises(InputError, match="not a readable image") as e:
        images.open_image(f)
    assert "notes.png" in e.value.message
    with pytest.raises(InputError, match="no such file"):
        images.open_image(tmp_path / "nope.png")


# --------------------------------------------------------------------------- hashing
def test_file_sha256_matches_hashlib_and_is_memoised(tmp_path, monkeypatch):
    hashing.clear_memo()
    data = np.random.default_rng(1).integers(0, 256, (5 << 19) + 17, dtype=np.uint8).tobytes()  # 2.5 MiB + 17
    f = tmp_path / "model.pt"
    f.write_bytes(data)
    assert hashing.file_sha256(f) == hashlib.sha256(data).hexdigest()

    def no_read(path):
        raise AssertionError("read again")

    monkeypatch.setattr(hashing, "stream_sha256", no_read)
    assert hashing.file_sha256(str(f)) == hashlib.sha256(data).hexdigest()  # from the memo
    monkeypatch.undo()
    new = data[:-1] + bytes([data[-1] ^ 1])
    f.write_bytes(new)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert hashing.file_sha256(f) == hashlib.sha256(new).hexdigest()


def test_file_sha256_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        hashing.file_sha256(tmp_path / "gone.pt")
    assert "gone.pt" in e.value.message
