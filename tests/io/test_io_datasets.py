"""Datasets: folder, zip and manifest layouts, slices, content hash, class alignment, errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from graceful_core.errors import InputError
from graceful_core.io import datasets as dsmod
from graceful_core.io.datasets import align_classes, load_dataset, natural_sorted


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))


def _png(path: Path, value: int, size: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(path)
    return path


#: (id, class) of the small folder built by ``folder``; values make every image distinct.
LAYOUT = [("2/a.png", "2"), ("2/b.jpg", "2"), ("10/c.png", "10"), ("10/sub/d.png", "10"), ("cat/e.bmp", "cat")]


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "imgs"
    for k, (rel, _) in enumerate(LAYOUT):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP"}[p.suffix]
        Image.fromarray(np.full((4, 4), 10 * k, dtype=np.uint8), mode="L").save(p, format=fmt)
    (root / "2" / "notes.txt").write_text("not an image")
    _png(root / "2" / ".hidden.png", 1)
    _png(root / ".cache" / "x.png", 1)
    _png(root / "loose.png", 1)  # directly in the root: not a sample
    return root


def _expected_labels(ds) -> list[str]:
    return [ds.classes[k] for k in ds.labels]


# --------------------------------------------------------------------------- folder
def test_folder_layout_ids_labels_and_natural_class_order(folder):
    ds = load_dataset(folder)
    assert ds.classes == ["2", "10", "cat"]  # numbers by value, then words
    assert sorted(ds.ids) == sorted(i for i, _ in LAYOUT)
    assert dict(zip(ds.ids, _expected_labels(ds))) == dict(LAYOUT)
    assert all(os.path.isabs(f) and Path(f).is_file() for f in ds.files)
    assert [Path(f).relative_to(folder).as_posix() for f in ds.files] == ds.ids
    assert len(ds) == 5 and ds.slices is None and ds.source == str(folder) and ds.name == "imgs"
    assert ds.labels.dtype == np.int64


def test_natural_sort():
    assert natural_sorted(["10", "2", "1", "b", "a10", "a9", "A1"]) == ["1", "2", "10", "A1", "a9", "a10", "b"]


def test_images_are_decoded_only_on_demand(folder):
    bad = folder / "2" / "a.png"
    bad.write_bytes(bad.read_bytes()[:30])
    ds = load_dataset(folder)  # listing does not decode
    i = ds.ids.index("2/a.png")
    with pytest.raises(InputError, match="not a readable image") as e:
        ds.load_image(i)
    assert "a.png" in e.value.message
    j = ds.ids.index("cat/e.bmp")
    assert np.asarray(ds.load_image(j)).tolist() == [[40] * 4] * 4  # 10 * index 4 in LAYOUT


def test_slices_file(folder):
    pd.DataFrame({"id": ["2/a.png", "cat/e.bmp"], "slice": ["night", "day"]}).to_csv(folder / "slices.csv", index=False)
    ds = load_dataset(folder)
    got = dict(zip(ds.ids, ds.slices))
    assert got["2/a.png"] == "night" and got["cat/e.bmp"] == "day" and got["10/c.png"] == dsmod.NO_SLICE
    pd.DataFrame({"id": ["nope.png"], "slice": ["x"]}).to_csv(folder / "slices.csv", index=False)
    with pytest.raises(InputError, match="'nope.png' is not an image") as e:
        load_dataset(folder)
    assert "slices.csv" in e.value.message


def test_missing_path_not_a_dataset_and_empty(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        load_dataset(tmp_path / "nowhere")
    assert "nowhere" in e.value.message
    txt = tmp_path / "data.txt"
    txt.write_text("x")
    with pytest.raises(InputError, match="not a dataset") as e:
        load_dataset(txt)
    assert "data.txt" in e.value.message
    empty = tmp_path / "empty"
    (empty / "0").mkdir(parents=True)
    (empty / "0" / "readme.md").write_text("no images here")
    with pytest.raises(InputError, match="no images found") as e:
        load_dataset(empty)
    assert e.value.path == str(empty)


# --------------------------------------------------------------------------- content hash
def test_content_hash_is_stable_and_sees_every_byte_and_label(folder, tmp_path):
    h0 = load_dataset(folder).content_hash()
    assert load_dataset(folder).content_hash() == h0  # stable across loads
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert load_dataset(copy).content_hash() == h0  # content, not location

    f = folder / "10" / "c.png"
    raw = bytearray(f.read_bytes())
    raw[-20] ^= 0x01  # one bit of one image (same size)
    f.write_bytes(bytes(raw))
    h1 = load_dataset(folder).content_hash()
    assert h1 != h0
    raw[-20] ^= 0x01
    f.write_bytes(bytes(raw))
    assert load_dataset(folder).content_hash() == h0  # back to the same bytes


def test_content_hash_changes_with_a_label_not_with_row_order(tmp_path):
    root = tmp_path / "m"
    for k in range(3):
        _png(root / "img" / f"{k}.png", 50 * k)
    rows = pd.DataFrame({"id": ["a", "b", "c"], "path": [f"img/{k}.png" for k in range(3)], "label": ["x", "y", "x"]})
    rows.to_csv(root / "m.csv", index=False)
    h0 = load_dataset(root / "m.csv").content_hash()
    rows.iloc[::-1].to_csv(root / "m.csv", index=False)
    assert load_dataset(root / "m.csv").content_hash() == h0
    rows.assign(label=["x", "x", "x"]).to_csv(root / "m.csv", index=False)
    assert load_dataset(root / "m.csv").content_hash() != h0


def test_content_hash_reads_each_file_once(folder, monkeypatch):
    import builtins

    ds = load_dataset(folder)
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *a, **k):
        opened.append(os.fspath(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    ds.content_hash()
    ds.content_hash()  # memoised
    assert sorted(opened) == sorted(ds.files)


# --------------------------------------------------------------------------- zip
def _zip_folder(folder: Path, out: Path, top: str | None) -> Path:
    with zipfile.ZipFile(out, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                z.write(p, f"{top}/{rel}" if top else rel)
    return out


@pytest.mark.parametrize("top", [None, "digits"])
def test_zip_matches_the_folder_and_is_extracted_once(folder, tmp_path, monkeypatch, top):
    z = _zip_folder(folder, tmp_path / "set.zip", top)
    a, b = load_dataset(folder), load_dataset(z)
    assert b.ids == a.ids and b.classes == a.classes and np.array_equal(b.labels, a.labels)
    assert b.content_hash() == a.content_hash()
    assert b.source == str(z) and b.name == "set"
    target = tmp_path / "cache" / "datasets" / hashlib.sha256(z.read_bytes()).hexdigest()
    assert target.is_dir() and all(f.startswith(str(target)) for f in b.files)

    def boom(*a, **k):
        raise AssertionError("extracted again")

    monkeypatch.setattr(dsmod, "safe_extract", boom)
    assert load_dataset(z).ids == a.ids  # reused


def test_bad_image_in_a_zip_is_named_inside_the_zip(folder, tmp_path):
    (folder / "cat" / "e.bmp").write_bytes(b"BM broken")
    z = _zip_folder(folder, tmp_path / "up.zip", "digits")
    ds = load_dataset(z)
    with pytest.raises(InputError) as e:
        ds.load_image(ds.ids.index("cat/e.bmp"))
    assert e.value.path == f"{z}/digits/cat/e.bmp"


def test_zip_without_images_names_the_zip(tmp_path):
    z = tmp_path / "empty.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(InputError, match="no images found") as e:
        load_dataset(z)
    assert e.value.path == str(z)


# --------------------------------------------------------------------------- manifest
@pytest.fixture
def manifest_dir(tmp_path) -> Path:
    root = tmp_path / "man"
    for k in range(4):
        _png(root / "pics" / f"{k}.png", 60 * k)
    return root


def _manifest(root: Path, suffix: str, **cols) -> Path:
    df = pd.DataFrame(cols)
    path = root / f"manifest{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_manifest_layout(manifest_dir, suffix):
    m = _manifest(
        manifest_dir,
        suffix,
        id=["007", "b", "c", "d"],
        path=[f"pics/{k}.png" for k in range(4)],
        label=["dog", "cat", "dog", "cat"],
        slice=["s1", "s2", "", "s1"],
    )
    ds = load_dataset(m)
    assert ds.ids == ["007", "b", "c", "d"]  # strings kept as written, manifest order
    assert ds.classes == ["cat", "dog"]
    assert _expected_labels(ds) == ["dog", "cat", "dog", "cat"]
    assert list(ds.slices) == ["s1", "s2", dsmod.NO_SLICE, "s1"]
    assert np.asarray(ds.load_image(3)).max() == 180  # 60 * 3
    assert ds.source == str(m)


def test_manifest_labels_that_look_like_numbers_stay_names(manifest_dir):
    m = _manifest(
        manifest_dir, ".csv", id=list("abcd"), path=[f"pics/{k}.png" for k in range(4)], label=["10", "2", "2", "01"]
    )
    ds = load_dataset(m)
    assert ds.classes == ["01", "2", "10"] and _expected_labels(ds) == ["10", "2", "2", "01"]


@pytest.mark.parametrize(
    "cols, words",
    [
        ({"id": ["a"], "path": ["../outside.png"], "label": ["x"]}, "leaves the manifest's folder"),
        ({"id": ["a"], "path": ["/etc/passwd"], "label": ["x"]}, "leaves the manifest's folder"),
        ({"id": ["a"], "path": ["pics/../../x.png"], "label": ["x"]}, "leaves the manifest's folder"),
        ({"id": ["a"], "path": ["pics/missing.png"], "label": ["x"]}, "does not exist"),
        ({"id": ["a", "a"], "path": ["pics/0.png", "pics/1.png"], "label": ["x", "y"]}, "duplicate id 'a'"),
        ({"id": ["a"], "file": ["pics/0.png"], "label": ["x"]}, "missing column(s) ['path']"),
        ({"id": [], "path": [], "label": []}, "no images found"),
        ({"id": ["a"], "path": ["pics/0.png"], "label": [""]}, "empty 'label'"),
    ],
)
def test_manifest_errors_name_the_manifest(manifest_dir, tmp_path, cols, words):
    (tmp_path / "outside.png").write_bytes(b"x")
    m = _manifest(manifest_dir, ".csv", **cols)
    with pytest.raises(InputError) as e:
        load_dataset(m)
    assert e.value.path == str(m) and words in e.value.problem


# --------------------------------------------------------------------------- align
def test_align_classes_reindexes_by_name(folder):
    ds = load_dataset(folder)
    model = ["cat", "dog", "10", "2"]
    al = align_classes(ds, model)
    assert al.classes == model
    assert [model[k] for k in al.labels] == _expected_labels(ds)  # same names, new indices
    assert al.ids == ds.ids and al.files == ds.files
    assert al.content_hash() == ds.content_hash()
    assert align_classes(ds, list(ds.classes)) is ds


def test_align_classes_mismatch_names_the_dataset(folder):
    os.rename(folder / "cat", folder / "three")
    ds = load_dataset(folder)
    with pytest.raises(InputError) as e:
        align_classes(ds, [str(k) for k in range(11)])
    assert e.value.path == str(folder)
    assert "class names differ from the model's" in e.value.problem and "['three']" in e.value.problem
