"""Wrong answers that used to exit 0: each trap reproduced, each with a control that shows the right path works."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import graceful_core
from graceful_core.cli.commands import main
from graceful_core.errors import InputError
from graceful_core.io.tables import load_predictions_table

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT / "sample_data" / "fashion"


# --------------------------------------------------------------------------- 1. shuffled DataLoader
class _Linear(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


def test_a_shuffled_dataloader_names_flips_by_dataset_index():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g)
    y = torch.randint(0, 3, (200,), generator=g)
    old, new = _Linear(1), _Linear(2)
    with torch.no_grad():  # independent: both models on the whole tensor, in dataset order
        o, n = old(x).argmax(1).numpy(), new(x).argmax(1).numpy()
    yy = y.numpy()
    expected = sorted(str(i) for i in np.flatnonzero((o == yy) & (n != yy)))
    assert expected  # the pair has negative flips to name
    shuffled = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(5))
    comp = graceful_core.compare(old, new, shuffled)
    assert list(comp.flip_ids.negative) == expected
    # control: the same loader unshuffled gives the same ids
    plain = graceful_core.compare(old, new, DataLoader(TensorDataset(x, y), batch_size=32))
    assert list(plain.flip_ids.negative) == expected


def test_a_loader_whose_order_cannot_be_mapped_back_is_refused():
    from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset

    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    loader = DataLoader(TensorDataset(x, y), batch_size=4, sampler=SubsetRandomSampler(list(range(10))))
    with pytest.raises(InputError, match="SubsetRandomSampler.*shuffle=False"):
        graceful_core.compare(_Linear(1), _Linear(2), loader)


# --------------------------------------------------------------------------- 2. missing rows
def _tables(tmp_path: Path, drop: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ids = [f"img{i:04d}" for i in range(400)]
    y = rng.integers(0, 4, 400)
    old = pd.DataFrame({"id": ids, "label": y, "pred": np.where(rng.random(400) < 0.8, y, (y + 1) % 4)})
    new = pd.DataFrame({"id": ids, "label": y, "pred": np.where(rng.random(400) < 0.85, y, (y + 2) % 4)})
    new = new.iloc[drop:]
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    return tmp_path / "old.csv", tmp_path / "new.csv"


def test_rows_missing_from_one_side_are_an_error(tmp_path, capsys):
    old, new = _tables(tmp_path, drop=40)
    rc = main(["compare", str(old), str(new), "--json", str(tmp_path / "r.json"), "--max-nfr", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "r.json").exists()
    assert "40 rows of old.csv" in err and "--allow-missing" in err


def test_allow_missing_says_so_first_and_in_every_gate(tmp_path, capsys):
    old, new = _tables(tmp_path, drop=40)
    rc = main(["compare", str(old), str(new), "--allow-missing", "--max-nfr", "0.5"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].startswith("WARNING: compared 360 samples only: 40 rows of old.csv")
    gate = [line for line in out if line.startswith("gate max-nfr")]
    assert gate and "on a subset" in gate[0]
    # control: complete tables need no flag and print no warning
    old, new = _tables(tmp_path, drop=0)
    assert main(["compare", str(old), str(new)]) == 0
    assert not capsys.readouterr().out.startswith("WARNING")


# --------------------------------------------------------------------------- 3. score columns in another order
def _scrambled_scores(tmp_path: Path, named: bool) -> tuple[Path, np.ndarray, list[str]]:
    classes = ["cat", "dog", "owl", "yak"]
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((50, 4))
    labels = np.asarray(classes, dtype=object)[logits.argmax(1)]
    order = [2, 0, 3, 1]  # the file's columns follow another class order than the sorted names
    df = pd.DataFrame({"id": [f"s{i}" for i in range(50)], "label": labels})
    for j, c in enumerate(order):
        df[f"logit_{classes[c]}" if named else f"logit_{j}"] = logits[:, c]
    path = tmp_path / ("named.csv" if named else "numbered.csv")
    df.to_csv(path, index=False)
    return path, labels, classes


def test_score_columns_without_pred_or_class_names_are_refused(tmp_path):
    path, _, _ = _scrambled_scores(tmp_path, named=False)
    with pytest.raises(InputError, match="no .pred. column, and its classes have names"):
        load_predictions_table(path)


def test_score_columns_named_by_class_are_read_in_their_own_order(tmp_path):
    path, labels, classes = _scrambled_scores(tmp_path, named=True)
    p = load_predictions_table(path)
    got = np.asarray(p.classes, dtype=object)[p.pred]
    assert (got == labels).all()  # every row: the argmax is the labelled class, whatever the column order


# --------------------------------------------------------------------------- 4. predictions beyond the classes
def test_a_table_prediction_beyond_the_labels_classes_is_refused(tmp_path):
    df = pd.DataFrame({"id": list("abcdefghij"), "label": list(range(10)), "pred": list(range(9)) + [12]})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="'pred' of id 'j' is 12, outside the classes 0..9"):
        load_predictions_table(tmp_path / "t.csv")
    df["pred"] = list(range(10))  # control
    df.to_csv(tmp_path / "t.csv", index=False)
    assert len(load_predictions_table(tmp_path / "t.csv").classes) == 10


def test_an_array_prediction_beyond_the_labels_classes_is_refused():
    y = np.arange(10)
    with pytest.raises(InputError, match="predicts class 12 but the labels use classes 0..9"):
        graceful_core.compare(y.copy(), np.r_[y[:9], 12], (None, y))
    comp = graceful_core.compare(y.copy(), np.r_[y[:9], 0], (None, y))  # control
    assert comp.classes == tuple(str(i) for i in range(10))


# --------------------------------------------------------------------------- 5. output folders
def test_an_output_in_a_folder_that_does_not_exist_is_an_error(tmp_path, capsys):
    old, new = _tables(tmp_path)
    target = tmp_path / "no" / "such" / "dir" / "r.json"
    assert main(["compare", str(old), str(new), "--json", str(target)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


# --------------------------------------------------------------------------- 6. documented callbacks
def _doc_block(path: Path, marker: str) -> str:
    text = path.read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if marker in block:
            return block
    raise AssertionError(f"no code block with {marker!r} in {path}")


class _Monitor:
    """Stands in for FlipMonitor: the real update's keys (its prefix handling is tested below)."""

    def __init__(self, *a, **k) -> None:
        self.real = graceful_core.FlipMonitor(np.array([0, 1, 1, 0]), (None, np.array([0, 1, 1, 1])))
        self.calls = 0

    def update(self, model, step=None, prefix=""):
        self.calls += 1
        return self.real.update(np.array([0, 1, 0, 1]), step=step, prefix=prefix)


