"""torch.export ``.pt2`` model files: round trips, identical results across formats, and hostile archives.

Each hostile archive is a valid ``.pt2`` written by ``save_pt2`` with one part replaced by a
payload that creates a marker file when torch loads or runs it. Control tests show that
``torch.export.load`` (torch 2.13) does run each payload; the loader must refuse the file
before torch sees it (``torch.export.load`` is patched to fail the test) and the marker
must never appear.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from graceful_core.errors import InputError
from graceful_core.models import devices
from graceful_core.models.loader import clear_model_cache, load_model
from graceful_core.models.onnx import OnnxModel
from graceful_core.models.pt2 import Pt2Model
from graceful_core.models.pt2_pickles import pickle_problem
from graceful_core.models.pt2_program import guard_problem, program_problem, sym_expr_problem
from graceful_core.models.torchscript import TorchScriptModel
from graceful_core.training.architectures import build_model
from graceful_core.training.export import convert_model_file, export_onnx, save_pt2, save_torchscript
from graceful_core.types import Model, ModelInfo
from tests.models.tiny import CLASSES, INFO, torch_outputs

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
pytestmark = pytest.mark.usefixtures("fresh_model_cache")


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_model("large-cnn", num_classes=len(CLASSES), embedding_dim=6).eval()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((7, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def base_pt2(tiny, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "base.pt2"
    save_pt2(tiny, INFO, path)
    return path


# ----------------------------------------------------------------- round trips
def test_pt2_round_trip(tiny, batch, base_pt2):
    model = load_model(base_pt2)
    assert isinstance(model, Pt2Model) and isinstance(model, Model)
    assert model.info == INFO and model.has_embedding and not model.has_head
    logits, emb = model.run(batch)
    want_logits, want_emb = torch_outputs(tiny, batch)
    np.testing.assert_allclose(logits, want_logits, atol=1e-6)
    np.testing.assert_allclose(emb, want_emb, atol=1e-6)
    assert logits.dtype == np.float32 and emb.shape == (7, 6)
    # The batch dimension is dynamic: one image and many images both run.
    assert model.run(batch[:1])[0].shape == (1, 3)
    with pytest.raises(NotImplementedError, match=".pt2"):
        model.head(emb)


def test_pt2_of_a_module_without_embedding(batch, tmp_path):
    torch.manual_seed(3)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    save_pt2(plain, INFO, tmp_path / "plain.pt2")
    model = load_model(tmp_path / "plain.pt2")
    assert not model.has_embedding
    logits, emb = model.run(batch)
    assert emb is None
    w, b = plain[1].weight.detach().numpy(), plain[1].bias.detach().numpy()
    np.testing.assert_allclose(logits, batch.reshape(7, 64) @ w.T + b, atol=1e-5)


class _TupleForward(nn.Module):
    """forward returns (logits, embedding): the .pt2 contract's second form."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
        self.cls = nn.Linear(4, 3)

    def forward(self, x):
        e = self.body(x)
        return self.cls(e), e


def test_pt2_of_a_tuple_forward(batch, tmp_path):
    torch.manual_seed(4)
    m = _TupleForward().eval()
    save_pt2(m, INFO, tmp_path / "t.pt2")
    model = load_model(tmp_path / "t.pt2")
    assert model.has_embedding
    with torch.no_grad():
        want_l, want_e = m(torch.from_numpy(batch))
    logits, emb = model.run(batch)
    np.testing.assert_allclose(logits, want_l.numpy(), atol=1e-6)
    np.testing.assert_allclose(emb, want_e.numpy(), atol=1e-6)


def test_save_pt2_takes_graceful_json_fields_as_a_dict(tiny, tmp_path):
    fields = {"name": "d", "input_size": [1, 8, 8], "mean": [0.5], "std": [0.25], "classes": list(CLASSES)}
    save_pt2(tiny, fields, tmp_path / "d.pt2")
    assert load_model(tmp_path / "d.pt2").info == ModelInfo("d", (1, 8, 8), (0.5,), (0.25,), CLASSES)
    assert tiny.training is False  # the module's mode is restored (it was in eval mode)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        save_pt2(INFO, tiny, tmp_path / "x.pt2")  # arguments swapped


