"""``torch.export`` model files (``.pt2``; docs/formats.md): the archive checked, without torch, so that loading runs no code.

Contract: a ``torch.export.save`` archive of an exported module whose ``forward(x)`` takes a
float tensor ``[N, C, H, W]`` (N dynamic) and returns logits ``[N, K]`` or a tuple
``(logits [N, K], embedding [N, D])``, exported in eval mode, with ``graceful.json`` in
``extra_files``. :func:`graceful_core.training.export.save_pt2` writes one;
:class:`graceful_core.models.pt2.Pt2Model` loads one after :func:`check_pt2_archive`.

What ``torch.export.load`` (torch 2.13) would execute, and what :func:`check_pt2_archive`
does about it before torch sees a byte (each item read in
``torch/export/pt2_archive/_package.py`` and ``torch/_export/serde/serialize.py``):

- ``data/sample_inputs/<model>.pt`` is a ``torch.save`` zip; ``deserialize_torch_artifact``
  loads it with ``weights_only=True`` and, **if that fails, again with
  ``weights_only=False``** (a pickle payload would run). Its pickle must hold plain tensor
  data only (:func:`~graceful_core.models.pt2_pickles.pickle_problem`: an allowlist of opcodes and globals, checked with
  :mod:`pickletools` without unpickling).
- Weights and constants whose config says ``use_pickle`` are ``torch.load``-ed with
  ``weights_only=False`` (torch uses this for tensor subclasses); ``custom_obj_*``
  constants go through TorchScript's unpickler and ``opaque_obj_*`` through
  ``pickle.loads``; a legacy ``data/weights/<model>.pt`` or ``data/constants/<model>.pt``
  is unpickled too. All of these are refused: graceful loads plain tensors stored raw.
- ``data/aotinductor/`` holds compiled shared libraries that torch would load; refused.
- The program JSON is code in disguise in three places: ``guards_code`` is compiled into a
  Python function by ``ExportedProgram.module()``; ``expr_str`` symbolic shapes are parsed
  by ``sympy.sympify`` (``eval``); node targets are resolved by attribute lookup from
  ``torch``/``operator``/``math`` (``torch.os.system`` would resolve) and called when the
  model runs. So every ``guards_code`` entry must be a plain size check
  (:func:`~graceful_core.models.pt2_program.guard_problem`), every ``expr_str`` must be a plain
  arithmetic expression over shape symbols (:func:`~graceful_core.models.pt2_program.sym_expr_problem`), and every node
  target an ATen operator or one of torch's symbolic-shape operators.
- If ``load_pt2`` fails, ``torch.export.load`` falls back to the pre-2.7 format, which
  ``torch.load``-s top-level members; every member here must live under the one archive
  folder and have a known name, so that path finds nothing to load.

Every member name is checked (single root folder, no unknown member, no duplicate, the
usual zip-bomb limits of :mod:`graceful_core.io.safezip`), and the checked bytes, not
the file again, are what torch loads.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from graceful_core.errors import InputError
from graceful_core.io.safezip import check_infos, read_member
from graceful_core.models.outputs import short_reason
from graceful_core.models.pt2_pickles import MAX_PICKLE_BYTES, torch_save_problem
from graceful_core.models.pt2_program import MAX_INT, program_problem

INFO_FILE = "graceful.json"
_MODEL = "model"
#: Largest JSON member read (the program, the weight and constant configs, extra files).
MAX_JSON_BYTES = 256 << 20

#: Fixed members below the archive folder (torch's writer adds the ``.data`` ones).
_FIXED = {
    "archive_format",
    "archive_version",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
    ".format_version",
    ".storage_alignment",
    "version",
}
_WEIGHTS_CONFIG = f"data/weights/{_MODEL}_weights_config.json"
_CONSTANTS_CONFIG = f"data/constants/{_MODEL}_constants_config.json"
_PROGRAM = f"models/{_MODEL}.json"
_SAMPLE_INPUTS = f"data/sample_inputs/{_MODEL}.pt"
_WEIGHT = re.compile(r"^data/weights/(weight_\d+)$")
_CONSTANT = re.compile(r"^data/constants/(tensor_\d+)$")
_EXTRA = re.compile(r"^extra/[A-Za-z0-9_.-]+$")


def _fail(path: str, problem: str) -> InputError:
    return InputError(path, problem)


def _config_problem(config: Any, kind: str, members: dict[str, int]) -> str | None:
    """Check a weights/constants payload config: raw tensors only, each in bounds of its member."""
    # torch's own table of serialised dtypes (the one torch.export.load reads); torch is heavy, so imported here
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return f"its {kind} config is not a payload config"
    pattern = _WEIGHT if kind == "weights" else _CONSTANT
    for fqn, meta in config["config"].items():
        if not isinstance(meta, dict):
            return f"its {kind} config entry {fqn!r:.60} is not an object"
        if meta.get("use_pickle"):
            return (
                f"its {kind} entry {fqn!r:.60} is pickled (a tensor subclass or Python object, which "
                "torch unpickles with weights_only=False): graceful loads plain tensors only"
            )
        name = f"data/{kind}/{meta.get('path_name')}"
        if not pattern.match(name) or name not in members:
            return f"its {kind} entry {fqn!r:.60} points at {meta.get('path_name')!r:.60}, not a tensor in the archive"
        tm = meta.get("tensor_meta")
        if not isinstance(tm, dict):
            return f"its {kind} entry {fqn!r:.60} has no readable tensor description"
        try:
            dtype = _SERIALIZE_TO_TORCH_DTYPE[tm["dtype"]]
            sizes = [s["as_int"] for s in tm["sizes"]]
            strides = [s["as_int"] for s in tm["strides"]]
            offset = tm["storage_offset"]["as_int"]
        except (KeyError, TypeError, IndexError):
            return f"its {kind} entry {fqn!r:.60} has no readable tensor description"
        ints = [*sizes, *strides, offset]
        if len(sizes) != len(strides) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_INT for v in ints
        ):
            return f"its {kind} entry {fqn!r:.60} has an invalid shape"
        numel = int(np.prod(sizes, dtype=object)) if sizes else 1
        extent = 0 if numel == 0 else offset + 1 + sum((s - 1) * st for s, st in zip(sizes, strides))
        if extent * dtype.itemsize > max(members[name], 0):
            return f"its {kind} entry {fqn!r:.60} needs more bytes than {meta.get('path_name')!r:.60} holds"
    return None


def is_pt2_member_list(names: list[str]) -> bool:
    """True when zip member names look like a ``torch.export.save`` archive (``<root>/archive_format``
    and ``<root>/models/...``)."""
    roots_fmt = {n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith("/archive_format")}
    return any(n.split("/", 1)[0] in roots_fmt and n.split("/", 2)[1:2] == ["models"] for n in names)


def _members(infos: list[zipfile.ZipInfo], bad: Callable[[str], InputError]) -> tuple[str, dict[str, int]]:
    """The archive folder and its files' sizes by path below it; ``bad(problem)`` for a member out of
    the folder or of an unknown kind."""
    roots = {i.filename.split("/", 1)[0] for i in infos}
    if len(roots) != 1 or any("/" not in i.filename for i in infos):
        raise bad("its members are not all inside one archive folder")
    members: dict[str, int] = {}
    for i in infos:
        rest = i.filename.split("/", 1)[1]
        if i.is_dir():
            continue
        known = (
            rest in _FIXED
            or rest in (_WEIGHTS_CONFIG, _CONSTANTS_CONFIG, _PROGRAM, _SAMPLE_INPUTS)
            or _WEIGHT.match(rest)
            or _CONSTANT.match(rest)
            or _EXTRA.match(rest)
        )
        if not known:
            what = "compiled code (AOTInductor)" if rest.startswith("data/aotinductor/") else "an unknown member"
            raise bad(f"{i.filename!r} is {what}; graceful loads only exported programs with raw tensors")
        members[rest] = i.file_size
    return roots.pop(), members


def check_pt2_archive(path: str | os.PathLike) -> tuple[bytes, str]:
    """Check a ``.pt2`` file completely, without torch reading it; return its bytes and ``graceful.json``.

    Parameters
    ----------
    path : str or PathLike
        The file, as the user named it (named in every error).

    Returns
    -------
    (bytes, str)
        The file's content (hand exactly these bytes to ``torch.export.load``) and the
        text of ``extra/graceful.json`` ("" when missing).

    Raises
    ------
    InputError
        ``<path>: not a torch.export model (...)`` for anything listed in the module
        docstring: unknown or misplaced members, pickles that are not plain tensor data,
        pickled weights or constants, compiled code, guard code, shape expressions that
        are not arithmetic, node targets that are not ATen operators.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or short_reason(e)})") from None

    def bad(problem: str) -> InputError:
        return _fail(path, f"not a torch.export model: {problem}")

    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as e:
        raise bad(f"corrupt zip archive ({short_reason(e)})") from None
    with z:
        infos = z.infolist()
        check_infos(path, infos)
        root, members = _members(infos, bad)

        def read(rest: str, limit: int) -> bytes:
            return read_member(z, f"{root}/{rest}", limit, path)

        for need in ("archive_format", "archive_version", _PROGRAM, _WEIGHTS_CONFIG, _CONSTANTS_CONFIG):
            if need not in members:
                raise bad(f"{root}/{need} is missing")
        if read("archive_format", 64).strip() != b"pt2":
            raise bad("archive_format is not 'pt2'")

        def load_json(rest: str) -> Any:
            try:
                return json.loads(read(rest, MAX_JSON_BYTES))
            except (ValueError, RecursionError):
                raise bad(f"{root}/{rest} is not valid JSON") from None

        for cfg, kind in ((_WEIGHTS_CONFIG, "weights"), (_CONSTANTS_CONFIG, "constants")):
            if (p := _config_problem(load_json(cfg), kind, members)) is not None:
                raise bad(p)
        if (p := program_problem(load_json(_PROGRAM))) is not None:
            raise bad(p)
        if _SAMPLE_INPUTS in members and (p := torch_save_problem(read(_SAMPLE_INPUTS, MAX_PICKLE_BYTES))):
            raise bad(f"its sample inputs {p}")
        info = ""
        if f"extra/{INFO_FILE}" in members:
            info = read(f"extra/{INFO_FILE}", MAX_JSON_BYTES).decode("utf-8", errors="replace")
    return blob, info
