"""Parse and validate a model's ``graceful.json`` description (docs/formats.md).

The JSON object has the keys ``name`` (string), ``input_size`` ``[C, H, W]`` (positive
integers, C = 1 or 3), ``mean`` and ``std`` (C finite numbers each, every ``std > 0``) and
``classes`` (a non-empty list of unique, non-empty strings). Other keys are ignored, so
newer writers stay readable. Every problem is an :class:`~graceful_core.errors.InputError`
that names the model file and starts with ``graceful.json:``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from graceful_core.errors import InputError
from graceful_core.types import ModelInfo

__all__ = ["parse_model_info", "info_from_mapping", "SUPPORTED_CHANNELS", "MAX_SIDE"]

#: Channel counts the preprocessing can produce (grayscale "L" or "RGB").
SUPPORTED_CHANNELS = (1, 3)
#: Largest accepted input height/width: a hostile ``input_size`` must not make
#: preprocessing allocate gigabytes per image.
MAX_SIDE = 4096

_REQUIRED = ("name", "input_size", "mean", "std", "classes")


def _fail(source: str, problem: str) -> InputError:
    return InputError(source, f"graceful.json: {problem}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_name(v: Any, source: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(source, f"'name' must be a non-empty string, got {v!r:.60}")
    return v


def _parse_input_size(v: Any, source: str) -> tuple[int, int, int]:
    if not isinstance(v, list) or len(v) != 3 or not all(_is_int(d) for d in v):
        raise _fail(source, f"'input_size' must be a list of 3 integers [C, H, W], got {v!r:.60}")
    c, h, w = v
    if min(c, h, w) < 1:
        raise _fail(source, f"'input_size' values must be positive, got {v}")
    if c not in SUPPORTED_CHANNELS:
        raise _fail(source, f"'input_size' channels must be 1 (grayscale) or 3 (RGB), got {c}")
    if max(h, w) > MAX_SIDE:
        raise _fail(source, f"'input_size' height and width must be at most {MAX_SIDE}, got {h}x{w}")
    return (c, h, w)


def _parse_channel_stats(key: str, v: Any, channels: int, source: str) -> tuple[float, ...]:
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise _fail(source, f"'{key}' must be a list of finite numbers, got {v!r:.60}")
    if len(v) != channels:
        raise _fail(source, f"'{key}' has {len(v)} values but input_size has {channels} channel(s)")
    return tuple(float(x) for x in v)


def _parse_classes(v: Any, source: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise _fail(source, f"'classes' must be a non-empty list of class names, got {v!r:.60}")
    bad = [x for x in v if not isinstance(x, str) or not x]
    if bad:
        raise _fail(source, f"'classes' must hold non-empty strings, got {bad[0]!r:.60}")
    seen: set[str] = set()
    for name in v:
        if name in seen:
            raise _fail(source, f"'classes' lists {name!r:.60} twice")
        seen.add(name)
    return tuple(v)


def parse_model_info(text: str, source: str) -> ModelInfo:
    """Validate the ``graceful.json`` text of a model file and build its :class:`ModelInfo`.

    Parameters
    ----------
    text : str
        The JSON text (an object with ``name``, ``input_size``, ``mean``, ``std``, ``classes``).
    source : str
        The model file, named in every error.

    Returns
    -------
    ModelInfo
        ``input_size`` as ``(C, H, W)``, ``mean``/``std`` as C floats, ``classes`` as a tuple.

    Raises
    ------
    InputError
        ``<source>: graceful.json: <problem>`` for empty or invalid JSON, a missing key,
        a wrong type, ``mean``/``std`` lengths that differ from C, a ``std`` that is not
        positive, or empty or repeated class names.
    """
    if not isinstance(text, str) or not text.strip():
        raise _fail(source, "missing or empty (the model file must carry its description)")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(source, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise _fail(source, "not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise _fail(source, f"must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise _fail(source, f"missing key(s) {', '.join(repr(k) for k in missing)}")
    name = _parse_name(obj["name"], source)
    input_size = _parse_input_size(obj["input_size"], source)
    mean = _parse_channel_stats("mean", obj["mean"], input_size[0], source)
    std = _parse_channel_stats("std", obj["std"], input_size[0], source)
    if any(s <= 0 for s in std):
        raise _fail(source, f"'std' values must be > 0, got {list(std)}")
    classes = _parse_classes(obj["classes"], source)
    return ModelInfo(name=name, input_size=input_size, mean=mean, std=std, classes=classes)


def info_from_mapping(info: ModelInfo | dict, source: str = "info") -> ModelInfo:
    """A :class:`ModelInfo` from itself or from a dict of the ``graceful.json`` fields (validated).

    Raises
    ------
    InputError
        A dict that is not a valid ``graceful.json`` (the message names ``source``).
    TypeError
        Neither a ModelInfo nor a dict.
    """
    if isinstance(info, ModelInfo):
        return info
    if isinstance(info, dict):
        return parse_model_info(json.dumps(info), source)
    raise TypeError(f"expected a ModelInfo or a dict of graceful.json fields, got {type(info).__name__}")