@pytest.mark.parametrize("doc", ["README.md", "docs/models.md"])
def test_the_documented_lightning_callback_skips_the_sanity_check_and_logs_under_graceful(doc, monkeypatch):
    lightning = types.SimpleNamespace(Callback=object)
    fake = types.SimpleNamespace(FlipMonitor=_Monitor)
    ns = {"lightning": lightning, "graceful_core": fake}
    exec(_doc_block(ROOT / doc, "lightning.Callback"), ns)
    cb = ns["FlipCallback"]("old", "val")
    logged = []
    model = types.SimpleNamespace(log_dict=logged.append)
    cb.on_validation_epoch_end(types.SimpleNamespace(sanity_checking=True, current_epoch=0), model)
    cb.on_validation_epoch_end(types.SimpleNamespace(sanity_checking=False, current_epoch=0), model)
    assert len(logged) == 1 and cb.monitor.real.history[0]["step"] == 0
    assert logged[0] and all(k.startswith("graceful/") for k in logged[0])


def test_the_documented_keras_callback_keeps_keras_accuracy():
    keras = types.SimpleNamespace(callbacks=types.SimpleNamespace(Callback=object))
    fake = types.SimpleNamespace(FlipMonitor=lambda old_logits, data: _Monitor())
    ns = {"keras": keras, "graceful_core": fake}
    exec(_doc_block(ROOT / "docs" / "models.md", "keras.callbacks.Callback"), ns)
    cb = ns["FlipCallback"]("old_logits", "x", "y")
    cb.model = types.SimpleNamespace(predict=lambda x, verbose=0: None)
    logs = {"accuracy": 0.9, "loss": 0.3}
    cb.on_epoch_end(0, logs)
    assert logs["accuracy"] == 0.9 and logs["graceful/accuracy"] == 0.75 and logs["graceful/nfr"] == 0.25


def test_monitor_prefix_renames_only_the_returned_keys():
    mon = graceful_core.FlipMonitor(np.array([0, 1, 1, 0]), (None, np.array([0, 1, 1, 1])))
    plain = mon.update(np.array([0, 1, 0, 1]), step=3)
    pref = mon.update(np.array([0, 1, 0, 1]), step=3, prefix="graceful/")
    assert pref == {f"graceful/{k}": v for k, v in plain.items()}
    assert "accuracy" in mon.history[1]


