"""``torch.export`` model files (``.pt2``; docs/formats.md) as a :class:`graceful_core.types.Model`.

The archive is checked first (:func:`graceful_core.models.pt2_archive.check_pt2_archive`,
without torch), and torch loads exactly the bytes that were checked.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

import numpy as np
import torch

from graceful_core.errors import InputError
from graceful_core.models.devices import resolve_device
from graceful_core.models.info import parse_model_info
from graceful_core.models.outputs import as_input_batch, checked_embedding, checked_logits, short_reason
from graceful_core.models.pt2_archive import INFO_FILE, check_pt2_archive
from graceful_core.types import ModelInfo


@contextlib.contextmanager
def quiet_torch_export():
    """Silence torch.export's warning logs (it logs a traceback before raising on bad files)."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch.export.pt2_archive._package")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


#: ATen operators whose argument 2 is ``train`` (dropout) or argument 5 ``training`` (batch norm).
_DROPOUT_OPS = {"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout"}
_BATCH_NORM_OPS = {"batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional"}


def _training_mode_problem(ep) -> str | None:
    """Why the program behaves as in training (dropout on, batch statistics), or None."""
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        op = getattr(getattr(node.target, "_schema", None), "name", "").split("::")[-1]
        if op in _DROPOUT_OPS and len(node.args) > 2 and node.args[2] is True:
            return "was exported in training mode (dropout is on): call model.eval() before torch.export.export"
        if op in _BATCH_NORM_OPS and len(node.args) > 5 and node.args[5] is True:
            return (
                "was exported in training mode (batch norm uses batch statistics): "
                "call model.eval() before torch.export.export"
            )
    return None


class Pt2Model:
    """A ``torch.export`` model file (implements :class:`graceful_core.types.Model`).

    Parameters
    ----------
    path : str or PathLike
        The ``.pt2`` archive, as the user named it.
    device : str
        ``"cpu"`` (default), ``"cuda[:N]"`` or ``"auto"``; the program is moved there with
        ``torch.export.passes.move_to_device_pass``.

    Attributes
    ----------
    info : ModelInfo
        The validated ``graceful.json`` from ``extra_files``.
    path : str
        The file.
    device : str
        The torch device the program runs on.
    module : torch.fx.GraphModule
        ``ExportedProgram.module()``.

    Raises
    ------
    InputError
        Anything :func:`check_pt2_archive` refuses; a file ``torch.export.load`` rejects;
        a missing or invalid ``graceful.json``; a program that does not take one input
        ``[N, C, H, W]`` with a dynamic N matching ``graceful.json``, returns something
        other than logits or (logits, embedding), or was exported in training mode.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        self.path = os.fspath(path)
        self.device = resolve_device(device)
        blob, info_text = check_pt2_archive(self.path)
        self.info: ModelInfo = parse_model_info(info_text, self.path)
        extra = {INFO_FILE: ""}
        try:
            with quiet_torch_export():
                ep = torch.export.load(io.BytesIO(blob), extra_files=extra)
        except Exception as e:  # any failure to load a user's file is that file's problem
            raise InputError(self.path, f"not a torch.export model ({short_reason(e)})") from None
        self._check_signature(ep)
        if (p := _training_mode_problem(ep)) is not None:
            raise InputError(self.path, p)
        if self.device != "cpu":
            from torch.export.passes import move_to_device_pass

            ep = move_to_device_pass(ep, self.device)
        self.program = ep
        self.module = ep.module()

    def __repr__(self) -> str:
        return f"Pt2Model({self.path!r}, name={self.info.name!r}, classes={len(self.info.classes)})"

    def _check_signature(self, ep) -> None:
        sig = ep.graph_signature
        if len(sig.user_inputs) != 1:
            raise InputError(
                self.path, f"the exported forward takes {len(sig.user_inputs)} inputs; expected one, x [N, C, H, W]"
            )
        n_out = len(sig.user_outputs)
        if n_out not in (1, 2):
            raise InputError(
                self.path, f"the exported forward returns {n_out} tensors; expected logits or (logits, embedding)"
            )
        self._has_embedding = n_out == 2
        name = sig.user_inputs[0]
        node = next((n for n in ep.graph.nodes if n.op == "placeholder" and n.name == name), None)
        val = None if node is None else node.meta.get("val")
        shape = list(getattr(val, "shape", []))
        if len(shape) != 4:
            raise InputError(self.path, f"the exported input has shape {shape}; expected [N, C, H, W]")
        if isinstance(shape[0], int):
            raise InputError(
                self.path,
                f"the exported batch dimension is fixed at {shape[0]}: export with "
                "dynamic_shapes=({0: torch.export.Dim('N')},) (see docs/models.md)",
            )
        want = list(self.info.input_size)
        got = [d if isinstance(d, int) else None for d in shape[1:]]
        if any(g is not None and g != w for g, w in zip(got, want)):
            raise InputError(
                self.path,
                f"the exported input has shape [N, {', '.join(str(g) for g in got)}] but "
                f"graceful.json says [N, {', '.join(map(str, want))}]",
            )

    @property
    def has_embedding(self) -> bool:
        """True when the exported forward returns ``(logits, embedding)``."""
        return self._has_embedding

    @property
    def has_head(self) -> bool:
        """Always False: a ``.pt2`` archive of graceful holds one program, ``forward``."""
        return False

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``[N, K]`` and embeddings ``[N, D]`` (or None) of a normalised batch ``[N, C, H, W]``.

        Raises
        ------
        ValueError
            ``x`` is not ``[N, *info.input_size]``.
        InputError
            The program fails on the batch or returns shapes that disagree with ``graceful.json``.
        """
        batch = as_input_batch(x, self.info)
        n = batch.shape[0]
        with torch.inference_mode():
            try:
                out = self.module(torch.from_numpy(batch).to(self.device))
            except Exception as e:
                raise InputError(
                    self.path, f"forward failed on a batch of shape {list(batch.shape)} ({short_reason(e)})"
                ) from None
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if not all(isinstance(t, torch.Tensor) for t in outs):
            raise InputError(self.path, "forward returns something other than tensors")
        arrays = [t.detach().to(device="cpu", dtype=torch.float32).numpy() for t in outs]
        logits = checked_logits(arrays[0], n, self.info, self.path)
        emb = checked_embedding(arrays[1], n, self.path, "forward's embedding") if self._has_embedding else None
        return logits, emb

    def head(self, embedding: np.ndarray) -> np.ndarray:
        """Not available for ``.pt2`` models.

        Raises
        ------
        NotImplementedError
            Always: graceful's ``.pt2`` contract has no separate classifier head.
        """
        raise NotImplementedError(f"{self.path}: a .pt2 model has no head(e) method")
