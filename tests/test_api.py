"""The Python API (``graceful_core.compare``) and the flip monitor.

Expected values come from the command line on files written from the same modules, from
NumPy computations on the modules' own outputs (argmax, masks, brute-force nearest
neighbours), or from hand-made arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import graceful_core
from graceful_core.errors import InputError
from graceful_core.io.datasets import align_classes, load_dataset
from graceful_core.models.loader import load_model
from graceful_core.training.architectures import build_model
from graceful_core.training.export import save_pt2, save_torchscript
from graceful_core.training.trainer import tensors_from_dataset, train_model
from graceful_core.types import ModelInfo
from tests.helpers import assert_reports_equal, brute_force_hit1, run_cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
OLD_PT, NEW_PT, TEST_DATA = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt", SAMPLE / "digits" / "test"


@pytest.fixture(scope="module")
def sample():
    if not (OLD_PT.is_file() and NEW_PT.is_file() and TEST_DATA.is_dir()):
        pytest.skip("bundled sample data is missing")
    old_file, new_file = load_model(OLD_PT), load_model(NEW_PT)
    # Plain nn.Modules with the sample models' trained weights (what a notebook user holds).
    old = build_model("small-cnn", num_classes=10, embedding_dim=64)
    old.load_state_dict(old_file.module.state_dict())
    new = build_model("large-cnn", num_classes=10, embedding_dim=64)
    new.load_state_dict(new_file.module.state_dict())
    dataset = align_classes(load_dataset(TEST_DATA), list(old_file.info.classes))
    X, y = tensors_from_dataset(dataset, old_file.info)
    return {"old": old.eval(), "new": new.eval(), "info": old_file.info, "dataset": dataset, "X": X, "y": y}


# ----------------------------------------------------------------- compare
def test_three_lines_in_a_notebook_equal_the_cli_on_exported_files(sample, tmp_path):
    """Acceptance: two nn.Modules on a DataLoader; the report equals the CLI's on the same modules as files."""
    X, y, ds = sample["X"], sample["y"], sample["dataset"]

    loader = DataLoader(TensorDataset(X, y), batch_size=64)
    comp = graceful_core.compare(sample["old"], sample["new"], loader)
    report = comp.to_dict()

    for fmt, save in (
        ("pt2", lambda m, p: save_pt2(m, sample["info"], p)),
        ("pt", lambda m, p: save_torchscript(m, p, sample["info"])),
    ):
        paths = [tmp_path / f"old.{fmt}", tmp_path / f"new.{fmt}"]
        save(sample["old"], paths[0])
        save(sample["new"], paths[1])
        out = tmp_path / f"cli-{fmt}.json"
        r = run_cli("compare", *paths, "--data", TEST_DATA, "--json", out, cache=tmp_path / "cache")
        assert r.returncode == 0, r.stderr
        cli = json.loads(out.read_text())
        # The DataLoader has no file names: its samples are "0".."N-1" in the dataset's order.
        by_index = {str(i): sid for i, sid in enumerate(ds.ids)}
        mapped = dict(
            report,
            old=cli["old"],
            new=cli["new"],
            negative_flips=sorted(by_index[i] for i in report["negative_flips"]),
            positive_flips=sorted(by_index[i] for i in report["positive_flips"]),
        )
        # The what-if's cross-fitting halves are a hash of the ids, which differ here: the curves must agree,
        # the recommendation is made on other halves.
        mapped["mitigation_whatif"] = dict(
            report["mitigation_whatif"], recommended=cli["mitigation_whatif"]["recommended"]
        )
        if fmt == "pt2":  # a .pt2 file has no head(e): no "old head on new embeddings" entry
            mapped["compatibility"] = {
                k: v for k, v in report["compatibility"].items() if k != "old_head_on_new_embeddings"
            }
        assert_reports_equal(mapped, cli)
    assert report["negative_flips"] and report["compatibility"]["old_head_on_new_embeddings"]