# --------------------------------------------------------------------------- 7. messages
def test_train_on_a_pt2_old_model_does_not_call_it_onnx():
    from graceful_core.training.update import _load_old

    with pytest.raises(InputError) as e:
        _load_old(FASHION / "models" / "edge.pt2")
    assert "ONNX" not in e.value.message and ".pt2" in e.value.message and "TorchScript" in e.value.message


def test_monitor_with_too_few_logits_blames_the_old_models_classes():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    old = np.eye(10, dtype=np.float32)
    mon = graceful_core.FlipMonitor(old, (None, y))
    with pytest.raises(InputError) as e:
        mon.update(np.zeros((10, 9), dtype=np.float32))
    assert "classes=" not in e.value.message
    assert "gives 9 logits per sample but the old model has 10 classes" in e.value.message
    assert mon.update(np.eye(10, dtype=np.float32))["accuracy"] == 1.0  # control


def _tiny_module(k: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, k))


def test_save_pt2_refuses_fewer_class_names_than_logits(tmp_path):
    from graceful_core.training.export import save_pt2

    info = {"name": "m", "input_size": [1, 4, 4], "mean": [0.0], "std": [1.0], "classes": list("abcdefghi")}
    with pytest.raises(InputError, match="classes lists 9 names but the model returns 10 logits"):
        save_pt2(_tiny_module(10), info, tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()


def test_export_onnx_takes_a_dict_of_info(tmp_path):
    from graceful_core.models.loader import load_model
    from graceful_core.training.export import export_onnx

    info = {"name": "m", "input_size": [1, 4, 4], "mean": [0.0], "std": [1.0], "classes": list("abc")}
    export_onnx(_tiny_module(3), tmp_path / "m.onnx", info)
    assert list(load_model(tmp_path / "m.onnx").info.classes) == list("abc")


def test_nan_logits_say_nan_and_where():
    logits = np.zeros((6, 3), dtype=np.float32)
    logits[4, 2] = np.nan
    with pytest.raises(InputError) as e:
        graceful_core.compare(logits, np.zeros((6, 3), dtype=np.float32), (None, np.zeros(6, int)))
    assert "NaN in row 4, column 2" in e.value.message


def test_an_underflowing_mcnemar_p_prints_as_a_bound_not_zero():
    from graceful_core.metrics.counts import FlipCounts
    from graceful_core.metrics.significance import mcnemar_p_value
    from graceful_core.metrics.summary import flip_summary
    from graceful_core.report.sentences import significance_verdict

    assert mcnemar_p_value(3000, 0) == 0.0  # the premise: it does underflow
    y = np.zeros(3000, int)
    counts = FlipCounts.from_predictions(y, y, np.ones(3000, int), 2)
    text = significance_verdict(flip_summary(counts)).text
    assert "p < 1e-300" in text and "p = 0" not in text


def test_gate_lines_use_the_vocabularys_formats(tmp_path, capsys):
    old, new = _tables(tmp_path)
    main(["compare", str(old), str(new), "--max-nfr", "0.02", "--min-btc", "0.5"])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("gate ")]
    assert len(lines) == 2
    assert re.search(r"negative flip rate \(NFR\) \d+\.\d\d % > 2\.00 %", lines[0]), lines[0]
    assert re.search(r"\d+\.\d\d % >= 50\.00 %", lines[1]), lines[1]


# --------------------------------------------------------------------------- 8. reproducible files
def test_the_same_weights_give_the_same_model_file(tmp_path):
    from graceful_core.cache import atomic_output
    from graceful_core.training.architectures import build_model
    from graceful_core.training.export import save_torchscript
    from graceful_core.types import ModelInfo

    info = ModelInfo("m", (1, 28, 28), (0.5,), (0.25,), tuple("abc"))
    torch.manual_seed(0)
    model = build_model("edge-cnn", num_classes=3)
    blobs = []
    for name in ("a/new.pt", "a/new.pt", "b/other.pt"):
        out = tmp_path / name
        out.parent.mkdir(exist_ok=True)
        with atomic_output(out) as tmp:  # as `graceful train` writes it
            save_torchscript(model, tmp, info)
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]
    from graceful_core.models.loader import load_model

    assert load_model(tmp_path / "a" / "new.pt").info.classes == ("a", "b", "c")  # control: it still loads


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