def test_same_module_in_every_format_gives_the_same_outputs(tiny, batch, tmp_path):
    save_torchscript(tiny, tmp_path / "m.pt", INFO)
    export_onnx(tiny, tmp_path / "m.onnx", INFO)
    save_pt2(tiny, INFO, tmp_path / "m.pt2")
    want_logits, want_emb = torch_outputs(tiny, batch)
    kinds = {}
    for name in ("m.pt", "m.onnx", "m.pt2"):
        model = load_model(tmp_path / name)
        kinds[name] = type(model)
        logits, emb = model.run(batch)
        np.testing.assert_allclose(logits, want_logits, atol=1e-5)
        np.testing.assert_allclose(emb, want_emb, atol=1e-5)
        np.testing.assert_array_equal(logits.argmax(1), want_logits.argmax(1))
    assert kinds == {"m.pt": TorchScriptModel, "m.onnx": OnnxModel, "m.pt2": Pt2Model}


@pytest.fixture(scope="module")
def sample_models():
    old, new, data = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt", SAMPLE / "digits" / "test"
    if not (old.is_file() and new.is_file() and data.is_dir()):
        pytest.skip("bundled sample models are missing")
    return old, new, data


def test_sample_models_converted_to_every_format_give_identical_flips(sample_models, tmp_path):
    """The acceptance check: the same models as TorchScript, ONNX and .pt2 flip the same images."""
    from graceful_core.comparing.sources import compare_sources

    old, new, data = sample_models
    files = {"pt": (old, new)}
    for to in ("onnx", "pt2"):
        pair = []
        for src in (old, new):
            out = tmp_path / f"{src.stem}.{to}"
            msg = convert_model_file(src, to, out)
            assert "with its embedding" in msg
            pair.append(out)
        files[to] = tuple(pair)
    reports = {k: compare_sources(o, n, data, use_cache=False).to_report() for k, (o, n) in files.items()}
    ref = reports["pt"]
    assert ref["negative_flips"]  # the sample update does break images
    for k in ("onnx", "pt2"):
        r = reports[k]
        assert r["negative_flips"] == ref["negative_flips"], k
        assert r["positive_flips"] == ref["positive_flips"], k
        assert r["transition_matrix"] == ref["transition_matrix"], k
        assert r["compatibility"]["top1"] == pytest.approx(ref["compatibility"]["top1"], abs=1e-9), k
    # The independent check: torch itself on the TorchScript file gives the same argmax as the .pt2.
    x = np.random.default_rng(0).standard_normal((11, 1, 8, 8)).astype(np.float32)
    direct = torch.jit.load(os.fspath(old), map_location="cpu").eval()
    with torch.no_grad():
        want = direct(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load_model(files["pt2"][0]).run(x)[0], want, atol=1e-5)


def test_onnx_to_pt2_is_refused_with_a_reason(tiny, tmp_path):
    export_onnx(tiny, tmp_path / "m.onnx", INFO)
    with pytest.raises(InputError, match="ONNX to .pt2 is not supported") as info:
        convert_model_file(tmp_path / "m.onnx", "pt2", tmp_path / "m.pt2")
    assert info.value.path == os.fspath(tmp_path / "m.onnx")
    assert not (tmp_path / "m.pt2").exists()


def test_export_onnx_of_a_loaded_torchscript_model(tiny, batch, tmp_path):
    """A loaded TorchScript module exports: tracing it again must not raise torch's "Tried to trace ... not part of
    the active trace"."""
    save_torchscript(tiny, tmp_path / "m.pt", INFO)
    loaded = load_model(tmp_path / "m.pt")
    export_onnx(loaded.module, tmp_path / "m.onnx", loaded.info)
    logits, emb = load_model(tmp_path / "m.onnx").run(batch)
    want_logits, want_emb = torch_outputs(tiny, batch)
    np.testing.assert_allclose(logits, want_logits, atol=1e-5)
    np.testing.assert_allclose(emb, want_emb, atol=1e-5)


