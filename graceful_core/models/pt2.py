"""``torch.export`` model files (``.pt2``; docs/formats.md), checked so that loading runs no code.

Contract: a ``torch.export.save`` archive of an exported module whose ``forward(x)`` takes a
float tensor ``[N, C, H, W]`` (N dynamic) and returns logits ``[N, K]`` or a tuple
``(logits [N, K], embedding [N, D])``, exported in eval mode, with ``graceful.json`` in
``extra_files``. :func:`graceful_core.training.export.save_pt2` writes one.

What ``torch.export.load`` (torch 2.13) would execute, and what :func:`check_pt2_archive`
does about it before torch sees a byte (each item read in
``torch/export/pt2_archive/_package.py`` and ``torch/_export/serde/serialize.py``):

- ``data/sample_inputs/<model>.pt`` is a ``torch.save`` zip; ``deserialize_torch_artifact``
  loads it with ``weights_only=True`` and, **if that fails, again with
  ``weights_only=False``** (a pickle payload would run). Its pickle must hold plain tensor
  data only (:func:`pickle_problem`: an allowlist of opcodes and globals, checked with
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
  (:func:`guard_problem`), every ``expr_str`` must be a plain
  arithmetic expression over shape symbols (:func:`sym_expr_problem`), and every node
  target an ATen operator or one of torch's symbolic-shape operators.
- If ``load_pt2`` fails, ``torch.export.load`` falls back to the pre-2.7 format, which
  ``torch.load``-s top-level members; every member here must live under the one archive
  folder and have a known name, so that path finds nothing to load.

Every member name is checked (single root folder, no unknown member, no duplicate, the
usual zip-bomb limits of :mod:`graceful_core.io.safezip`), and the checked bytes, not
the file again, are what torch loads.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import pickletools
import re
import zipfile
from typing import Any

import numpy as np
import torch

from graceful_core.errors import InputError
from graceful_core.io.safezip import check_infos, read_member
from graceful_core.models.devices import resolve_device
from graceful_core.models.info import parse_model_info
from graceful_core.models.outputs import as_input_batch, checked_embedding, checked_logits, short_reason
from graceful_core.types import ModelInfo

__all__ = [
    "Pt2Model",
    "check_pt2_archive",
    "is_pt2_member_list",
    "pickle_problem",
    "sym_expr_problem",
    "guard_problem",
    "program_problem",
    "quiet_torch_export",
    "MAX_JSON_BYTES",
    "PICKLE_GLOBALS",
]

_INFO_FILE = "graceful.json"
_MODEL = "model"
#: Largest JSON member read (the program, the weight and constant configs, extra files).
MAX_JSON_BYTES = 256 << 20
#: Largest pickle (sample inputs) read.
MAX_PICKLE_BYTES = 64 << 20

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

#: The only globals a plain-tensor pickle (``torch.save`` of tensors in tuples/dicts) needs.
PICKLE_GLOBALS = frozenset(
    {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}
    | {
        ("torch", f"{t}Storage")
        for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
    }
)
#: Opcodes of such a pickle: containers, numbers, strings, memo, persistent ids (tensor
#: storages) and REDUCE (which can only call the globals above). No BUILD, INST, OBJ,
#: NEWOBJ, EXT (copyreg), or buffers.
_PICKLE_OPCODES = frozenset(
    {
        "PROTO",
        "FRAME",
        "STOP",
        "MARK",
        "POP",
        "POP_MARK",
        "DUP",
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "PERSID",
        "BINPERSID",
        "PUT",
        "BINPUT",
        "LONG_BINPUT",
        "MEMOIZE",
        "GET",
        "BINGET",
        "LONG_BINGET",
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "TUPLE",
        "EMPTY_TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "LIST",
        "EMPTY_LIST",
        "APPEND",
        "APPENDS",
        "DICT",
        "EMPTY_DICT",
        "SETITEM",
        "SETITEMS",
    }
)
_STRING_OPS = frozenset(
    {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
)
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
#: Members of a ``torch.save`` zip holding only tensors, below its folder.
_TORCH_SAVE_FIXED = {
    "data.pkl",
    "version",
    ".format_version",
    ".storage_alignment",
    "byteorder",
    ".data/version",
    ".data/serialization_id",
}
_TORCH_SAVE_DATA = re.compile(r"^data/\d+$")

#: Node targets besides ATen operators: torch's symbolic-shape operators (``_SYM_OPS``).
SYM_TARGETS = frozenset(
    {
        "_operator.add",
        "_operator.and_",
        "_operator.eq",
        "_operator.floordiv",
        "_operator.ge",
        "_operator.gt",
        "_operator.le",
        "_operator.lshift",
        "_operator.lt",
        "_operator.mod",
        "_operator.mul",
        "_operator.ne",
        "_operator.neg",
        "_operator.or_",
        "_operator.pos",
        "_operator.pow",
        "_operator.rshift",
        "_operator.sub",
        "_operator.truediv",
        "math.trunc",
        "torch._sym_sqrt",
        "torch.sym_float",
        "torch.sym_int",
        "torch.sym_ite",
        "torch.sym_max",
        "torch.sym_min",
        "torch.sym_not",
    }
)
_ATEN_TARGET = re.compile(r"^torch\.ops\.aten\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
#: ATen operators a model file may not use: they read files or print.
DENIED_ATEN = frozenset({"from_file", "_print"})

#: Names a symbolic-shape expression may call or mention (sympy's and torch's shape functions).
_SYM_FUNCS = frozenset(
    {
        "Symbol",
        "Integer",
        "Float",
        "Rational",
        "Max",
        "Min",
        "Mod",
        "Abs",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "And",
        "Or",
        "Not",
        "floor",
        "ceiling",
        "true",
        "false",
        "oo",
        "zoo",
        "nan",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    }
)
_SYM_KEYWORDS = frozenset(
    {
        "positive",
        "negative",
        "nonnegative",
        "nonpositive",
        "integer",
        "real",
        "finite",
        "zero",
        "nonzero",
        "even",
        "odd",
        "prime",
        "composite",
        "rational",
        "commutative",
    }
)
_SYMBOL_NAME = re.compile(r"^[a-z]{1,8}\d{1,9}$")
_MAX_EXPR = 4096
_MAX_INT = 1 << 64
_MAX_POW = 64


def _fail(path: str, problem: str) -> InputError:
    return InputError(path, problem)


# --------------------------------------------------------------------------- pickles
def pickle_problem(data: bytes) -> str | None:
    """Why ``data`` is not a pickle of plain tensor data, or None if it is one.

    Walks the opcodes with :func:`pickletools.genops` (nothing is unpickled). Allowed:
    the opcodes of containers, numbers, strings, the memo, persistent ids and REDUCE;
    globals only from :data:`PICKLE_GLOBALS` (torch's tensor rebuild function, its
    storage types and ``OrderedDict``). ``STACK_GLOBAL`` is followed through the memo to
    the two strings it consumes; anything it cannot name is refused.

    Examples
    --------
    >>> import pickle
    >>> pickle_problem(pickle.dumps(((1, 2.0), {"a": "b"}), protocol=2)) is None
    True
    >>> pickle_problem(pickle.dumps(print, protocol=4))
    'calls builtins.print, which is not plain tensor data'
    """
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # last values pushed (strings, or None for anything else)
    memo_next = 0
    try:
        ops = list(pickletools.genops(data))
    except Exception as e:  # truncated or not a pickle
        return f"is not a readable pickle ({short_reason(e)})"
    if not ops or ops[-1][0].name != "STOP":
        return "is not a complete pickle"
    end = ops[-1][2] + 1
    if end != len(data):
        return f"has {len(data) - end} bytes after the end of its pickle"
    for op, arg, _pos in ops:
        name = op.name
        if name not in _PICKLE_OPCODES:
            return f"uses the pickle opcode {name}, which plain tensor data never needs"
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            if (module, attr) not in PICKLE_GLOBALS:
                return f"calls {module}.{attr}, which is not plain tensor data"
            recent.append(None)
        elif name == "STACK_GLOBAL":
            if len(recent) < 2 or not isinstance(recent[-2], str) or not isinstance(recent[-1], str):
                return "uses STACK_GLOBAL with a name that cannot be read statically"
            module, attr = recent[-2], recent[-1]
            if (module, attr) not in PICKLE_GLOBALS:
                return f"calls {module}.{attr}, which is not plain tensor data"
            del recent[-2:]
            recent.append(None)
        elif name in _STRING_OPS:
            recent.append(arg if isinstance(arg, str) else None)
        elif name in _MEMO_PUT:
            memo[int(arg)] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[memo_next] = recent[-1] if recent else None
            memo_next += 1
        elif name in _MEMO_GET:
            recent.append(memo.get(int(arg)))
        elif name not in ("PROTO", "FRAME"):
            recent.append(None)
    return None


def _torch_save_problem(blob: bytes) -> str | None:
    """Why ``blob`` is not a ``torch.save`` zip of plain tensors, or None."""
    if blob[:4] != b"PK\x03\x04":
        return "is not a torch.save zip archive"
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            infos = z.infolist()
            check_infos("<inner>", infos)
            roots = {i.filename.split("/", 1)[0] for i in infos}
            if len(roots) != 1:
                return "has members outside one archive folder"
            pickles = []
            for i in infos:
                rest = i.filename.split("/", 1)[1] if "/" in i.filename else ""
                if rest == "data.pkl":
                    pickles.append(i)
                elif rest not in _TORCH_SAVE_FIXED and not _TORCH_SAVE_DATA.match(rest):
                    return f"has an unexpected member {i.filename!r}"
            if len(pickles) != 1:
                return "does not hold exactly one data.pkl"
            data = read_member(z, pickles[0], MAX_PICKLE_BYTES)
    except InputError as e:
        return e.problem
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        return f"is a corrupt zip archive ({short_reason(e)})"
    problem = pickle_problem(data)
    return None if problem is None else f"data.pkl {problem}"


# --------------------------------------------------------------------------- program JSON
def _expr_node_problem(node: ast.AST, call_func: bool = False) -> str | None:
    if isinstance(node, ast.Expression):
        return _expr_node_problem(node.body)
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or (isinstance(v, int) and abs(v) < _MAX_INT) or isinstance(v, float):
            return None
        return f"constant {v!r:.40}"
    if isinstance(node, ast.Name):
        if node.id in _SYM_FUNCS or (not call_func and _SYMBOL_NAME.match(node.id)):
            return None
        return f"name {node.id!r:.40}"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _SYM_FUNCS:
            return "a call of something that is not a shape function"
        args = list(node.args)
        if node.func.id == "Symbol":
            if (
                not args
                or not isinstance(args[0], ast.Constant)
                or not isinstance(args[0].value, str)
                or not _SYMBOL_NAME.match(args[0].value)
            ):
                return "a Symbol whose name is not a shape symbol"
            args = args[1:]
        for kw in node.keywords:
            if kw.arg not in _SYM_KEYWORDS or not (
                isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool)
            ):
                return f"keyword {kw.arg!r:.40}"
        for a in args:
            if (p := _expr_node_problem(a)) is not None:
                return p
        return None
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            e = node.right
            if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
                e = e.operand
            if not (isinstance(e, ast.Constant) and isinstance(e.value, int) and abs(e.value) <= _MAX_POW):
                return "a power whose exponent is not a small integer"
        elif not isinstance(
            node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.BitAnd, ast.BitOr)
        ):
            return f"operator {type(node.op).__name__}"
        return _expr_node_problem(node.left) or _expr_node_problem(node.right)
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not, ast.Invert)):
            return f"operator {type(node.op).__name__}"
        return _expr_node_problem(node.operand)
    if isinstance(node, ast.Compare):
        if not all(isinstance(o, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for o in node.ops):
            return "a comparison that is not arithmetic"
        for a in (node.left, *node.comparators):
            if (p := _expr_node_problem(a)) is not None:
                return p
        return None
    if isinstance(node, ast.BoolOp):
        for a in node.values:
            if (p := _expr_node_problem(a)) is not None:
                return p
        return None
    return f"a {type(node).__name__} expression"


def sym_expr_problem(text: Any) -> str | None:
    """Why a symbolic-shape expression (``expr_str``) is not plain arithmetic, or None.

    torch parses these strings with ``sympy.sympify``, i.e. ``eval``. Allowed: integers
    below 2**64, floats, booleans, shape symbols (``s0``, ``u12``; as names or
    ``Symbol('s0', positive=True, integer=True)``), the arithmetic, comparison and
    boolean operators (powers only with a small integer exponent) and sympy's and torch's
    shape functions (``Max``, ``FloorDiv``, ...). No attributes, subscripts, strings
    elsewhere, lambdas or other names.

    Examples
    --------
    >>> sym_expr_problem("Symbol('s77', positive=True, integer=True)") is None
    True
    >>> sym_expr_problem("3*((s77//2)) + Max(2, s0)") is None
    True
    >>> sym_expr_problem("__import__('os').system('id')")
    'a call of something that is not a shape function'
    """
    if not isinstance(text, str):
        return "not a string"
    if len(text) > _MAX_EXPR:
        return f"longer than {_MAX_EXPR} characters"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not a valid expression"
    try:
        return _expr_node_problem(tree)
    except RecursionError:
        return "nested too deeply"


_GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim"})
_GUARD_FUNCS = frozenset({"max", "min", "abs"})
_GUARD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def _guard_node_problem(node: ast.AST) -> str | None:
    if isinstance(node, ast.Expression):
        return _guard_node_problem(node.body)
    if isinstance(node, ast.Constant):
        v = node.value
        ok = isinstance(v, bool) or (isinstance(v, int) and abs(v) < _MAX_INT) or isinstance(v, float)
        return None if ok else f"constant {v!r:.40}"
    if isinstance(node, ast.Subscript):
        base, index = node.value, node.slice
        if isinstance(base, ast.Name) and base.id == "L":  # L['x'] (an input by name)
            ok = isinstance(index, ast.Constant) and isinstance(index.value, str) and _GUARD_KEY.match(index.value)
            return None if ok else "an input reference that is not L['<name>']"
        if isinstance(index, ast.Constant) and isinstance(index.value, int) and not isinstance(index.value, bool):
            return _guard_node_problem(base)  # L['x'][0] or L['x'].size()[2]
        return "a subscript that is not a constant index"
    if isinstance(node, ast.Call):
        if node.keywords:
            return "a call with keywords"
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in _GUARD_METHODS:
            bad = _guard_node_problem(f.value)
            args_ok = all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in node.args)
            return bad or (None if args_ok else "a size/stride call with a non-constant argument")
        if isinstance(f, ast.Name) and f.id in _GUARD_FUNCS:
            for a in node.args:
                if (p := _guard_node_problem(a)) is not None:
                    return p
            return None
        return "a call of something other than size/stride/max/min"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            e = node.right
            if not (isinstance(e, ast.Constant) and isinstance(e.value, int) and abs(e.value) <= _MAX_POW):
                return "a power whose exponent is not a small integer"
        elif not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)):
            return f"operator {type(node.op).__name__}"
        return _guard_node_problem(node.left) or _guard_node_problem(node.right)
    if isinstance(node, ast.UnaryOp):
        return (
            _guard_node_problem(node.operand)
            if isinstance(node.op, (ast.USub, ast.UAdd, ast.Not))
            else f"operator {type(node.op).__name__}"
        )
    if isinstance(node, ast.Compare):
        if not all(isinstance(o, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for o in node.ops):
            return "a comparison that is not arithmetic"
        for a in (node.left, *node.comparators):
            if (p := _guard_node_problem(a)) is not None:
                return p
        return None
    if isinstance(node, ast.BoolOp):
        for a in node.values:
            if (p := _guard_node_problem(a)) is not None:
                return p
        return None
    return f"a {type(node).__name__} expression"


def guard_problem(text: Any) -> str | None:
    """Why one ``guards_code`` entry is not a plain check of input sizes, or None.

    ``ExportedProgram.module()`` compiles these Python expressions into a function, so
    each must be arithmetic and comparisons over the sizes, strides and storage offsets
    of the inputs (``L['x'].size()[2] // 2 != 1``), with ``max``/``min``/``abs``; nothing
    else (no other names, attributes, calls or strings).

    Examples
    --------
    >>> guard_problem("(L['x'].size()[3] // 2) != 1 and max(1, L['x'].size()[2]) >= 1") is None
    True
    >>> guard_problem("__import__('os').system('id')")
    'a call of something other than size/stride/max/min'
    """
    if not isinstance(text, str):
        return "not a string"
    if len(text) > _MAX_EXPR:
        return f"longer than {_MAX_EXPR} characters"
    try:
        return _guard_node_problem(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, MemoryError):
        return "not a valid expression"
    except RecursionError:
        return "nested too deeply"


def _target_problem(target: Any) -> str | None:
    if not isinstance(target, str):
        return f"a node target that is not a name ({type(target).__name__})"
    if target in SYM_TARGETS:
        return None
    m = _ATEN_TARGET.match(target)
    if m is None:
        return f"calls {target[:80]!r}, which is not an ATen operator"
    if m.group(1) in DENIED_ATEN:
        return f"calls {target!r}, which reads or writes outside the model"
    return None


def _walk(obj: Any, depth: int = 0):
    if depth > 200:
        raise RecursionError
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _walk(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, depth + 1)


def program_problem(program: Any) -> str | None:
    """Why the program JSON (``models/model.json``) could run code when loaded or run, or None.

    Every ``guards_code`` entry a plain size check (:func:`guard_problem`); every node's target an ATen operator (not
    :data:`DENIED_ATEN`) or a symbolic-shape operator; every ``expr_str`` plain arithmetic
    (:func:`sym_expr_problem`); no subgraphs (``as_graph``) and no custom objects.
    """
    if not isinstance(program, dict) or "graph_module" not in program:
        return "its program is not a torch.export program"
    guards = program.get("guards_code") or []
    if not isinstance(guards, list):
        return "its program's guards_code is not a list"
    for g in guards:
        if (p := guard_problem(g)) is not None:
            return f"its program carries guard code that is not a plain size check ({p}), which torch would run"
    try:
        for d in _walk(program):
            if "target" in d and "inputs" in d and "outputs" in d and (p := _target_problem(d["target"])) is not None:
                return f"its program {p}"
            if "expr_str" in d and (p := sym_expr_problem(d["expr_str"])) is not None:
                return f"its program has a shape expression that is not plain arithmetic ({p})"
            if "as_graph" in d:
                return "its program has subgraphs (control flow), which graceful does not load"
            if d.get("custom_obj_values"):
                return "its program holds custom objects, which graceful does not load"
    except RecursionError:
        return "its program is nested too deeply"
    return None


def _config_problem(config: Any, kind: str, members: dict[str, int]) -> str | None:
    """Check a weights/constants payload config: raw tensors only, each in bounds of its member."""
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
        try:
            dtype = _SERIALIZE_TO_TORCH_DTYPE[tm["dtype"]]
            sizes = [s["as_int"] for s in tm["sizes"]]
            strides = [s["as_int"] for s in tm["strides"]]
            offset = tm["storage_offset"]["as_int"]
        except (KeyError, TypeError, IndexError):
            return f"its {kind} entry {fqn!r:.60} has no readable tensor description"
        ints = [*sizes, *strides, offset]
        if len(sizes) != len(strides) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MAX_INT for v in ints
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
        roots = {i.filename.split("/", 1)[0] for i in infos}
        if len(roots) != 1 or any("/" not in i.filename for i in infos):
            raise bad("its members are not all inside one archive folder")
        root = roots.pop()
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
        if _SAMPLE_INPUTS in members and (p := _torch_save_problem(read(_SAMPLE_INPUTS, MAX_PICKLE_BYTES))):
            raise bad(f"its sample inputs {p}")
        info = ""
        if f"extra/{_INFO_FILE}" in members:
            info = read(f"extra/{_INFO_FILE}", MAX_JSON_BYTES).decode("utf-8", errors="replace")
    return blob, info


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
        extra = {_INFO_FILE: ""}
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
