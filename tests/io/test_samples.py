"""Bundled samples (graceful_core.io.samples), their app specs (graceful_ui.bundled_specs) and the worst class (summary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graceful_core.io.samples import bundled_samples, sample_of_path
from graceful_core.metrics.counts import FlipCounts
from graceful_core.report.sentences import classes_hurt, worst_class_sentence
from graceful_core.report.text import text_summary
from graceful_core.results.comparison import Comparison, FlipIds


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _layout(root: Path, fashion: bool = True, digits: bool = True) -> None:
    """The folders and file names of both samples (empty stand-ins: only paths are read)."""
    if fashion:
        _touch(root / "fashion" / "test.csv")
        (root / "fashion" / "test" / "shirt").mkdir(parents=True)
        (root / "fashion" / "train").mkdir(parents=True)
        for name in ("old.pt", "new.pt", "v3.onnx", "edge.pt2"):
            _touch(root / "fashion" / "models" / name)
        for name in ("old.parquet", "new.parquet"):
            _touch(root / "fashion" / "predictions" / name)
    if digits:
        (root / "digits" / "test" / "0").mkdir(parents=True)
        (root / "digits" / "train").mkdir(parents=True)
        for name in ("old.pt", "new.pt", "v3.pt"):
            _touch(root / "models" / name)
        for name in ("old.csv", "new.csv"):
            _touch(root / "predictions" / name)


@pytest.mark.parametrize(
    "fashion, digits, names",
    [(True, True, ["fashion", "digits"]), (False, True, ["digits"]), (True, False, ["fashion"]), (False, False, [])],
)
def test_fashion_comes_first_and_only_present_samples_are_listed(tmp_path, fashion, digits, names):
    _layout(tmp_path, fashion, digits)
    assert [s.name for s in bundled_samples(tmp_path)] == names


def test_models_list_old_then_new_then_the_rest(tmp_path):
    _layout(tmp_path)
    fashion = bundled_samples(tmp_path)[0]
    assert [p.name for p in fashion.models()] == ["old.pt", "new.pt", "edge.pt2", "v3.onnx"]
    assert (
        fashion.test_data == tmp_path / "fashion" / "test.csv" and fashion.test_folder == tmp_path / "fashion" / "test"
    )
    assert sample_of_path(tmp_path / "fashion" / "models" / "v3.onnx", bundled_samples(tmp_path)) == fashion
    assert sample_of_path(tmp_path / "models" / "v3.pt", bundled_samples(tmp_path)).name == "digits"
    assert sample_of_path(tmp_path / "elsewhere.pt", bundled_samples(tmp_path)) is None


def test_specs_open_on_fashion_and_keep_the_digits_ids(tmp_path, monkeypatch):
    from graceful_ui.bundled_specs import bundled_specs, pair_spec, spec_sample
    from graceful_ui.spec_ids import resolve_spec

    _layout(tmp_path)
    monkeypatch.setenv("GRACEFUL_SAMPLE_DATA", str(tmp_path))
    specs = bundled_specs()
    ids = [s.id for s in specs]
    assert ids[0] == "fashion:new"
    assert specs[0].old == str(tmp_path / "fashion" / "models" / "old.pt")
    assert specs[0].data == str(tmp_path / "fashion" / "test.csv")
    assert ids == [
        "fashion:new",
        "fashion:edge",
        "fashion:v3",
        "fashion-table:new",
        "sample:new",
        "sample:v3",
        "table:new",
    ]
    assert pair_spec("old", "v3").id == "sample:v3"
    assert pair_spec("new", "v3").id == "pair:new:v3"
    fp = resolve_spec("fashion-pair:new:v3")
    assert fp is not None and Path(fp.new).name == "v3.onnx" and fp.data == str(tmp_path / "fashion" / "test.csv")
    assert resolve_spec("fashion-pair:new:../x") is None and resolve_spec("nosuch-pair:new:v3") is None
    assert spec_sample(fp).name == "fashion" and spec_sample(resolve_spec("sample:new")).name == "digits"


def _comparison(y, old, new, classes):
    counts = FlipCounts.from_predictions(np.asarray(y), np.asarray(old), np.asarray(new), len(classes))
    return Comparison("old", "new", tuple(classes), counts, FlipIds.complete([], []))


def test_classes_hurt_match_a_brute_force_count():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 5, 400)
    old = np.where(rng.random(400) < 0.8, y, rng.integers(0, 5, 400))
    new = np.where(rng.random(400) < 0.8, y, rng.integers(0, 5, 400))
    classes = ["a", "b", "c", "d", "e"]
    hurt = classes_hurt(_comparison(y, old, new, classes))
    brute = {c: sum(1 for i in range(400) if y[i] == k and old[i] == k and new[i] != k) for k, c in enumerate(classes)}
    total = sum(brute.values())
    assert [h.negative_flips for h in hurt] == sorted((v for v in brute.values() if v), reverse=True)
    for h in hurt:
        assert h.negative_flips == brute[h.name]
        assert h.support == int(np.sum(y == classes.index(h.name)))
        assert h.share == pytest.approx(brute[h.name] / total)


def test_worst_class_sentence_and_cli_line():
    # class "shirt": 3 of 4 break; "coat": 1 of 2; "bag": none
    y = [0, 0, 0, 0, 1, 1, 2]
    old = [0, 0, 0, 0, 1, 1, 2]
    new = [1, 1, 2, 0, 0, 1, 2]
    comp = _comparison(y, old, new, ["shirt", "coat", "bag"])
    text = worst_class_sentence(comp)
    assert text == (
        "The update hurts shirt most: 3 of its 4 images break (NFR 75.00 %, 75 % of all negative flips). "
        "Next: coat (1)."
    )
    assert text in text_summary(comp).splitlines()
    assert worst_class_sentence(_comparison([0, 1], [0, 1], [0, 1], ["a", "b"])) is None


def test_a_comparison_finds_its_sample_by_class_names(tmp_path):
    import json

    from graceful_core.io.samples import sample_of_classes

    _layout(tmp_path)
    (tmp_path / "fashion" / "test" / "classes.json").write_text(json.dumps({"shirt": "Shirt"}))
    samples = bundled_samples(tmp_path)
    assert sample_of_classes(["Shirt"], samples).name == "fashion"
    assert sample_of_classes(["0"], samples).name == "digits"  # the class folder of digits/test
    assert sample_of_classes(["cat"], samples) is None


def test_each_bundled_sample_names_a_committed_experiment():
    """The Mitigate page shows the experiment only if its file is there: the path must be the repository's results/."""
    from graceful_core.io.samples import RESULTS

    assert Path(__file__).resolve().parents[2] / "results" == RESULTS
    for s in bundled_samples(Path(__file__).resolve().parents[2] / "sample_data"):
        assert s.experiment is not None and s.experiment.is_file(), s.name
