"""The Fashion-MNIST build (scripts/fashion_sample.py) on a tiny IDX file written by the test:
layout, pixels, classes.json, manifest metadata, preprocessing, cache, determinism, errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.transforms import preprocess
from tests.scripts.tiny_fashion import NAMES, write_tiny_fashion

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FOLDERS = ["t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


fs = _load("fashion_sample")
build = _load("build_sample_data")


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny IDX files and one quick build of them (cache A)."""
    base = tmp_path_factory.mktemp("fashion")
    arrays = write_tiny_fashion(base / "idx", train_per_class=10, test_per_class=3)
    argv = [
        "--only",
        "fashion",
        "--quick",
        "--fashion-dir",
        str(base / "idx"),
        "--out",
        str(base / "out"),
        "--cache",
        str(base / "cache"),
        "--jobs",
        "1",
    ]
    assert build.main(argv) == 0
    return {"base": base, "arrays": arrays, "out": base / "out" / "fashion", "argv": argv}


def test_folder_names_are_safe_and_classes_keep_the_label_order():
    assert list(fs.FASHION_FOLDERS) == FOLDERS
    assert list(fs.FASHION_CLASSES) == CLASSES


def test_test_pngs_hold_every_image_with_its_exact_pixels(tiny):
    a, test = tiny["arrays"], tiny["out"] / "test"
    files = sorted(test.glob("*/*.png"))
    assert len(files) == len(a["test_labels"]) == 30
    for f in files:
        i = int(f.stem)
        assert f.parent.name == FOLDERS[a["test_labels"][i]]
        with Image.open(f) as img:
            assert img.mode == "L" and img.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(img), a["test_images"][i])
    assert json.loads((test / "classes.json").read_text()) == dict(zip(FOLDERS, CLASSES))


def test_the_loader_reads_readable_names_and_path_ids(tiny):
    ds = load_dataset(tiny["out"] / "test")
    assert ds.classes == CLASSES
    a = tiny["arrays"]
    assert sorted(ds.ids) == sorted(f"{FOLDERS[y]}/{i:05d}.png" for i, y in enumerate(a["test_labels"]))
    assert all(ds.classes[k] == CLASSES[a["test_labels"][int(i.split("/")[1][:5])]] for i, k in zip(ds.ids, ds.labels))


def test_training_subset_is_the_first_images_of_each_class(tiny):
    a = tiny["arrays"]
    got = sorted(int(p.stem) for p in (tiny["out"] / "train").glob("*/*.png"))
    expected = sorted(
        i for k in range(10) for i in np.flatnonzero(a["train_labels"] == k)[: fs.QUICK.app_train_per_class]
    )
    assert got == expected
    assert load_dataset(tiny["out"] / "train").classes == CLASSES


