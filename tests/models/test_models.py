"""Model files: TorchScript and ONNX round trips, the sample model, and hostile or broken files.

Expected outputs come from the torch module itself (called directly here), from a
hand-built ONNX graph with known weights, or from hand-written ``graceful.json`` texts.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from graceful_core.errors import InputError
from graceful_core.models.info import parse_model_info
from graceful_core.models.loader import NOT_A_MODEL, load_model, sniff_model_format
from graceful_core.models.onnx import OnnxModel
from graceful_core.models.torchscript import TorchScriptModel, torchscript_archive_kind
from graceful_core.training.architectures import build_model
from graceful_core.training.export import export_onnx, info_json, save_torchscript
from graceful_core.types import Model, ModelInfo
from tests.models.tiny import CLASSES, INFO, torch_outputs

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_OLD = ROOT / "sample_data" / "models" / "old.pt"
pytestmark = pytest.mark.usefixtures("fresh_model_cache")


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("edge-cnn", num_classes=len(CLASSES), embedding_dim=6).eval()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((5, 1, 8, 8)).astype(np.float32)


def expect_input_error(path: Path, fragment: str) -> InputError:
    with pytest.raises(InputError) as info:
        load_model(path)
    err = info.value
    assert err.path == os.fspath(path)
    assert path.name in str(err) and fragment in err.problem, str(err)
    assert "\n" not in str(err)
    return err


# ----------------------------------------------------------------- round trips
def test_torchscript_round_trip(tiny, batch, tmp_path):
    path = tmp_path / "tiny.pt"
    save_torchscript(tiny, path, INFO)
    model = load_model(path)
    assert isinstance(model, TorchScriptModel) and isinstance(model, Model)
    assert model.info == INFO and model.path == os.fspath(path)
    assert model.has_embedding and model.has_head
    want_logits, want_emb = torch_outputs(tiny, batch)
    logits, emb = model.run(batch)
    assert logits.dtype == np.float32 and emb.dtype == np.float32
    assert logits.shape == (5, 3) and emb.shape == (5, 6)
    np.testing.assert_allclose(logits, want_logits, atol=1e-6)
    np.testing.assert_allclose(emb, want_emb, atol=1e-6)
    np.testing.assert_allclose(model.head(emb), want_logits, atol=1e-6)


def test_torchscript_without_embed_runs_forward_only(batch, tmp_path):
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    path = tmp_path / "plain.pt"
    save_torchscript(plain, path, INFO)
    model = load_model(path)
    assert not model.has_embedding and not model.has_head
    logits, emb = model.run(batch)
    assert emb is None
    with torch.no_grad():
        want = (torch.from_numpy(batch).reshape(5, 64) @ plain[1].weight.T + plain[1].bias).numpy()
    np.testing.assert_allclose(logits, want, atol=1e-5)
    with pytest.raises(NotImplementedError, match="head"):
        model.head(np.zeros((2, 4), np.float32))


def test_onnx_round_trip(tiny, batch, tmp_path):
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny, path, INFO)
    model = load_model(path)
    assert isinstance(model, OnnxModel) and isinstance(model, Model)
    assert model.info == INFO
    assert model.has_embedding and not model.has_head
    want_logits, want_emb = torch_outputs(tiny, batch)
    logits, emb = model.run(batch)
    assert logits.dtype == np.float32 and emb.dtype == np.float32
    np.testing.assert_allclose(logits, want_logits, atol=1e-5)
    np.testing.assert_allclose(emb, want_emb, atol=1e-5)
    with pytest.raises(NotImplementedError, match="ONNX"):
        model.head(emb)


def test_torchscript_and_onnx_of_the_same_weights_agree(tiny, batch, tmp_path):
    save_torchscript(tiny, tmp_path / "m.pt", INFO)
    export_onnx(tiny, tmp_path / "m.onnx", INFO)
    ts_logits, ts_emb = load_model(tmp_path / "m.pt").run(batch)
    ox_logits, ox_emb = load_model(tmp_path / "m.onnx").run(batch)
    np.testing.assert_allclose(ts_logits, ox_logits, atol=1e-5)
    np.testing.assert_allclose(ts_emb, ox_emb, atol=1e-5)


def _hand_onnx(
    path: Path, *, output: str = "logits", input_name: str = "pixels", meta: str | None = None
) -> np.ndarray:
    """A one-MatMul ONNX model ``flatten(x) @ W`` over [N, 1, 2, 2] inputs; returns W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", [input_name], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], [output]),
        ],
        "hand",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 1, 2, 2])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    info = {"name": "hand", "input_size": [1, 2, 2], "mean": [0.0], "std": [1.0], "classes": list(CLASSES)}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "graceful.json", json.dumps(info) if meta is None else meta
    onnx.save(proto, os.fspath(path))
    return w


