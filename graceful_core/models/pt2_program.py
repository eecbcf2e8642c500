"""The program JSON of a ``.pt2`` archive (``models/model.json``), checked for code in disguise.

Torch compiles every ``guards_code`` entry into a Python function, parses every
``expr_str`` with ``sympy.sympify`` (``eval``) and resolves every node target by attribute
lookup: :func:`program_problem` accepts plain size checks (:func:`guard_problem`), plain
arithmetic over shape symbols (:func:`sym_expr_problem`) and ATen or symbolic-shape operators
only. Each expression is parsed with :mod:`ast`, never evaluated.
"""

from __future__ import annotations

import ast
import re
from typing import Any

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
MAX_INT = 1 << 64
_MAX_POW = 64


def _expr_node_problem(node: ast.AST, call_func: bool = False) -> str | None:  # noqa: C901 - an allow-list: one branch per AST node kind
    if isinstance(node, ast.Expression):
        return _expr_node_problem(node.body)
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or (isinstance(v, int) and abs(v) < MAX_INT) or isinstance(v, float):
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


def _guard_node_problem(node: ast.AST) -> str | None:  # noqa: C901 - an allow-list: one branch per AST node kind
    if isinstance(node, ast.Expression):
        return _guard_node_problem(node.body)
    if isinstance(node, ast.Constant):
        v = node.value
        ok = isinstance(v, bool) or (isinstance(v, int) and abs(v) < MAX_INT) or isinstance(v, float)
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
