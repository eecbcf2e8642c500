"""ONNX model files, run by onnxruntime (docs/formats.md; on CUDA when asked and available).

Contract: input ``x`` ``[N, C, H, W]`` float32 (or the model's single input, whatever its
name), output ``logits`` ``[N, K]``, optional output ``embedding`` ``[N, D]``, and the
``graceful.json`` text in the model's metadata property ``graceful.json``. An ONNX
graph has no separate classifier method, so :attr:`OnnxModel.has_head` is False.

Only self-contained files are accepted: tensors stored as external data (a path in the
file that onnxruntime would open) are refused, so an uploaded model cannot make the app
read other files on the machine.
"""

from __future__ import annotations

import os

import numpy as np

from graceful_core.errors import InputError
from graceful_core.models.devices import onnx_providers
from graceful_core.models.info import parse_model_info
from graceful_core.models.outputs import as_input_batch, checked_embedding, checked_logits, short_reason
from graceful_core.types import ModelInfo

__all__ = ["OnnxModel", "has_external_data", "NOT_ONNX", "not_onnx"]

_INFO_KEY = "graceful.json"
_INPUT = "x"
_LOGITS = "logits"
_EMBEDDING = "embedding"


def _attribute_tensors(attributes):
    """Every TensorProto reachable from node attributes: dense, sparse, and inside subgraphs."""
    for attr in attributes:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def _graph_tensors(graph):
    """Every TensorProto in ``graph``: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def has_external_data(path: str) -> bool:
    """True when the ONNX file at ``path`` keeps any tensor in external data files.

    Every tensor is visited: initializers (dense and sparse), node attributes (dense,
    sparse, lists of either) and subgraphs, in the main graph and in every function body.

    Raises
    ------
    InputError
        The file does not parse as an ONNX model.
    """
    import onnx

    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise InputError(path, not_onnx(e)) from None
    tensors = list(_graph_tensors(proto.graph))
    for fn in proto.functions:
        for node in fn.node:
            tensors.extend(_attribute_tensors(node.attribute))
    return any(t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) for t in tensors)


#: How every "this file is not ONNX" problem starts: plain words first, the library's message after.
NOT_ONNX = "not an ONNX model"


def not_onnx(exc: BaseException) -> str:
    """``not an ONNX model (<the library's first sentence>)``."""
    return f"{NOT_ONNX} ({short_reason(exc)})"


def _static_dims(shape) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


class OnnxModel:
    """An ONNX model file (implements :class:`graceful_core.types.Model`).

    Parameters
    ----------
    path : str or PathLike
        The ``.onnx`` file, as the user named it.
    device : str
        ``"cpu"`` (default), ``"auto"`` (onnxruntime's CUDA provider when it has one) or
        ``"cuda"`` (:func:`graceful_core.models.devices.onnx_providers`).

    Attributes
    ----------
    info : ModelInfo
        The validated ``graceful.json`` from the metadata.
    path : str
        The file.
    session : onnxruntime.InferenceSession
        The session (default thread settings) with :attr:`providers`.
    providers : list of str
        The execution providers asked for, e.g. ``["CPUExecutionProvider"]``.
    input_name : str
        ``"x"``, or the name of the model's only input.

    Raises
    ------
    InputError
        The file is not an ONNX model, uses external data, lacks ``graceful.json``
        metadata, has no ``x`` input or ``logits`` output, or declares shapes that
        disagree with ``graceful.json``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        import onnxruntime as ort

        self.path = os.fspath(path)
        self.providers = onnx_providers(device)
        if has_external_data(self.path):
            raise InputError(
                self.path, "keeps weights in external data files: graceful needs a self-contained ONNX file"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; they become InputError below
        try:
            self.session = ort.InferenceSession(self.path, sess_options=options, providers=self.providers)
        except Exception as e:
            raise InputError(self.path, not_onnx(e)) from None
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        if _INFO_KEY not in meta:
            raise InputError(self.path, "graceful.json: missing from the ONNX metadata properties")
        self.info: ModelInfo = parse_model_info(meta[_INFO_KEY], self.path)
        self.input_name = self._choose_input()
        outputs = {o.name: o for o in self.session.get_outputs()}
        if _LOGITS not in outputs:
            raise InputError(self.path, f"has no output named 'logits' (outputs: {', '.join(outputs) or 'none'})")
        self._has_embedding = _EMBEDDING in outputs
        self._output_names = [_LOGITS, _EMBEDDING] if self._has_embedding else [_LOGITS]
        self._check_declared_shapes(outputs)

    def __repr__(self) -> str:
        return f"OnnxModel({self.path!r}, name={self.info.name!r}, classes={len(self.info.classes)})"

    def _choose_input(self) -> str:
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        if _INPUT in names:
            return _INPUT
        if len(names) == 1:
            return names[0]
        raise InputError(self.path, f"has {len(names)} inputs and none named 'x' ({', '.join(names)})")

    def _check_declared_shapes(self, outputs: dict) -> None:
        x = next(i for i in self.session.get_inputs() if i.name == self.input_name)
        if x.type != "tensor(float)":
            raise InputError(self.path, f"input '{x.name}' is {x.type}; expected tensor(float)")
        dims = _static_dims(x.shape)
        want = list(self.info.input_size)
        if len(dims) != 4 or any(d is not None and d != w for d, w in zip(dims[1:], want)):
            raise InputError(
                self.path,
                f"input '{x.name}' has shape {list(x.shape)} but graceful.json says [N, {', '.join(map(str, want))}]",
            )
        k = len(self.info.classes)
        ldims = _static_dims(outputs[_LOGITS].shape)
        if len(ldims) == 2 and ldims[1] is not None and ldims[1] != k:
            raise InputError(self.path, f"outputs {ldims[1]} logits but graceful.json lists {k} classes")

    @property
    def has_embedding(self) -> bool:
        """True when the graph has an ``embedding`` output."""
        return self._has_embedding

    @property
    def has_head(self) -> bool:
        """Always False: an ONNX graph exposes no separate ``head(e)``."""
        return False

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``[N, K]`` and embeddings ``[N, D]`` (or None) of a normalised batch ``[N, C, H, W]``.

        Raises
        ------
        ValueError
            ``x`` is not ``[N, *info.input_size]``.
        InputError
            onnxruntime fails on the batch, or the outputs disagree with ``graceful.json``.
        """
        batch = as_input_batch(x, self.info)
        n = batch.shape[0]
        try:
            outs = self.session.run(self._output_names, {self.input_name: batch})
        except Exception as e:
            raise InputError(self.path, f"failed on a batch of shape {list(batch.shape)} ({short_reason(e)})") from None
        logits = checked_logits(outs[0], n, self.info, self.path, "output 'logits'")
        emb = checked_embedding(outs[1], n, self.path, "output 'embedding'") if self._has_embedding else None
        return logits, emb

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Not available for ONNX models.

        Raises
        ------
        NotImplementedError
            Always: the ONNX file format of graceful carries no separate classifier head.
        """
        raise NotImplementedError(
            f"{self.path}: an ONNX model has no head(e) method; export a TorchScript model "
            "(torch.jit.save with an exported head) to apply its classifier to other embeddings"
        )
