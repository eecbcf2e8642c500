"""Folder datasets with a ``classes.json``: readable class names for filesystem-safe folders."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graceful_core.errors import InputError
from graceful_core.io.datasets import CLASSES_FILE, align_classes, load_dataset


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((3, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "clothes"
    _png(root / "t-shirt-top" / "00000.png", 1)
    _png(root / "t-shirt-top" / "00007.png", 2)
    _png(root / "ankle-boot" / "00003.png", 3)
    _png(root / "bag" / "00004.png", 4)
    # File order, not alphabetical: "T-shirt/top" first, as in the source's label order.
    (root / CLASSES_FILE).write_text(
        json.dumps({"t-shirt-top": "T-shirt/top", "trouser": "Trouser", "bag": "Bag", "ankle-boot": "Ankle boot"})
    )
    return root


def test_class_names_come_from_the_file_in_its_order_and_ids_stay_paths(folder):
    ds = load_dataset(folder)
    # "Trouser" has no folder: left out; the others keep the file's order.
    assert ds.classes == ["T-shirt/top", "Bag", "Ankle boot"]
    got = {i: ds.classes[k] for i, k in zip(ds.ids, ds.labels)}
    assert got == {
        "t-shirt-top/00000.png": "T-shirt/top",
        "t-shirt-top/00007.png": "T-shirt/top",
        "ankle-boot/00003.png": "Ankle boot",
        "bag/00004.png": "Bag",
    }


def test_without_the_file_folder_names_are_the_classes(folder):
    (folder / CLASSES_FILE).unlink()
    assert load_dataset(folder).classes == ["ankle-boot", "bag", "t-shirt-top"]


def test_names_reach_a_model_class_list_by_name(folder):
    model_classes = ["T-shirt/top", "Trouser", "Bag", "Ankle boot"]
    ds = align_classes(load_dataset(folder), model_classes)
    assert {i: model_classes[k] for i, k in zip(ds.ids, ds.labels)}["ankle-boot/00003.png"] == "Ankle boot"


def test_the_names_change_the_content_hash(folder):
    named = load_dataset(folder).content_hash()
    (folder / CLASSES_FILE).write_text(json.dumps({"t-shirt-top": "Top", "bag": "Bag", "ankle-boot": "Ankle boot"}))
    assert load_dataset(folder).content_hash() != named


def test_a_zip_with_the_file(folder, tmp_path):
    z = tmp_path / "clothes.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"clothes/{p.relative_to(folder).as_posix()}")
    ds = load_dataset(z)
    assert ds.classes == ["T-shirt/top", "Bag", "Ankle boot"]
    assert sorted(ds.ids) == sorted(load_dataset(folder).ids)


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not a readable JSON file"),
        ('["T-shirt/top"]', "expected a JSON object"),
        ('{"t-shirt-top": "T-shirt/top", "bag": "Bag"}', "'ankle-boot' is not listed"),
        ('{"t-shirt-top": "T-shirt/top", "bag": "", "ankle-boot": "A"}', "must be a non-empty string"),
        ('{"t-shirt-top": "T-shirt/top", "bag": 3, "ankle-boot": "A"}', "must be a non-empty string"),
        ('{"t-shirt-top": "X", "bag": "X", "ankle-boot": "A"}', "class name 'X' is given to both"),
        ('{"t-shirt-top": "T", "t-shirt-top": "U", "bag": "B", "ankle-boot": "A"}', "listed more than once"),
    ],
)
def test_a_bad_file_is_named(folder, text, words):
    (folder / CLASSES_FILE).write_text(text)
    with pytest.raises(InputError) as e:
        load_dataset(folder)
    assert e.value.path == str(folder / CLASSES_FILE)
    assert words in e.value.problem