def test_hand_built_onnx_single_input_any_name(tmp_path):
    path = tmp_path / "hand.onnx"
    w = _hand_onnx(path)
    model = load_model(path)
    assert model.input_name == "pixels" and not model.has_embedding
    x = np.array([[[[1, 2], [3, 4]]], [[[0, 0], [0, 1]]]], dtype=np.float32)
    logits, emb = model.run(x)
    assert emb is None
    # Hand computation: row 2 is [0, 0, 0, 1] @ W = W[3] = [0.9, 1.0, 1.1].
    np.testing.assert_allclose(logits[1], [0.9, 1.0, 1.1], atol=1e-6)
    np.testing.assert_allclose(logits[0], np.array([1, 2, 3, 4]) @ w, atol=1e-5)


def test_onnx_is_detected_by_content_not_suffix(tmp_path):
    path = tmp_path / "actually-onnx.pt"
    _hand_onnx(path)
    assert isinstance(load_model(path), OnnxModel)


def test_sample_old_model():
    if not SAMPLE_OLD.is_file():
        pytest.skip("sample_data/models/old.pt is missing")
    model = load_model(SAMPLE_OLD)
    assert len(model.info.classes) == 10 and model.has_embedding and model.has_head
    c, h, w = model.info.input_size
    x = np.random.default_rng(2).standard_normal((7, c, h, w)).astype(np.float32)
    logits, emb = model.run(x)
    direct = torch.jit.load(os.fspath(SAMPLE_OLD), map_location="cpu").eval()
    with torch.no_grad():
        want = direct(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.head(emb), want, atol=1e-5)
    np.testing.assert_allclose(logits, want, atol=1e-5)


def test_run_rejects_wrong_batch_shape(tiny, tmp_path):
    save_torchscript(tiny, tmp_path / "m.pt", INFO)
    model = load_model(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="1, 8, 8"):
        model.run(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError):
        model.head(np.zeros((2, 6, 1), np.float32))


# ----------------------------------------------------------------- cache
def test_cache_reuses_unchanged_files_and_reloads_changed_ones(tiny, batch, tmp_path):
    path = tmp_path / "m.pt"
    save_torchscript(tiny, path, INFO)
    first = load_model(path)
    assert load_model(path).module is first.module
    link = tmp_path / "link.pt"
    link.symlink_to(path)
    via_link = load_model(link)
    assert via_link.module is first.module and via_link.path == os.fspath(link)

    torch.manual_seed(42)
    other = build_model("edge-cnn", num_classes=3, embedding_dim=6).eval()
    save_torchscript(other, path, INFO)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    reloaded = load_model(path)
    assert reloaded.module is not first.module
    np.testing.assert_allclose(reloaded.run(batch)[0], torch_outputs(other, batch)[0], atol=1e-6)


def test_errors_through_a_symlink_name_the_link(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("not a model")
    link = tmp_path / "model.pt"
    link.symlink_to(target)
    expect_input_error(link, "not a model file")


# ----------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("head", "suffix", "kind"),
    [
        (b"PK\x03\x04rest", ".pt", "zip"),
        (b"PK\x05\x06\x00\x00", ".bin", "zip"),
        (b"\x80\x02\x8a\n", ".pt", "pickle"),
        (b"\x80\x05\x95", ".pth", "pickle"),
        (b"\x08\x08\x12", ".model", "onnx"),
        (b"hello", ".onnx", "onnx"),
        (b"hello", ".pt", "unknown"),
        (b"\x89PNG", ".pt", "unknown"),
        (b"", ".pt", "unknown"),
    ],
)
def test_sniff_model_format(head, suffix, kind):
    assert sniff_model_format(head, suffix) == kind


def test_archive_kind_from_member_names():
    ts = ["m/data.pkl", "m/code/__torch__/x.py", "m/extra/graceful.json", "m/version"]
    ck = ["ck/data.pkl", "ck/data/0", "ck/version", "ck/.data/serialization_id"]
    assert torchscript_archive_kind(ts) == "torchscript"
    assert torchscript_archive_kind(ck) == "checkpoint"
    assert torchscript_archive_kind(["digits/0/a.png"]) == "other"
    # data.pkl and code/ under different archive folders do not make a TorchScript archive.
    assert torchscript_archive_kind(["a/data.pkl", "b/code/x.py"]) == "checkpoint"


# ----------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    expect_input_error(tmp_path / "nope.pt", "no such file")


def test_folder(tmp_path):
    expect_input_error(tmp_path, "folder")


