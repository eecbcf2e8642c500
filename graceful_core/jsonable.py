"""Values made JSON-safe, the one way: NumPy scalars and arrays as Python values, NaN and ±inf as None.

Strict JSON has no NaN or infinity; a metric that is undefined (``docs/metrics.md``: NaN,
shown as "n/a") is written as ``null``. Every JSON a face writes (the report of
``compare --json``, a model set's report, the app's run records) goes through
:func:`json_clean`, so an undefined number reads the same everywhere.

Examples
--------
>>> import numpy as np
>>> json_clean({"nfr": np.float64(0.25), "ci": (np.nan, 1.0), "n": np.int64(3), "ok": np.bool_(True)})
{'nfr': 0.25, 'ci': [None, 1.0], 'n': 3, 'ok': True}
>>> json_clean(float("inf")) is None
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_clean"]


def json_clean(obj: Any) -> Any:
    """Recursively turn NumPy scalars into Python ones and nan/inf into None.

    Dict keys become strings, tuples and arrays become lists; anything else (str, None,
    Python ints) is returned as it is.
    """
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    return obj
