"""Pickles that may only hold plain tensor data, checked opcode by opcode without unpickling.

A ``.pt2`` archive's sample inputs are a ``torch.save`` zip whose ``data.pkl`` torch would
unpickle (with ``weights_only=False`` if the safe load fails): :func:`torch_save_problem`
checks that zip's members and :func:`pickle_problem` its pickle, before torch sees either.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from typing import Any

from graceful_core.errors import InputError
from graceful_core.io.safezip import check_infos, read_member
from graceful_core.models.outputs import short_reason

#: Largest pickle (sample inputs) read.
MAX_PICKLE_BYTES = 64 << 20

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


def _end_problem(ops: list[tuple[Any, Any, int | None]], n_bytes: int) -> str | None:
    """Why the opcodes ``ops`` of ``n_bytes`` bytes are not one complete pickle and nothing after it, or None."""
    if not ops or ops[-1][0].name != "STOP":
        return "is not a complete pickle"
    end = (ops[-1][2] or 0) + 1
    if end != n_bytes:
        return f"has {n_bytes - end} bytes after the end of its pickle"
    return None


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
    if (p := _end_problem(ops, len(data))) is not None:
        return p
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
            assert isinstance(arg, int)  # pickletools reads the memo opcodes' argument as an int
            memo[arg] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[memo_next] = recent[-1] if recent else None
            memo_next += 1
        elif name in _MEMO_GET:
            assert isinstance(arg, int)  # as for PUT
            recent.append(memo.get(arg))
        elif name not in ("PROTO", "FRAME"):
            recent.append(None)
    return None


def torch_save_problem(blob: bytes) -> str | None:
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
