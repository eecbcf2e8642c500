"""Benchmark: flip metrics on large synthetic predictions tables (Parquet).

Writes two tables of N rows (default 10 million, 10 classes, float32 logits as a
list column, string ids, integer labels), then measures in fresh subprocesses:

1. pyarrow alone reading the two files (the columns compare needs);
2. the whole comparison: ``load_predictions_table`` x2 + ``compare_predictions`` +
   ``to_report()`` (every DESIGN §2 metric, per-class table, flip id lists).

Prints both times and their ratio (goal: <= 3x), and peak memory (VmHWM) of the
comparison against the in-memory size of the columns it reads (goal: <= 3x).

Usage: python benchmarks/bench_compare.py [--rows 10000000] [--dir /tmp/graceful-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

K = 10


def make_tables(n: int, folder: str, seed: int = 0) -> tuple[str, str]:
    os.makedirs(folder, exist_ok=True)
    old_path, new_path = os.path.join(folder, f"old_{n}.parquet"), os.path.join(folder, f"new_{n}.parquet")
    if os.path.exists(old_path) and os.path.exists(new_path):
        return old_path, new_path
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n, dtype=np.int64)
    ids = pa.array(np.char.add("img", np.arange(n).astype("U9")))
    for path, acc in ((old_path, 0.90), (new_path, 0.93)):
        logits = rng.standard_normal((n, K), dtype=np.float32)
        right = rng.random(n) < acc
        logits[np.arange(n), labels] += np.where(right, 4.0, 0.0).astype(np.float32)
        col = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), K).cast(pa.list_(pa.float32()))
        table = pa.table({"id": ids, "label": pa.array(labels), "logits": col})
        pq.write_table(table, path + ".tmp", row_group_size=1 << 20)
        os.replace(path + ".tmp", path)
        del logits, col, table
    return old_path, new_path


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child_read(old: str, new: str) -> dict:
    t0 = time.perf_counter()
    a = pq.read_table(old, columns=["id", "label", "logits"])
    b = pq.read_table(new, columns=["id", "label", "logits"])
    dt = time.perf_counter() - t0
    return {"seconds": dt, "bytes": a.nbytes + b.nbytes, "peak_mb": _peak_rss_mb()}


def _child_compare(old: str, new: str) -> dict:
    from graceful_core.comparison import compare_predictions
    from graceful_core.io.tables import load_predictions_table

    base = _peak_rss_mb()
    t0 = time.perf_counter()
    o = load_predictions_table(old)
    n = load_predictions_table(new, classes=o.classes)
    rep = compare_predictions(o, n).to_report()
    dt = time.perf_counter() - t0
    return {"seconds": dt, "peak_mb": _peak_rss_mb(), "baseline_mb": base, "nfr": rep["negative_flip_rate"]}


def _run_child(kind: str, old: str, new: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, old, new], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{kind} child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/graceful-bench")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, old, new = args.child
        print(json.dumps(_child_read(old, new) if kind == "read" else _child_compare(old, new)))
        return
    t0 = time.perf_counter()
    old, new = make_tables(args.rows, args.dir)
    print(f"tables: {args.rows:,} rows x {K} classes ready in {time.perf_counter() - t0:.1f} s "
          f"({(os.path.getsize(old) + os.path.getsize(new)) / 2**20:.0f} MiB on disk)")
    read = min((_run_child("read", old, new) for _ in range(2)), key=lambda r: r["seconds"])
    comp = min((_run_child("compare", old, new) for _ in range(2)), key=lambda r: r["seconds"])
    col_mb = read["bytes"] / 2**20
    print(f"pyarrow read of both files     : {read['seconds']:.2f} s  (columns in memory {col_mb:.0f} MiB)")
    print(f"graceful compare (load+report) : {comp['seconds']:.2f} s")
    print(f"time ratio compare / read      : {comp['seconds'] / read['seconds']:.2f}x  (goal <= 3x)")
    print(f"peak RSS of compare process    : {comp['peak_mb']:.0f} MiB (interpreter+imports {comp['baseline_mb']:.0f} MiB)")
    print(f"memory ratio peak / columns    : {comp['peak_mb'] / col_mb:.2f}x total, "
          f"{(comp['peak_mb'] - comp['baseline_mb']) / col_mb:.2f}x above the imports  (goal <= 3x)")
    print(f"NFR = {comp['nfr']:.5f}")


if __name__ == "__main__":
    main()