def test_manifest_joins_the_folder_and_its_metadata_is_the_pixels(tiny):
    a = tiny["arrays"]
    df = pd.read_csv(tiny["out"] / "test.csv", dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id", "path", "label", "ink_coverage", "brightness"]
    assert sorted(df["id"]) == sorted(load_dataset(tiny["out"] / "test").ids)
    manifest = load_dataset(tiny["out"] / "test.csv")
    assert manifest.content_hash() == load_dataset(tiny["out"] / "test").content_hash()  # same ids, labels, bytes
    for row in df.itertuples():
        i = int(row.id.split("/")[1][:5])
        px = a["test_images"][i].astype(int)
        assert row.path == f"test/{row.id}" and row.label == CLASSES[a["test_labels"][i]]
        ink = [v for v in px.ravel() if v > 32]  # brute force over the 784 pixels
        share, mean = len(ink) / 784, (sum(ink) / len(ink) if ink else 0.0)
        assert row.ink_coverage == (
            "low (< 35 % of pixels)" if share < 0.35 else "medium (35-55 %)" if share < 0.55 else "high (>= 55 %)"
        )
        assert row.brightness == (
            "dark (mean < 140)" if mean < 140 else "medium (140-180)" if mean < 180 else "bright (mean >= 180)"
        )


def test_idx_tensors_are_what_preprocess_makes_of_the_pngs(tiny):
    a = tiny["arrays"]
    mean, std = fs.normalisation(a["train_images"])
    info = fs.model_info("x", mean, std)
    X = fs.to_tensor(a["test_images"], mean, std).numpy()
    for f in sorted((tiny["out"] / "test").glob("*/*.png")):
        with Image.open(f) as img:
            np.testing.assert_array_equal(preprocess(img, info), X[int(f.stem)])  # bit for bit


def test_models_tables_and_numbers_are_written(tiny):
    models = tiny["out"] / "models"
    names = ["old", "old-reseed", "new", "new-pc", "new-bct", "v3", "edge", "new-ft"]
    files = {n: f"{n}.pt" for n in names} | {"v3": "v3.onnx", "edge": "edge.pt2"}
    assert sorted(p.name for p in models.iterdir() if p.suffix != ".json") == sorted(files.values())
    assert all(fs.model_file(models, n).name == f for n, f in files.items())
    from graceful_core.models.loader import load_model

    m = load_model(models / "new.pt")
    assert list(m.info.classes) == CLASSES and list(m.info.input_size) == [1, 28, 28]
    assert sorted(p.stem for p in (tiny["out"] / "predictions").glob("*.parquet")) == sorted(names)
    summary = json.loads((models / "summary.json").read_text())
    assert set(summary["pairs"]) == {f"{a} -> {b}" for a, b in fs.PAIRS}
    selection = json.loads((models / "selection.json").read_text())
    assert (
        fs.PCSetting(selection["new_pc"]["alpha"], selection["new_pc"]["beta"], selection["new_pc"]["lam"])
        in fs.QUICK.pc_grid
    )
    assert selection["validation"]["images"] == 10 * fs.QUICK.val_per_class


def test_a_rerun_only_reexports_and_a_fresh_cache_gives_the_same_files(tiny, capsys):
    first = _tree(tiny["out"])
    capsys.readouterr()
    assert build.main(tiny["argv"]) == 0  # same cache: nothing is trained again
    log = capsys.readouterr().out
    assert "queued" not in log and "cached" in log
    assert _tree(tiny["out"]) == first
    other = tiny["base"] / "out2"
    argv = [*tiny["argv"]]
    argv[argv.index("--out") + 1] = str(other)
    argv[argv.index("--cache") + 1] = str(tiny["base"] / "cache2")
    assert build.main(argv) == 0  # everything trained again from scratch
    assert _tree(other / "fashion") == first


def test_updating_one_model_in_place_starts_from_the_shipped_old_and_gives_the_full_builds_files(tiny, capsys):
    """``--models new-ft`` on a copy of the built sample, with an empty cache: old is read from the shipped
    old.pt (not retrained) and new-ft, its table and the summary are what the full build wrote."""
    import shutil

    first = _tree(tiny["out"])
    copy = tiny["base"] / "out-update"
    shutil.copytree(tiny["out"], copy / "fashion")
    (copy / "fashion" / "models" / "new-ft.pt").unlink()
    (copy / "fashion" / "predictions" / "new-ft.parquet").unlink()
    argv = [*tiny["argv"], "--models", "new-ft"]
    argv[argv.index("--out") + 1] = str(copy)
    argv[argv.index("--cache") + 1] = str(tiny["base"] / "cache-update")
    capsys.readouterr()
    assert build.main(argv) == 0
    log = capsys.readouterr().out
    assert "old = the weights of the shipped old.pt" in log and "old: queued" not in log and "new-ft: queued" in log
    assert _tree(copy / "fashion") == first
    # control: an unknown model is refused by name, before any training
    argv[argv.index("--models") + 1] = "nope"
    assert build.main(argv) == 2


def test_weights_in_the_cache_load_with_weights_only(tiny):
    files = sorted((tiny["base"] / "cache").glob("new-pc-*.pt"))
    assert files
    model = fs.load_weights("large-cnn-28", files[0])
    assert model.embed.__name__ == "embed"


def test_selection_rules():
    grid = (
        fs.PCSetting(1.0, 5.0, 0.5),
        fs.PCSetting(1.0, 5.0, 1.0),
        fs.PCSetting(1.0, 5.0, 2.0),
        fs.PCSetting(0.0, 6.0, 1.0),
    )
    cfg = fs.FashionConfig(pc_grid=grid, bct_lambdas=(1.0, 2.0), pc_max_error_increase=0.005)
    val = {
        "new": {"error_rate": 0.080},
        "new-pc lam=0.5": {"error_rate": 0.081, "negative_flips": 150},
        "new-pc lam=1": {"error_rate": 0.084, "negative_flips": 120},
        "new-pc lam=2": {"error_rate": 0.086, "negative_flips": 90},  # too costly
        "new-pc alpha=0 beta=6 lam=1": {"error_rate": 0.0855, "negative_flips": 100},  # too costly
        "new-bct lam=1": {"compatible": False},
    }
    assert fs.choose_pc(cfg, val)[0] == fs.PCSetting(1.0, 5.0, 1.0)
    val["new-pc alpha=0 beta=6 lam=1"]["error_rate"] = 0.085  # now within half a point
    assert fs.choose_pc(cfg, val)[0] == fs.PCSetting(0.0, 6.0, 1.0)
    for k in ("new-pc lam=0.5", "new-pc lam=1", "new-pc alpha=0 beta=6 lam=1"):
        val[k]["error_rate"] = 0.09
    setting, rule = fs.choose_pc(cfg, val)  # none qualifies: the lowest error
    assert setting == fs.PCSetting(1.0, 5.0, 2.0) and "none qualified" in rule
    assert fs.choose_bct_lambda(cfg, val)[0] is None  # the build then tries lambda 2
    val["new-bct lam=2"] = {"compatible": True}
    assert fs.choose_bct_lambda(cfg, val)[0] == 2.0


def test_missing_files_name_the_apt_command(tmp_path):
    write_tiny_fashion(tmp_path)
    (tmp_path / NAMES[("test", "labels")]).unlink()
    with pytest.raises(InputError) as e:
        fs.load_fashion(tmp_path)
    assert "apt-get install dataset-fashion-mnist" in e.value.problem
    assert e.value.path.endswith("t10k-labels-idx1-ubyte.gz")
    assert (
        build.main(
            [
                "--only",
                "fashion",
                "--fashion-dir",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path / "o"),
                "--cache",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )


def test_wrong_shapes_are_refused(tmp_path):
    from tests.scripts.tiny_fashion import idx_ubyte

    write_tiny_fashion(tmp_path)
    import gzip

    (tmp_path / NAMES[("train", "labels")]).write_bytes(gzip.compress(idx_ubyte(np.zeros(7, np.uint8))))
    with pytest.raises(InputError, match="expected 100 uint8 labels"):
        fs.load_fashion(tmp_path)
    (tmp_path / NAMES[("train", "labels")]).write_bytes(gzip.compress(idx_ubyte(np.full(100, 10, np.uint8))))
    with pytest.raises(InputError, match="label 10 is not a class index"):
        fs.load_fashion(tmp_path)