def test_text_renamed_pt(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a model")
    err = expect_input_error(path, NOT_A_MODEL)
    assert err.problem == NOT_A_MODEL


def test_text_renamed_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model")
    expect_input_error(path, "not an ONNX model (")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    expect_input_error(path, "empty")


def test_zip_without_a_model(tmp_path):
    path = tmp_path / "images.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("digits/0/a.png", b"x")
    expect_input_error(path, "not a model file")


def test_text_given_to_torchscript_directly(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("this is not a model")
    with pytest.raises(InputError, match="not a TorchScript model"):
        TorchScriptModel(path)


class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (os.fspath(self.marker), "w"))


@pytest.fixture
def no_jit_load(monkeypatch):
    """Fail the test if anything hands a file to ``torch.jit.load``."""

    def boom(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be called on a pickled checkpoint")

    monkeypatch.setattr(torch.jit, "load", boom)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_checkpoint_is_refused(tmp_path, no_jit_load, legacy):
    path = tmp_path / "ckpt.pt"
    torch.save({"weight": torch.zeros(3, 3)}, path, _use_new_zipfile_serialization=not legacy)
    expect_input_error(path, "a pickled PyTorch checkpoint")
    with pytest.raises(InputError, match="pickled PyTorch checkpoint"):
        TorchScriptModel(path)  # the back end refuses it on its own too


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "pickle-2", "pickle-5", "pickle-0"])
def test_pickle_payload_never_runs(tmp_path, no_jit_load, how):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    payload = {"state": _Payload(marker)}
    if how == "torch-zip":  # each payload is real: torch.load(weights_only=False) / pickle.loads would create marker
        torch.save(payload, path)
    elif how == "torch-legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(how.split("-")[1])))
    assert not marker.exists()
    with pytest.raises(InputError) as info:
        load_model(path)
    assert info.value.path == os.fspath(path)
    assert not marker.exists()


def _save_with_json(module: nn.Module, path: Path, text: str | None) -> Path:
    scripted = torch.jit.script(module.eval())
    extra = {} if text is None else {"graceful.json": text}
    torch.jit.save(scripted, os.fspath(path), _extra_files=extra)
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "missing or empty"),
        ("", "missing or empty"),
        ("{not json", "not valid JSON"),
        (
            json.dumps(
                {"name": "m", "input_size": [1, 8, 8], "mean": [0.1, 0.2], "std": [1.0], "classes": ["a", "b", "c"]}
            ),
            "'mean' has 2 values",
        ),
    ],
    ids=["absent", "empty", "bad-json", "two-means"],
)
def test_torchscript_graceful_json_problems(tiny, tmp_path, text, fragment):
    path = _save_with_json(tiny, tmp_path / "m.pt", text)
    err = expect_input_error(path, fragment)
    assert err.problem.startswith("graceful.json:")


def test_onnx_without_metadata(tmp_path):
    path = tmp_path / "m.onnx"
    _hand_onnx(path, meta="")
    import onnx

    proto = onnx.load(os.fspath(path))
    del proto.metadata_props[:]
    onnx.save(proto, os.fspath(path))
    expect_input_error(path, "graceful.json: missing")


def test_onnx_without_logits_output(tmp_path):
    path = tmp_path / "m.onnx"
    _hand_onnx(path, output="scores")
    expect_input_error(path, "no output named 'logits'")


def test_onnx_with_external_data_is_refused(tiny, tmp_path):
    import onnx

    path = tmp_path / "m.onnx"
    export_onnx(tiny, path, INFO)
    proto = onnx.load(os.fspath(path))
    ext = tmp_path / "ext.onnx"
    onnx.save(proto, os.fspath(ext), save_as_external_data=True, location="weights.bin", size_threshold=0)
    expect_input_error(ext, "external data")


def test_logits_width_disagreeing_with_classes_torchscript(batch, tmp_path):
    torch.manual_seed(5)
    twelve = build_model("edge-cnn", num_classes=12, embedding_dim=4)
    ten = ModelInfo("m", (1, 8, 8), (0.5,), (0.25,), tuple(str(i) for i in range(10)))
    path = tmp_path / "m.pt"
    save_torchscript(twelve, path, ten)
    model = load_model(path)
    with pytest.raises(InputError, match="outputs 12 logits but graceful.json lists 10 classes") as info:
        model.run(batch)
    assert info.value.path == os.fspath(path)


def test_logits_width_disagreeing_with_classes_onnx(tmp_path, monkeypatch):
    import graceful_core.training.export as export_module

    torch.manual_seed(5)
    twelve = build_model("edge-cnn", num_classes=12, embedding_dim=4)
    ten = ModelInfo("m", (1, 8, 8), (0.5,), (0.25,), tuple(str(i) for i in range(10)))
    path = tmp_path / "m.onnx"
    with pytest.raises(InputError, match="classes lists 10 names but the model returns 12 logits"):
        export_onnx(twelve, path, ten)  # graceful's exporter refuses to write such a file...
    monkeypatch.setattr(export_module, "check_class_count", lambda model, info: None)
    export_onnx(twelve, path, ten)  # ...another exporter might: the loader refuses it
    expect_input_error(path, "outputs 12 logits but graceful.json lists 10 classes")


