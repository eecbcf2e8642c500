"""`train` then `compare` end to end through the command line, determinism, and bad input (exit 2).

The trained model is checked independently of graceful's inference code: its logits are
recomputed here with ``torch.jit.load`` on images preprocessed with plain PIL + NumPy,
and the report's negative flip rate is recounted from those logits.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import bad_inputs as bad
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
OLD = SAMPLE / "models" / "old.pt"
CLASSES = ("0", "3", "8")
PER_CLASS = 20
EPOCHS = 2


def subset(src: Path, dst: Path, per_class: int) -> Path:
    """Copy the first ``per_class`` images of each class in :data:`CLASSES`."""
    for c in CLASSES:
        (dst / c).mkdir(parents=True)
        for f in sorted((src / c).glob("*.png"))[:per_class]:
            shutil.copy(f, dst / c / f.name)
    return dst


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    if not OLD.is_file():
        pytest.skip("bundled sample model sample_data/models/old.pt is missing")
    base = tmp_path_factory.mktemp("train-cli")
    return {
        "base": base,
        "cache": base / "cache",
        "train": subset(SAMPLE / "digits" / "train", base / "train", PER_CLASS),
        "test": subset(SAMPLE / "digits" / "test", base / "test", PER_CLASS),
    }


def train(work: dict, out: Path, *extra: str, seed: int = 3) -> subprocess.CompletedProcess:
    return run_cli(
        "train",
        "--old",
        OLD,
        "--data",
        work["train"],
        "--method",
        "focal-distillation",
        "--lambda",
        "0.5",
        "--epochs",
        EPOCHS,
        "--seed",
        str(seed),
        *extra,
        "--out",
        out,
        cache=work["cache"],
    )


@pytest.fixture(scope="module")
def trained(work) -> tuple[Path, Path]:
    a, b = work["base"] / "a" / "new.pt", work["base"] / "b" / "new.pt"
    for out in (a, b):
        out.parent.mkdir(exist_ok=True)  # outputs go into existing folders only
        r = train(work, out)
        assert r.returncode == 0, r.stderr
        assert f"wrote {out}" in r.stdout
    return a, b


def images_and_labels(root: Path, mean: float, std: float) -> tuple[torch.Tensor, np.ndarray]:
    files = sorted(root.glob("*/*.png"))
    x = np.stack([(np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0 - mean) / std for f in files])
    return torch.from_numpy(x[:, None].astype(np.float32)), np.array([int(f.parent.name) for f in files])


def logits_of(model_file: Path, x: torch.Tensor) -> np.ndarray:
    m = torch.jit.load(str(model_file), map_location="cpu").eval()
    with torch.no_grad():
        return m(x).numpy()


def test_train_then_compare_end_to_end(work, trained):
    new = trained[0]
    extra = {"graceful.json": ""}
    torch.jit.load(str(new), _extra_files=extra)
    info = json.loads(extra["graceful.json"])
    assert info["classes"] == [str(i) for i in range(10)] and info["input_size"] == [1, 8, 8]

    report_file = work["base"] / "report.json"
    r = run_cli("compare", OLD, new, "--data", work["test"], "--json", report_file, cache=work["cache"])
    assert r.returncode == 0, r.stderr
    rep = json.loads(report_file.read_text())

    x, y = images_and_labels(work["test"], info["mean"][0], info["std"][0])
    o, n = logits_of(OLD, x).argmax(1), logits_of(new, x).argmax(1)
    assert rep["n_samples"] == len(y) == len(CLASSES) * PER_CLASS
    assert rep["negative_flip_rate"] == pytest.approx(np.mean((o == y) & (n != y)))
    assert rep["new"]["error_rate"] == pytest.approx(np.mean(n != y))
    assert rep["backward_trust_compatibility"] == pytest.approx(((o == y) & (n == y)).sum() / (o == y).sum())
    assert rep["compatibility"]["top1"]["new_old"] is not None  # both have 64-d embeddings: a cross-test exists


def test_same_seed_gives_identical_weights_and_logits(work, trained):
    a, b = trained
    sa = torch.jit.load(str(a)).state_dict()
    sb = torch.jit.load(str(b)).state_dict()
    assert sa.keys() == sb.keys() and len(sa) > 0
    for k in sa:
        assert sa[k].numpy().tobytes() == sb[k].numpy().tobytes(), k
    x, _ = images_and_labels(work["test"], 0.305604, 0.375962)
    la, lb = logits_of(a, x), logits_of(b, x)
    assert np.array_equal(la, lb)


def test_another_seed_gives_other_weights(work, trained):
    out = work["base"] / "seed4.pt"
    r = train(work, out, seed=4)
    assert r.returncode == 0, r.stderr
    x, _ = images_and_labels(work["test"], 0.305604, 0.375962)
    assert not np.array_equal(logits_of(out, x), logits_of(trained[0], x))


# ------------------------------------------------------------------ bad input
def _no_head_model(path: Path) -> Path:
    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    meta = {
        "name": "nohead",
        "input_size": [1, 8, 8],
        "mean": [0.3],
        "std": [0.37],
        "classes": [str(i) for i in range(10)],
    }
    torch.jit.save(torch.jit.script(LogitsOnly()), str(path), _extra_files={"graceful.json": json.dumps(meta)})
    return path


def _onnx_model(path: Path) -> Path:
    from graceful_core.training.architectures import build_model
    from graceful_core.training.export import export_onnx
    from graceful_core.types import ModelInfo

    info = ModelInfo("o", (1, 8, 8), (0.3,), (0.37,), tuple(str(i) for i in range(10)))
    export_onnx(build_model("small-cnn", embedding_dim=64).eval(), path, info)
    return path


def _expect_exit_2(capsys, argv: list[str], out: Path, names: str) -> str:
    from graceful_core.cli.commands import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert names in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary file left behind"
    return lines[0]


def _argv(work, old, out, method="focal-distillation"):
    return ["train", "--old", old, "--data", work["train"], "--method", method, "--epochs", "1", "--out", out]


@pytest.fixture()
def in_cache(work, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(work["cache"]))


def test_missing_old_model(work, tmp_path, capsys, in_cache):
    missing, out = tmp_path / "nope.pt", tmp_path / "new.pt"
    _expect_exit_2(capsys, _argv(work, missing, out), out, str(missing))


def test_onnx_old_model_is_refused(work, tmp_path, capsys, in_cache):
    old, out = _onnx_model(tmp_path / "old.onnx"), tmp_path / "new.pt"
    line = _expect_exit_2(capsys, _argv(work, old, out), out, str(old))
    assert "TorchScript" in line


def test_onnx_model_named_pt_is_refused(work, tmp_path, capsys, in_cache):
    src = _onnx_model(tmp_path / "o.onnx")
    old, out = tmp_path / "disguised.pt", tmp_path / "new.pt"
    shutil.copy(src, old)
    _expect_exit_2(capsys, _argv(work, old, out), out, str(old))


@pytest.mark.parametrize("maker", ["pickle", "text"])
def test_non_torchscript_old_model_is_refused(work, tmp_path, capsys, in_cache, maker):
    old, out = tmp_path / "old.pt", tmp_path / "new.pt"
    if maker == "pickle":
        bad.pickled_checkpoint(old)
    else:
        old.write_text("not a model\n")
    _expect_exit_2(capsys, _argv(work, old, out), out, str(old))


def test_bct_needs_an_old_model_with_head(work, tmp_path, capsys, in_cache):
    old, out = _no_head_model(tmp_path / "nohead.pt"), tmp_path / "new.pt"
    line = _expect_exit_2(capsys, _argv(work, old, out, method="bct"), out, str(old))
    assert "head" in line


def test_wrong_out_suffix(work, tmp_path, capsys, in_cache):
    out = tmp_path / "new.onnx"
    _expect_exit_2(capsys, _argv(work, OLD, out), out, str(out))


def test_bad_epochs_value(work, tmp_path, capsys, in_cache):
    from graceful_core.cli.commands import main

    out = tmp_path / "new.pt"
    code = main([str(a) for a in _argv(work, OLD, out)[:-4] + ["--epochs", "0", "--out", out]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "epochs" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def _weights(path: Path) -> dict:
    return dict(torch.jit.load(str(path)).state_dict())


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ldi_trains_and_a_margin_no_difference_reaches_is_plain_training(work, tmp_path, capsys, in_cache):
    """LDI with margin 0.5 moves the weights away from plain training (same seed); with a margin of 1e6 its term and
    gradient are exactly zero, so it gives plain training's weights bit for bit (the control)."""
    from graceful_core.cli.commands import main

    def run(name, *extra):
        out = tmp_path / f"{name}.pt"
        argv = [*_argv(work, OLD, out, method=extra[0])[:-2], *extra[1:], "--seed", "4", "--out", out]
        assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
        return out

    plain = run("plain", "plain")
    ldi = run("ldi", "ldi", "--margin", "0.5", "--p", "2", "--lambda", "1")
    wide = run("ldi-wide", "ldi", "--margin", "1e6", "--p", "2", "--lambda", "1")
    assert not _same_weights(plain, ldi)
    assert _same_weights(plain, wide)


def test_elodi_takes_three_reference_models_and_refuses_two(work, tmp_path, capsys, in_cache):
    from graceful_core.cli.commands import main

    refs = [SAMPLE / "models" / f"{n}.pt" for n in ("new", "new-pc", "new-bct")]
    out = tmp_path / "elodi.pt"
    argv = [*_argv(work, OLD, out, method="elodi")[:-2], "--reference-models", *refs, "--out", out]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert out.is_file()
    capsys.readouterr()
    out2 = tmp_path / "elodi2.pt"
    line = _expect_exit_2(
        capsys,
        [*_argv(work, OLD, out2, method="elodi")[:-2], "--reference-models", *refs[:2], "--out", out2],
        out2,
        str(refs[0]),
    )
    assert "at least 3 reference models" in line
    out3 = tmp_path / "ldi.pt"
    line = _expect_exit_2(
        capsys,
        [*_argv(work, OLD, out3, method="ldi")[:-2], "--reference-models", *refs, "--out", out3],
        out3,
        "--reference-models",
    )
    assert "elodi only" in line