def test_compare_with_ids_and_names_is_the_cli_report_exactly(sample, tmp_path):
    X, y, ds = sample["X"], sample["y"], sample["dataset"]
    comp = graceful_core.compare(
        sample["old"],
        sample["new"],
        (X, y),
        ids=ds.ids,
        old_name="old.pt",
        new_name="new.pt",
        classes=sample["info"].classes,
    )
    cli = graceful_core.compare(OLD_PT, NEW_PT, TEST_DATA).to_dict()
    assert_reports_equal(comp.to_dict(), cli)


def test_compare_numbers_against_numpy_on_the_modules_outputs(sample):
    X, y = sample["X"], sample["y"]
    with torch.no_grad():
        o = sample["old"](X).argmax(1).numpy()
        n = sample["new"](X).argmax(1).numpy()
    yy = y.numpy()
    comp = graceful_core.compare(sample["old"], sample["new"], TensorDataset(X, y), batch_size=50)
    s = comp.summary
    nf = int(((o == yy) & (n != yy)).sum())
    pf = int(((o != yy) & (n == yy)).sum())
    assert s.n_negative_flips == nf and s.n_positive_flips == pf
    assert s.negative_flip_rate == pytest.approx(nf / len(yy))
    assert s.new_accuracy == pytest.approx((n == yy).mean())
    assert comp.to_dict()["negative_flips"] == sorted(str(i) for i in np.flatnonzero((o == yy) & (n != yy)))


def test_modules_on_a_dataset_path_need_info_and_then_match_the_files(sample):
    with pytest.raises(InputError, match="info=ModelInfo"):
        graceful_core.compare(sample["old"], NEW_PT, TEST_DATA)
    comp = graceful_core.compare(sample["old"], NEW_PT, TEST_DATA, info=sample["info"])
    cli = graceful_core.compare(OLD_PT, NEW_PT, TEST_DATA)
    assert comp.to_dict()["negative_flips"] == cli.to_dict()["negative_flips"]
    assert comp.dataset is not None and len(comp.dataset) == len(sample["dataset"])
    info_dict = json.loads(
        json.dumps(
            {
                "name": "m",
                "input_size": [1, 8, 8],
                "mean": list(sample["info"].mean),
                "std": list(sample["info"].std),
                "classes": list(sample["info"].classes),
            }
        )
    )
    sample["old"].graceful_info = info_dict
    try:
        again = graceful_core.compare(sample["old"], NEW_PT, TEST_DATA)
    finally:
        del sample["old"].graceful_info
    assert again.to_dict()["negative_flips"] == cli.to_dict()["negative_flips"]


def test_arrays_of_predictions_hand_case():
    y = np.array([0, 1, 2, 2, 1, 0])
    old = np.array([0, 1, 2, 0, 0, 0])  # right on 0, 1, 2, 5
    new = np.array([0, 2, 2, 2, 1, 1])  # right on 0, 2, 3, 4
    comp = graceful_core.compare(old, new, (None, y), classes=["cat", "dog", "owl"])
    r = comp.to_dict()
    assert r["negative_flips"] == ["1", "5"] and r["positive_flips"] == ["3", "4"]
    assert r["negative_flip_rate"] == pytest.approx(2 / 6)
    assert r["classes"] == ["cat", "dog", "owl"]
    # (old, new) pairs: (0,0) (1,2) (2,2) (0,2) (0,1) (0,1); row = old, column = new
    assert r["transition_matrix"] == [[1, 2, 1], [0, 0, 1], [0, 0, 1]]


def test_logits_arrays_and_torch_tensors(sample):
    X, y = sample["X"], sample["y"]
    with torch.no_grad():
        lo, ln = sample["old"](X), sample["new"](X)
    a = graceful_core.compare(lo, ln.numpy(), (None, y))
    b = graceful_core.compare(sample["old"], sample["new"], (X, y))
    assert a.to_dict()["negative_flips"] == b.to_dict()["negative_flips"]
    assert a.arrays.old_conf is not None  # logits give confidences
    mixed = graceful_core.compare(lo.argmax(1), sample["new"], (X, y))
    assert mixed.to_dict()["negative_flips"] == b.to_dict()["negative_flips"]