def test_forward_failing_on_the_declared_input_size(tiny, tmp_path):
    wrong = ModelInfo("m", (1, 16, 16), (0.5,), (0.25,), CLASSES)  # edge-cnn needs 8x8
    path = tmp_path / "m.pt"
    save_torchscript(tiny, path, wrong)
    model = load_model(path)
    with pytest.raises(InputError, match="failed on a batch of shape"):
        model.run(np.zeros((2, 1, 16, 16), np.float32))


# ----------------------------------------------------------------- graceful.json
GOOD = {
    "name": "m",
    "input_size": [3, 32, 24],
    "mean": [0.1, 0.2, 0.3],
    "std": [1, 2.5, 0.5],
    "classes": ["cat", "dog"],
    "extra_key": "ignored",
}


def test_parse_model_info_valid():
    info = parse_model_info(json.dumps(GOOD), "m.pt")
    assert info == ModelInfo("m", (3, 32, 24), (0.1, 0.2, 0.3), (1.0, 2.5, 0.5), ("cat", "dog"))
    assert all(isinstance(v, float) for v in info.std)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": ""}, "'name'"),
        ({"name": 5}, "'name'"),
        ({"input_size": [3, 32]}, "'input_size'"),
        ({"input_size": [3.0, 32, 24]}, "'input_size'"),
        ({"input_size": [True, 32, 24]}, "'input_size'"),
        ({"input_size": [3, 0, 24]}, "positive"),
        ({"input_size": [2, 32, 24], "mean": [0, 0], "std": [1, 1]}, "channels must be 1"),
        ({"input_size": [3, 100000, 24]}, "at most"),
        ({"mean": [0.1, 0.2]}, "'mean' has 2 values but input_size has 3"),
        ({"std": [1, 1, 1, 1]}, "'std' has 4 values"),
        ({"std": [1, 0, 1]}, "'std' values must be > 0"),
        ({"std": [1, -2, 1]}, "'std' values must be > 0"),
        ({"mean": ["a", 0, 0]}, "finite numbers"),
        ({"mean": 0.5}, "finite numbers"),
        ({"classes": []}, "non-empty list"),
        ({"classes": "cat,dog"}, "non-empty list"),
        ({"classes": ["cat", 1]}, "non-empty strings"),
        ({"classes": ["cat", ""]}, "non-empty strings"),
        ({"classes": ["cat", "dog", "cat"]}, "'cat' twice"),
    ],
)
def test_parse_model_info_rejects(change, fragment):
    with pytest.raises(InputError) as info:
        parse_model_info(json.dumps({**GOOD, **change}), "m.pt")
    assert info.value.path == "m.pt"
    assert info.value.problem.startswith("graceful.json: ") and fragment in info.value.problem, info.value.problem


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "missing or empty"),
        ("   ", "missing or empty"),
        ("[1, 2]", "must be a JSON object"),
        ('{"name": "m"', "not valid JSON"),
        ('{"name": "m", "input_size": [1, 2, 2], "mean": [NaN], "std": [1], "classes": ["a"]}', "finite numbers"),
        ('{"name": "m", "input_size": [1, 2, 2]}', "missing key(s) 'mean', 'std', 'classes'"),
    ],
)
def test_parse_model_info_rejects_text(text, fragment):
    with pytest.raises(InputError) as info:
        parse_model_info(text, "m.pt")
    assert fragment in info.value.problem, info.value.problem


def test_pickle_payload_is_live(tmp_path):
    """Control for test_pickle_payload_never_runs: unpickling the same payload does create the marker."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps({"state": _Payload(marker)}, protocol=2))
    assert marker.exists()


def test_onnx_sparse_constant_with_external_data_is_refused(tmp_path):
    """A Constant node whose sparse_value points at a file next to the model (read by onnxruntime)."""
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    values = helper.make_tensor("v", TensorProto.FLOAT, [4], vals=[0.0] * 4)
    values.ClearField("float_data")
    values.data_location = TensorProto.EXTERNAL
    entry = values.external_data.add()
    entry.key, entry.value = "location", "secret.bin"
    indices = helper.make_tensor("i", TensorProto.INT64, [4], vals=[0, 1, 2, 3])
    sparse = helper.make_sparse_tensor(values, indices, [4])
    const = helper.make_node("Constant", [], ["logits"], sparse_value=sparse)
    graph = helper.make_graph(
        [const],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4])],
    )
    proto = helper.make_model(graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = (
        "graceful.json",
        info_json(ModelInfo("m", (1, 8, 8), (0.5,), (0.25,), ("a", "b", "c", "d"))),
    )
    path = tmp_path / "sparse.onnx"
    onnx.save(proto, os.fspath(path))
    expect_input_error(path, "external data")