# ----------------------------------------------------------------- contract problems
def test_static_batch_dimension_is_refused(tiny, tmp_path):
    class W(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = tiny

        def forward(self, x):
            return self.m(x)

    ep = torch.export.export(W().eval(), (torch.zeros(2, 1, 8, 8),))
    path = tmp_path / "static.pt2"
    torch.export.save(ep, os.fspath(path), extra_files={"graceful.json": json.dumps(_info_dict())})
    with pytest.raises(InputError, match="batch dimension is fixed at 2"):
        load_model(path)


def test_training_mode_export_is_refused(tmp_path):
    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 3)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.lin(self.drop(x.flatten(1)))

    ep = torch.export.export(
        Drop().train(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("N", min=1)},)
    )
    path = tmp_path / "train.pt2"
    torch.export.save(ep, os.fspath(path), extra_files={"graceful.json": json.dumps(_info_dict())})
    with pytest.raises(InputError, match="training mode"):
        load_model(path)


def test_pt2_without_graceful_json(tiny, tmp_path):
    ep = torch.export.export(tiny, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    path = tmp_path / "nojson.pt2"
    torch.export.save(ep, os.fspath(path))
    with pytest.raises(InputError, match="graceful.json: missing"):
        load_model(path)


def _info_dict() -> dict:
    return {"name": "m", "input_size": [1, 8, 8], "mean": [0.5], "std": [0.25], "classes": list(CLASSES)}


# ----------------------------------------------------------------- hostile archives
class _Payload:
    """Unpickling this creates ``marker`` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (os.fspath(self.marker), "w"))


def _root(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.namelist()[0].split("/", 1)[0]


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    """Copy a .pt2 archive member by member (stored, like torch's writer), replacing or adding members."""
    replace = dict(replace)
    root = _root(src)
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for info in z.infolist():
            rest = info.filename.split("/", 1)[1]
            data = replace.pop(rest) if rest in replace else z.read(info)
            if data is not None:
                out.writestr(info.filename, data)
        for rest, data in replace.items():
            if data is not None:
                out.writestr(f"{root}/{rest}", data)
    return dst


def _read(path: Path, rest: str) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(f"{_root(path)}/{rest}")


def _torch_saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _pickle_members(path: Path) -> list[str]:
    """Every member of the archive that holds a pickle: torch.save zips and bare pickles."""
    out = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            head = z.read(info)[:4]
            if head == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
                out.append(info.filename.split("/", 1)[1])
    return out


@pytest.fixture
def no_export_load(monkeypatch):
    """Fail the test if anything hands a file to ``torch.export.load``."""

    def boom(*args, **kwargs):
        raise AssertionError("torch.export.load must not be called on a hostile archive")

    monkeypatch.setattr(torch.export, "load", boom)


def _expect_refused(path: Path, marker: Path, fragment: str = "") -> InputError:
    with pytest.raises(InputError) as info:
        load_model(path)
    err = info.value
    assert err.path == os.fspath(path) and "\n" not in str(err)
    assert fragment in err.problem, err.problem
    assert not marker.exists()
    return err


def _payload_for(member_bytes: bytes, marker: Path) -> bytes:
    """A payload of the same kind as the member it replaces (torch.save zip or bare pickle)."""
    if member_bytes[:4] == b"PK\x03\x04":
        return _torch_saved(((_Payload(marker),), {}))
    return pickle.dumps(_Payload(marker), protocol=2)


def test_a_valid_pt2_has_pickles_and_each_one_is_checked(base_pt2, tmp_path, no_export_load):
    members = _pickle_members(base_pt2)
    assert "data/sample_inputs/model.pt" in members  # torch 2.13 writes the example inputs as a pickle
    for i, rest in enumerate(members):
        marker = tmp_path / f"PWNED-{i}"
        evil = _rewrite(base_pt2, tmp_path / f"evil-{i}.pt2", {rest: _payload_for(_read(base_pt2, rest), marker)})
        _expect_refused(evil, marker, "not plain tensor data")


def test_payload_in_sample_inputs_is_live_in_torch(base_pt2, tmp_path):
    """Control: torch.export.load falls back to weights_only=False on the sample inputs and runs the payload."""
    marker = tmp_path / "PWNED"
    evil = _rewrite(
        base_pt2, tmp_path / "evil.pt2", {"data/sample_inputs/model.pt": _torch_saved(((_Payload(marker),), {}))}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.export.load(os.fspath(evil))
        except Exception:
            pass
    assert marker.exists()


def _with_pickled_weight(base: Path, dst: Path, marker: Path) -> Path:
    cfg = json.loads(_read(base, "data/weights/model_weights_config.json"))
    fqn = next(iter(cfg["config"]))
    cfg["config"][fqn]["use_pickle"] = True
    name = cfg["config"][fqn]["path_name"]
    return _rewrite(
        base,
        dst,
        {
            "data/weights/model_weights_config.json": json.dumps(cfg).encode(),
            f"data/weights/{name}": _torch_saved(_Payload(marker)),
        },
    )


def test_pickled_weight_is_refused(base_pt2, tmp_path, no_export_load):
    marker = tmp_path / "PWNED"
    evil = _with_pickled_weight(base_pt2, tmp_path / "evil.pt2", marker)
    _expect_refused(evil, marker, "pickled")


def test_pickled_weight_is_live_in_torch(base_pt2, tmp_path):
    """Control: torch loads a use_pickle weight with weights_only=False."""
    marker = tmp_path / "PWNED"
    evil = _with_pickled_weight(base_pt2, tmp_path / "evil.pt2", marker)
    try:
        torch.export.load(os.fspath(evil))
    except Exception:
        pass
    assert marker.exists()


@pytest.mark.parametrize("prefix", ["opaque_obj_", "custom_obj_"])
def test_object_constants_are_refused(base_pt2, tmp_path, no_export_load, prefix):
    marker = tmp_path / "PWNED"
    cfg = {"config": {"c": {"path_name": f"{prefix}0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}
    evil = _rewrite(
        base_pt2,
        tmp_path / "evil.pt2",
        {
            "data/constants/model_constants_config.json": json.dumps(cfg).encode(),
            f"data/constants/{prefix}0": pickle.dumps(_Payload(marker), protocol=2),
        },
    )
    _expect_refused(evil, marker)


@pytest.mark.parametrize(
    ("rest", "fragment"),
    [
        ("data/weights/model.pt", "unknown member"),  # the legacy pickled state dict
        ("data/constants/model.pt", "unknown member"),
        ("data/aotinductor/model/model.so", "compiled code"),
        ("serialized_state_dict.pt", "unknown member"),
    ],
)
def test_members_torch_would_unpickle_or_load_are_refused(base_pt2, tmp_path, no_export_load, rest, fragment):
    marker = tmp_path / "PWNED"
    evil = _rewrite(base_pt2, tmp_path / "evil.pt2", {rest: _torch_saved(_Payload(marker))})
    _expect_refused(evil, marker, fragment)


def test_member_outside_the_archive_folder_is_refused(base_pt2, tmp_path, no_export_load):
    evil = tmp_path / "evil.pt2"
    _rewrite(base_pt2, evil, {})
    with zipfile.ZipFile(evil, "a") as z:
        z.writestr("version", b"3")  # what the pre-2.7 fallback of torch.export.load looks for
    _expect_refused(evil, tmp_path / "none", "one archive folder")


def _program(base: Path) -> dict:
    return json.loads(_read(base, "models/model.json"))


def _with_program(base: Path, dst: Path, program: dict) -> Path:
    return _rewrite(base, dst, {"models/model.json": json.dumps(program).encode()})


def _inject_expr(program: dict, marker: Path) -> dict:
    text = json.dumps(program)
    symbol = "Symbol('s77', positive=True, integer=True)"
    assert symbol in text or "Symbol(" in text
    start = text.index("Symbol(")
    end = text.index(")", start) + 1
    evil = f"__import__('os').system('touch {marker}') or {text[start:end]}"
    return json.loads(text[:start] + evil + text[end:])


def test_shape_expression_injection_is_refused(base_pt2, tmp_path, no_export_load):
    marker = tmp_path / "PWNED"
    evil = _with_program(base_pt2, tmp_path / "evil.pt2", _inject_expr(_program(base_pt2), marker))
    _expect_refused(evil, marker, "shape expression")


def test_shape_expression_injection_is_live_in_torch(base_pt2, tmp_path):
    """Control: torch parses expr_str with sympy.sympify, which evaluates it."""
    marker = tmp_path / "PWNED"
    evil = _with_program(base_pt2, tmp_path / "evil.pt2", _inject_expr(_program(base_pt2), marker))
    try:
        torch.export.load(os.fspath(evil))
    except Exception:
        pass
    assert marker.exists()


def test_guard_code_injection_is_refused(base_pt2, tmp_path, no_export_load):
    marker = tmp_path / "PWNED"
    program = _program(base_pt2)
    program["guards_code"] = [f"__import__('os').system('touch {marker}') == 0"]
    evil = _with_program(base_pt2, tmp_path / "evil.pt2", program)
    _expect_refused(evil, marker, "guard code")


def test_guard_code_injection_is_live_in_torch(base_pt2, tmp_path):
    """Control: ExportedProgram.module() compiles guards_code and runs it on every call."""
    marker = tmp_path / "PWNED"
    program = _program(base_pt2)
    program["guards_code"] = [f"__import__('os').system('touch {marker}') == 0"]
    evil = _with_program(base_pt2, tmp_path / "evil.pt2", program)
    try:
        torch.export.load(os.fspath(evil)).module()(torch.zeros(2, 1, 8, 8))
    except Exception:
        pass
    assert marker.exists()


def test_node_target_outside_aten_is_refused(base_pt2, tmp_path, no_export_load):
    program = _program(base_pt2)
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
    evil = _with_program(base_pt2, tmp_path / "evil.pt2", program)
    _expect_refused(evil, tmp_path / "none", "not an ATen operator")
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.aten.from_file.default"
    evil = _with_program(base_pt2, tmp_path / "evil2.pt2", program)
    _expect_refused(evil, tmp_path / "none", "reads or writes")


def test_weight_entry_pointing_past_its_bytes_is_refused(base_pt2, tmp_path, no_export_load):
    cfg = json.loads(_read(base_pt2, "data/weights/model_weights_config.json"))
    entry = next(iter(cfg["config"].values()))
    entry["tensor_meta"]["sizes"][0]["as_int"] = 10**6
    evil = _rewrite(
        base_pt2, tmp_path / "evil.pt2", {"data/weights/model_weights_config.json": json.dumps(cfg).encode()}
    )
    _expect_refused(evil, tmp_path / "none", "needs more bytes")


def test_not_a_zip_and_corrupt_zip(tmp_path, base_pt2):
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(base_pt2.read_bytes()[:300])
    with pytest.raises(InputError):
        load_model(cut)


# ----------------------------------------------------------------- the checkers on their own
def test_pickle_problem_accepts_plain_tensor_pickles():
    for obj in [((torch.zeros(2, 3),), {}), {"w": torch.ones(4, dtype=torch.int64)}, [torch.zeros(0)]]:
        with zipfile.ZipFile(io.BytesIO(_torch_saved(obj))) as z:
            pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
            assert pickle_problem(z.read(pkl)) is None, obj
    assert pickle_problem(pickle.dumps((1, 2.5, "x", None, True, [1], {"a": b"b"}), protocol=4)) is None


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_problem_refuses_callables(protocol, tmp_path):
    data = pickle.dumps(_Payload(tmp_path / "m"), protocol=protocol)
    assert pickle_problem(data) is not None


def test_pickle_problem_cannot_be_fooled_by_stack_tricks():
    """Allowed names pushed and popped, then a forbidden pair on the stack: STACK_GLOBAL is refused."""

    def s(text: str) -> bytes:
        b = text.encode()
        return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE

    body = s("builtins") + s("eval") + s("collections") + s("OrderedDict") + b"00" + b"\x93" + b")R."
    data = b"\x80\x04" + body
    assert pickle_problem(data) is not None
    # and memo tricks: the forbidden names come back through BINGET
    memo = b"\x80\x04" + s("builtins") + b"q\x00" + s("eval") + b"q\x01" + b"0" + b"0" + b"h\x00h\x01\x93)R."
    assert pickle_problem(memo) is not None
    trailing = pickle.dumps((1,), protocol=2) + b"junk"
    assert "after the end" in pickle_problem(trailing)


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("Symbol('s77', positive=True, integer=True)", True),
        ("3*((s77//2)) + 1", True),
        ("Max(2, s0) - FloorDiv(s1, 4)", True),
        ("Eq(s77, 3) & (s77 > 2)", True),
        ("s0**2", True),
        ("__import__('os').system('id')", False),
        ("s0.__class__", False),
        ("Symbol('__import__')", False),
        ("(lambda: 1)()", False),
        ("9**9**9**9", False),
        ("[s0][0]", False),
        ("Symbol('s0', **{'a': 1})", False),
    ],
)
def test_sym_expr_problem(expr, ok):
    assert (sym_expr_problem(expr) is None) is ok, sym_expr_problem(expr)


@pytest.mark.parametrize(
    ("guard", "ok"),
    [
        ("(L['x_1'].size()[3] // 2) != 1", True),
        ("(max(1, L['x_1'].size()[2] // 2)*max(1, L['x'].size()[3] // 2)) != 1", True),
        ("(L['x'].size()[2] // 4) >= 1 and (L['x'].size()[3] // 4) >= 1", True),
        ("L['x'].stride()[0] == 64", True),
        ("__import__('os').system('id') == 0", False),
        ("L['x'].numpy() == 1", False),
        ("L['x'].size()[L] == 1", False),
        ("L[__import__('os')] == 1", False),
        ("open('/etc/passwd')", False),
    ],
)
def test_guard_problem(guard, ok):
    assert (guard_problem(guard) is None) is ok, guard_problem(guard)


def test_program_problem_on_a_real_program(base_pt2):
    assert program_problem(_program(base_pt2)) is None
    assert program_problem({"no": "graph"}) is not None


# ----------------------------------------------------------------- devices
def test_device_choice(monkeypatch):
    monkeypatch.setattr(devices, "_torch_cuda_available", lambda: False)
    monkeypatch.setattr(devices, "_ort_providers", lambda: ["CPUExecutionProvider"])
    assert devices.resolve_device("auto") == "cpu"
    assert devices.onnx_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(InputError, match="CUDA is not available"):
        devices.resolve_device("cuda")
    with pytest.raises(InputError, match="CUDAExecutionProvider"):
        devices.onnx_providers("cuda")
    with pytest.raises(InputError, match="no CUDA device"):
        devices.require_device("cuda")
    with pytest.raises(InputError, match="--device must be one of"):
        devices.validate_device("gpu")
    monkeypatch.setattr(devices, "_torch_cuda_available", lambda: True)
    monkeypatch.setattr(devices, "_ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert devices.resolve_device("auto") == "cuda"
    assert devices.resolve_device("CUDA") == "cuda"
    assert devices.onnx_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert devices.require_device("cuda") == "cuda"
    assert devices.onnx_providers("cpu") == ["CPUExecutionProvider"]


@pytest.mark.parametrize("name", ["m.pt", "m.onnx", "m.pt2"])
def test_cuda_where_there_is_none_is_an_input_error_for_every_format(tiny, tmp_path, monkeypatch, name):
    monkeypatch.setattr(devices, "_torch_cuda_available", lambda: False)
    monkeypatch.setattr(devices, "_ort_providers", lambda: ["CPUExecutionProvider"])
    save_torchscript(tiny, tmp_path / "m.pt", INFO)
    export_onnx(tiny, tmp_path / "m.onnx", INFO)
    save_pt2(tiny, INFO, tmp_path / "m.pt2")
    with pytest.raises(InputError, match="cuda"):
        load_model(tmp_path / name, device="cuda")
    assert load_model(tmp_path / name, device="auto").run(np.zeros((1, 1, 8, 8), np.float32))[0].shape == (1, 3)


def test_onnx_session_gets_the_chosen_providers(tiny, tmp_path, monkeypatch):
    export_onnx(tiny, tmp_path / "m.onnx", INFO)
    assert load_model(tmp_path / "m.onnx", device="cpu").providers == ["CPUExecutionProvider"]
    seen = {}
    import onnxruntime as ort

    real = ort.InferenceSession

    def spy(path, sess_options=None, providers=None):
        seen["providers"] = providers
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(devices, "_ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", spy)
    clear_model_cache()
    load_model(tmp_path / "m.onnx", device="auto")
    assert seen["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
