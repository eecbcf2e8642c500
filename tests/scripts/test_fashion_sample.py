"""The committed Fashion-MNIST sample tells the story of sample_data/README.md (a better model that breaks
images, the remedies, a compatible and an incompatible embedding), checked by brute-force NumPy on the committed
predictions tables (not by graceful's metric functions), plus the model files against those tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import brute_force_hit1

ROOT = Path(__file__).resolve().parents[2]
FASHION = ROOT / "sample_data" / "fashion"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
UPPER_BODY = {"T-shirt/top", "Pullover", "Coat", "Shirt"}
MODELS = ["old", "old-reseed", "new", "new-pc", "new-bct", "v3", "edge", "new-ft"]

#: File of each model (scripts/fashion_sample.py FORMATS): every format graceful reads is in the sample.
FILES = {name: f"{name}.pt" for name in MODELS} | {"v3": "v3.onnx", "edge": "edge.pt2"}


def test_the_sample_is_committed_with_one_file_per_model():
    """The app and the tests need no rebuild: every model file and table is there (``models/new.*`` is one file)."""
    files = sorted(p.name for p in (FASHION / "models").iterdir() if p.suffix in (".pt", ".onnx", ".pt2"))
    # transition.pt2 is a remedy (a mix of old.pt and new.pt), not a model of its own: no predictions table
    assert files == sorted([*FILES.values(), "transition.pt2"])
    assert sorted(p.stem for p in (FASHION / "predictions").glob("*.parquet")) == sorted(MODELS)


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, np.ndarray]]:
    """id, label, pred (class names) and logits / embedding matrices of every model, rows sorted by id."""
    out = {}
    for name in MODELS:
        t = pq.read_table(FASHION / "predictions" / f"{name}.parquet")
        ids = np.array(t.column("id").to_pylist(), dtype=object)
        order = np.argsort(ids)
        out[name] = {
            "id": ids[order],
            "label": np.array(t.column("label").to_pylist(), dtype=object)[order],
            "pred": np.array(t.column("pred").to_pylist(), dtype=object)[order],
            "logits": np.array(t.column("logits").to_pylist(), dtype=np.float64)[order],
            "embedding": np.array(t.column("embedding").to_pylist(), dtype=np.float64)[order],
        }
    return out


def _acc(t) -> float:
    return float(np.mean(t["pred"] == t["label"]))


def _neg(old, new) -> np.ndarray:
    return (old["pred"] == old["label"]) & (new["pred"] != new["label"])


def test_tables_cover_all_test_images_with_the_same_ids_and_labels(tables):
    ref = tables["old"]
    assert len(ref["id"]) == 10_000 and len(set(ref["id"])) == 10_000
    assert set(ref["label"]) == set(CLASSES)
    assert all(np.sum(ref["label"] == c) == 1000 for c in CLASSES)
    for name in MODELS:
        t = tables[name]
        assert np.array_equal(t["id"], ref["id"]) and np.array_equal(t["label"], ref["label"])
        # pred is the argmax of the logits (first maximum), as class names
        assert np.array_equal(t["pred"], np.array(CLASSES, dtype=object)[np.argmax(t["logits"], axis=1)])
    folder_ids = sorted(p.relative_to(FASHION / "test").as_posix() for p in (FASHION / "test").glob("*/*.png"))
    assert folder_ids == sorted(ref["id"])


def test_new_is_clearly_better_yet_breaks_hundreds_of_upper_body_images(tables):
    old, new = tables["old"], tables["new"]
    assert _acc(new) - _acc(old) >= 0.03  # several points
    neg = _neg(old, new)
    assert neg.sum() >= 100
    share = np.mean([lab in UPPER_BODY for lab in old["label"][neg]])
    assert share >= 0.6, f"only {share:.0%} of the negative flips are upper-body garments"
    per_class = {c: int(np.sum(neg & (old["label"] == c))) for c in CLASSES}
    top4 = sorted(per_class, key=per_class.get, reverse=True)[:4]
    assert len(set(top4) & UPPER_BODY) >= 3, per_class


def test_new_pc_is_the_experiments_choice_and_its_numbers_are_the_readmes(tables):
    """new-pc is trained as the remedy experiment chose on validation (the trained single model with the lowest
    validation NFR, results/mitigation-fashion.json); its test flips and error, counted here by brute force,
    are the ones sample_data/README.md states against the goal (NFR at most 0.85 x new's at error at most
    new's + 0.5 points)."""
    old, new, pc = tables["old"], tables["new"], tables["new-pc"]
    experiment = json.loads((ROOT / "results" / "mitigation-fashion.json").read_text())
    selection = json.loads((FASHION / "models" / "selection.json").read_text())
    best = experiment["best_single_model"]["train"]
    assert {k: selection["new_pc"][k] for k in best if k != "method"} == {
        k: v for k, v in best.items() if k != "method"
    }
    assert selection["new_pc"]["method"] == best["method"] == "focal-distillation"
    n_pc, n_new = int(_neg(old, pc).sum()), int(_neg(old, new).sum())
    err_pc, err_new = 1 - _acc(pc), 1 - _acc(new)
    readme = (ROOT / "sample_data" / "README.md").read_text()
    assert f"breaks **{n_pc}**" in readme and f"{err_pc * 100:.2f} %" in readme
    goal_met = n_pc <= 0.85 * n_new and err_pc <= err_new + 0.005
    assert ("meets the goal" in readme) == goal_met


def test_new_bct_is_index_compatible_with_old_and_new_is_not(tables):
    y = tables["old"]["label"]
    old_self = brute_force_hit1(tables["old"]["embedding"], tables["old"]["embedding"], y)
    bct_cross = brute_force_hit1(tables["new-bct"]["embedding"], tables["old"]["embedding"], y)
    new_cross = brute_force_hit1(tables["new"]["embedding"], tables["old"]["embedding"], y)
    assert bct_cross > old_self
    assert new_cross < 0.5 * old_self
    summary = json.loads((FASHION / "models" / "summary.json").read_text())["pairs"]
    assert summary["old -> new-bct"]["cross_test_top1_new_old"] == pytest.approx(bct_cross, abs=2e-4)
    assert summary["old -> new-bct"]["self_test_top1_old"] == pytest.approx(old_self, abs=2e-4)


def test_edge_shares_v3s_space_and_reseeding_old_already_flips_images(tables):
    y = tables["old"]["label"]
    edge_on_v3 = brute_force_hit1(tables["edge"]["embedding"], tables["v3"]["embedding"], y)
    unrelated = brute_force_hit1(tables["new"]["embedding"], tables["v3"]["embedding"], y)
    assert edge_on_v3 > 0.7 > 0.3 > unrelated
    assert _acc(tables["v3"]) > _acc(tables["new"])
    # retraining old with another seed already flips as many photos as the update (221 vs 205): the churn floor
    churn = _neg(tables["old"], tables["old-reseed"]).sum()
    assert churn >= 100 and abs(_acc(tables["old-reseed"]) - _acc(tables["old"])) < 0.01


def test_new_ft_is_old_trained_further_and_breaks_at_least_a_hundred_photos(tables):
    """new-ft: old's architecture (same parameter names and shapes: weights can be interpolated), better than old,
    and still more than 100 photos old got right break."""
    import torch

    old = dict(torch.jit.load(str(FASHION / "models" / "old.pt")).state_dict())
    ft = dict(torch.jit.load(str(FASHION / "models" / "new-ft.pt")).state_dict())
    assert list(ft) == list(old) and all(ft[k].shape == old[k].shape for k in old)
    assert any(not torch.equal(ft[k], old[k]) for k in old)  # control: trained further, not a copy
    assert _neg(tables["old"], tables["new-ft"]).sum() >= 100
    assert _acc(tables["new-ft"]) > _acc(tables["old"])
    summary = json.loads((FASHION / "models" / "summary.json").read_text())
    assert summary["models"]["new-ft"]["init"] == "old" and summary["models"]["new-ft"]["arch"] == "small-cnn-28"


def test_summary_json_matches_the_tables(tables):
    summary = json.loads((FASHION / "models" / "summary.json").read_text())
    for name in MODELS:
        assert summary["models"][name]["test_accuracy"] == pytest.approx(_acc(tables[name]), abs=1e-6)
    for pair, numbers in summary["pairs"].items():
        a, b = pair.split(" -> ")
        assert numbers["negative_flips"] == int(_neg(tables[a], tables[b]).sum())


@pytest.fixture(scope="module")
def first_images():
    """The first 300 test images (by id) as a dataset, through graceful's loader."""
    from graceful_core.io.datasets import ImageDataset, load_dataset

    ds = load_dataset(FASHION / "test")
    keep = np.argsort(np.array(ds.ids, dtype=object))[:300]
    return ImageDataset(
        name="first",
        ids=[ds.ids[i] for i in keep],
        labels=ds.labels[keep],
        classes=ds.classes,
        files=[ds.files[i] for i in keep],
        source=ds.source,
    )


def test_model_files_give_their_tables(tables, first_images):
    """TorchScript, ONNX and torch.export files, run by graceful on the PNGs, give the committed tables."""
    from graceful_core.inference import predict
    from graceful_core.models.loader import load_model

    for name in ("old", "new-pc", "v3", "edge", "new-ft"):
        p = predict(load_model(FASHION / "models" / FILES[name]), first_images, use_cache=False)
        t = tables[name]
        assert list(p.ids) == list(t["id"][:300])
        np.testing.assert_allclose(p.scores, t["logits"][:300], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(p.embedding, t["embedding"][:300], atol=1e-4, err_msg=name)
