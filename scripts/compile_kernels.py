"""Compile graceful's numba kernels into numba's on-disk cache, so that no first comparison waits for it.

Each kernel compiles on its first call (a few seconds each, once per install and argument type) and is
cached beside its module (``__pycache__``). ``scripts/setup_env.sh`` runs this after installing; a second
run only loads the cache. Run from the repository root::

    .venv/bin/python scripts/compile_kernels.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graceful_core.metrics.average_precision_kernels import count_others, relevant_keys  # noqa: E402
from graceful_core.streaming.kernels import argmax_rows, hash_strings  # noqa: E402


def main() -> None:
    start = time.perf_counter()
    # exact AP: one query (column 0) against three items, the relevant one in column 1
    grid = np.array([[2.0**24, 0.5 * 2**24, 0.9 * 2**24, 0.1 * 2**24]])
    low = np.array([0, 2, 5, 7], dtype=np.int64)
    keys = np.empty((1, 1), dtype=np.int64)
    relevant_keys(grid, np.array([0], dtype=np.int64), 0, 2, low, 3, keys)
    topk, precision = np.empty((1, 2), dtype=np.int64), np.empty((1, 1))
    count_others(grid, 0, 2, low, 3, keys, topk, precision)
    assert topk.tolist() == [[2, 1]] and precision.tolist() == [[0.5]], (topk, precision)
    # the streamed comparison's argmax (both float widths) and id hashes (both string types)
    for dtype in (np.float32, np.float64):
        assert argmax_rows(np.array([[0.0, 1.0]], dtype=dtype))[0].tolist() == [1]
    for kind in (pa.string(), pa.large_string()):
        h = hash_strings(pa.array(["a", "a"], type=kind))
        assert h[0] == h[1]
    print(f"numba kernels compiled or loaded from their cache in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