def test_arrays_on_a_dataset_path_follow_the_dataset_order(sample):
    ds = sample["dataset"]
    with torch.no_grad():
        lo = sample["old"](sample["X"]).numpy()
    comp = graceful_core.compare(lo, NEW_PT, TEST_DATA)
    cli = graceful_core.compare(OLD_PT, NEW_PT, TEST_DATA)
    assert comp.to_dict()["negative_flips"] == cli.to_dict()["negative_flips"]
    with pytest.raises(InputError, match="rows"):
        graceful_core.compare(lo[:-1], NEW_PT, TEST_DATA)
    assert len(ds) == lo.shape[0]


class _TupleNet(nn.Module):
    def __init__(self, k: int = 3, d: int = 4) -> None:
        super().__init__()
        self.body = nn.Linear(5, d)
        self.cls = nn.Linear(d, k)

    def forward(self, x):
        e = self.body(x)
        return self.cls(e), e


def test_forward_returning_logits_and_embedding_gives_a_cross_test():
    torch.manual_seed(0)
    x = torch.randn(60, 5)
    y = torch.arange(60) % 3
    comp = graceful_core.compare(_TupleNet(), _TupleNet(), (x, y))
    assert comp.compatibility is not None and comp.arrays.old_embedding.shape == (60, 4)


@pytest.mark.parametrize(
    ("old", "new", "data", "fragment"),
    [
        (np.zeros((4, 3)), np.zeros((4, 2)), (None, np.zeros(4, int)), "logits per sample"),
        (np.zeros(4, int), np.zeros(5, int), (None, np.zeros(4, int)), "rows"),
        (np.zeros(4, int), np.zeros(4, int), (None, np.array([0, 1, 2, 9])), None),
        (np.zeros((4, 3)), np.zeros((4, 3)), (None, np.array([0, 1, 2, 3])), "labels must be class indices"),
        (np.zeros((4, 3, 1)), np.zeros(4, int), (None, np.zeros(4, int)), "expected logits"),
        ("nope.pt", np.zeros(4, int), (None, np.zeros(4, int)), "no such file"),
        (np.full((2, 2), np.nan), np.zeros(2, int), (None, np.zeros(2, int)), "finite"),
        (np.zeros(3, int), np.zeros(3, int), [1, 2], "expected a dataset path"),
        # no data and no labels: a comparison without labels, which needs the class count
        (np.zeros(3, int), np.zeros(3, int), None, "pass classes="),
        (object(), np.zeros(3, int), (None, np.zeros(3, int)), "expected a model file"),
    ],
)
def test_bad_inputs_are_input_errors(old, new, data, fragment):
    if fragment is None:  # labels up to 9 with predictions of class 0: K = 10, no error
        assert graceful_core.compare(old, new, data).n_samples == 4
        return
    with pytest.raises(InputError) as info:
        graceful_core.compare(old, new, data)
    assert fragment in str(info.value), str(info.value)


def test_a_model_file_needs_a_dataset_path(sample):
    with pytest.raises(InputError, match="needs a dataset path") as info:
        graceful_core.compare(OLD_PT, sample["new"], (sample["X"], sample["y"]))
    assert info.value.path == os.fspath(OLD_PT)


def test_device_cuda_without_cuda_is_an_input_error(monkeypatch):
    from graceful_core.models import devices

    monkeypatch.setattr(devices, "_torch_cuda_available", lambda: False)
    monkeypatch.setattr(devices, "_ort_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(InputError, match="cuda"):
        graceful_core.compare(np.zeros(2, int), np.zeros(2, int), (None, np.zeros(2, int)), device="cuda")


def test_module_training_flag_is_restored(sample):
    new = sample["new"]
    new.train()
    try:
        graceful_core.compare(sample["old"], new, (sample["X"][:20], sample["y"][:20]))
        assert new.training
    finally:
        new.eval()


# ----------------------------------------------------------------- FlipMonitor
class _Counting(nn.Module):
    """Counts forward calls of the wrapped module (embed is not exposed: logits only)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_monitor_numbers_against_numpy(sample):
    X, y = sample["X"], sample["y"]
    mon = graceful_core.FlipMonitor(sample["old"], (X, y))
    stats = mon.update(sample["new"], step=7)
    with torch.no_grad():
        o, n = sample["old"](X).argmax(1).numpy(), sample["new"](X).argmax(1).numpy()
        eo, en = sample["old"].embed(X).numpy(), sample["new"].embed(X).numpy()
    yy = y.numpy()
    assert stats["step"] == 7 and stats["n_samples"] == len(yy)
    assert stats["accuracy"] == pytest.approx((n == yy).mean())
    assert stats["error_rate"] == pytest.approx((n != yy).mean())
    assert stats["nfr"] == pytest.approx(((o == yy) & (n != yy)).mean())
    assert stats["pfr"] == pytest.approx(((o != yy) & (n == yy)).mean())
    assert stats["btc"] == pytest.approx(((o == yy) & (n == yy)).sum() / (o == yy).sum())
    assert stats["n_negative_flips"] == int(((o == yy) & (n != yy)).sum())
    assert stats["cross_top1"] == pytest.approx(brute_force_hit1(en, eo, yy), abs=1e-9)
    assert stats["old_top1"] == pytest.approx(brute_force_hit1(eo, eo, yy), abs=1e-9)
    assert mon.history == [stats]
    assert all(isinstance(v, (int, float)) for v in stats.values())  # loggable as it is


def test_monitor_runs_the_old_model_once_and_the_new_one_once_per_update(sample):
    X, y = sample["X"], sample["y"]
    old, new = _Counting(sample["old"]), _Counting(sample["new"])
    loader = DataLoader(TensorDataset(X, y), batch_size=100)
    mon = graceful_core.FlipMonitor(old, loader)
    batches = (len(y) + 99) // 100
    assert old.calls == batches
    new.train()
    for _ in range(3):
        mon.update(new)
    assert old.calls == batches and new.calls == 3 * batches
    assert new.training  # the training loop goes on in training mode
    assert [h["step"] for h in mon.history] == [0, 1, 2]
    assert "cross_top1" not in mon.history[0]  # no embeddings from these wrappers
    assert list(mon.history_frame()["nfr"]) == [h["nfr"] for h in mon.history]


def test_monitor_reads_a_shuffled_loader_in_dataset_order(sample):
    loader = DataLoader(TensorDataset(sample["X"], sample["y"]), batch_size=100, shuffle=True)
    mon = graceful_core.FlipMonitor(sample["old"], loader)
    assert np.array_equal(mon.labels, np.asarray(sample["y"]))  # the dataset's order, not the shuffled one
    with pytest.raises(InputError, match="shuffle=False"):  # an array cannot follow a shuffled order
        graceful_core.FlipMonitor(np.zeros(len(sample["y"]), int), loader)


def test_monitor_on_a_dataset_path_with_a_model_file(sample):
    mon = graceful_core.FlipMonitor(OLD_PT, TEST_DATA)
    stats = mon.update(NEW_PT)
    cli = graceful_core.compare(OLD_PT, NEW_PT, TEST_DATA).summary
    assert stats["nfr"] == pytest.approx(cli.negative_flip_rate)
    assert stats["n_negative_flips"] == cli.n_negative_flips


class _ReversedClasses(nn.Module):
    """The wrapped model with its logits in reverse class order (a model trained with another class list)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).flip(1)


def test_monitor_on_a_new_model_whose_classes_come_in_reverse_order(sample, tmp_path):
    info = sample["info"]
    reversed_info = ModelInfo(info.name, info.input_size, info.mean, info.std, tuple(reversed(info.classes)))
    path = tmp_path / "new_reversed.pt2"
    save_pt2(_ReversedClasses(sample["new"]).eval(), reversed_info, path)
    mon = graceful_core.FlipMonitor(OLD_PT, TEST_DATA)
    stats = mon.update(path)
    # Independent: the same new model saved with the old class order gives the same numbers.
    save_pt2(sample["new"], info, tmp_path / "new.pt2")
    straight = graceful_core.FlipMonitor(OLD_PT, TEST_DATA).update(tmp_path / "new.pt2")
    assert stats["n_negative_flips"] == straight["n_negative_flips"]
    assert stats["negative_flip_rate"] == pytest.approx(straight["negative_flip_rate"])
    assert stats["accuracy"] == pytest.approx(straight["accuracy"])
    # And against NumPy on the module's own argmax, mapped back to the old class order.
    with torch.no_grad():
        o = sample["old"](sample["X"]).argmax(1).numpy()
        n = sample["new"](sample["X"]).argmax(1).numpy()
    yy = sample["y"].numpy()
    assert stats["n_negative_flips"] == int(((o == yy) & (n != yy)).sum())
    assert stats["n_positive_flips"] == int(((o != yy) & (n == yy)).sum())


def test_monitor_names_its_numbers_as_the_json_report_does(sample):
    from graceful_core.comparing.monitor import METRIC_ALIASES

    X, y = sample["X"], sample["y"]
    stats = graceful_core.FlipMonitor(sample["old"], (X, y)).update(sample["new"])
    with torch.no_grad():
        o, n = sample["old"](X).argmax(1).numpy(), sample["new"](X).argmax(1).numpy()
    yy = y.numpy()
    assert stats["negative_flip_rate"] == pytest.approx(((o == yy) & (n != yy)).mean())
    assert stats["positive_flip_rate"] == pytest.approx(((o != yy) & (n == yy)).mean())
    assert stats["backward_trust_compatibility"] == pytest.approx(((o == yy) & (n == yy)).sum() / (o == yy).sum())
    # The JSON report of the same pair uses the same keys for the same numbers.
    report = graceful_core.compare(sample["old"], sample["new"], (X, y)).to_dict()
    for key in (
        "negative_flip_rate",
        "positive_flip_rate",
        "backward_trust_compatibility",
        "n_negative_flips",
        "n_positive_flips",
    ):
        assert stats[key] == pytest.approx(report[key]), key
    # The short names stay as aliases of the long ones (loggers and run records written before keep working).
    assert METRIC_ALIASES == {
        "nfr": "negative_flip_rate",
        "pfr": "positive_flip_rate",
        "btc": "backward_trust_compatibility",
    }
    for short, long in METRIC_ALIASES.items():
        assert stats[short] == stats[long]


def test_trainer_reports_nfr_per_epoch_and_trains_the_same_weights(sample):
    X, y = sample["X"][:200], sample["y"][:200]
    kw = {"epochs": 2, "seed": 3, "num_classes": 10}
    plain = train_model("edge-cnn", X, y, **kw)
    mon = graceful_core.FlipMonitor(sample["old"], (X, y))
    seen = []
    watched = train_model("edge-cnn", X, y, epoch_end=mon.update, progress=lambda d, t, info: seen.append(info), **kw)
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values()):
        assert torch.equal(a, b)  # monitoring changes nothing in training
    assert [s["epoch"] for s in seen] == [1, 2] and all("nfr" in s and "error_rate" in s for s in seen)
    assert [h["step"] for h in mon.history] == [1, 2]


def test_train_update_with_a_monitor_set(sample, tmp_path):
    from graceful_core.training.update import TrainParams, train_update

    result = train_update(
        OLD_PT,
        SAMPLE / "digits" / "train",
        tmp_path / "n.pt",
        TrainParams(method="plain", arch="edge-cnn", epochs=2, seed=0),
        monitor=TEST_DATA,
    )
    assert len(result.history) == 2
    last = result.history[-1]
    comp = graceful_core.compare(OLD_PT, tmp_path / "n.pt", TEST_DATA)
    assert last["nfr"] == pytest.approx(comp.summary.negative_flip_rate)
    assert last["error_rate"] == pytest.approx(comp.summary.new_error_rate)


def test_info_dict_is_validated():
    from graceful_core.comparing.in_memory import _module_info

    with pytest.raises(InputError, match="graceful.json"):
        _module_info(nn.Linear(2, 2), {"name": "x"}, "old")
    good = {"name": "x", "input_size": [1, 2, 2], "mean": [0.0], "std": [1.0], "classes": ["a", "b"]}
    assert _module_info(nn.Linear(2, 2), good, "old") == ModelInfo("x", (1, 2, 2), (0.0,), (1.0,), ("a", "b"))


@pytest.mark.parametrize(
    "module",
    [
        "graceful_core.api",
        "graceful_core.comparing.monitor",
        "graceful_core.models.pt2_pickles",
        "graceful_core.models.pt2_program",
        "graceful_core.models.devices",
    ],
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
