"""Write large synthetic predictions tables for the compare benchmarks, with a NumPy reference.

For N rows (10 classes, float32 logits as a list column, string ids ``img<i>``, integer
labels, the class list in the Parquet metadata as ``predict`` writes it) this writes, in
``DIR/<N>/``:

- ``old.parquet``, ``new.parquet``: both tables, rows in the same order;
- ``new_shuffled.parquet`` (variant ``shuffled``): the new table's rows in another order
  (DuckDB sorts them by a hash of the id, out of core);
- ``old_shards/``, ``new_shards/`` (variant ``shards``): both tables as 8 Parquet files of
  uneven sizes, cut at different rows in the two tables;
- ``reference.json``: the joint counts C[y, old, new] and the flip-confidence split,
  computed with plain NumPy from the generated arrays while writing (argmax with
  ``np.argmax``; softmax in float64), independently of graceful's code.

Rows are generated in chunks of 1M (memory stays ~1 GiB whatever N) from
``default_rng([seed, chunk])``, so a table of any size is reproducible.

Usage: python benchmarks/make_large_tables.py --rows 20000000 [--variants same,shuffled,shards]
       [--dir /tmp/graceful-bench] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

K = 10
CHUNK = 1 << 20
SHARDS = 8
CLASSES = [str(j) for j in range(K)]
META = {b"graceful.classes": json.dumps(CLASSES).encode()}
VARIANTS = ("same", "shuffled", "shards")


def paths(folder: str, n: int) -> dict[str, str]:
    d = os.path.join(folder, str(n))
    return {
        "dir": d,
        "old": os.path.join(d, "old.parquet"),
        "new": os.path.join(d, "new.parquet"),
        "new_shuffled": os.path.join(d, "new_shuffled.parquet"),
        "old_shards": os.path.join(d, "old_shards"),
        "new_shards": os.path.join(d, "new_shards"),
        "reference": os.path.join(d, "reference.json"),
    }


def _chunk(seed: int, c: int, start: int, stop: int):
    rng = np.random.default_rng([seed, c])
    m = stop - start
    y = rng.integers(0, K, m, dtype=np.int64)
    out = []
    for acc in (0.90, 0.93):
        logits = rng.standard_normal((m, K), dtype=np.float32)
        right = rng.random(m) < acc
        logits[np.arange(m), y] += np.where(right, 4.0, 0.0).astype(np.float32)
        out.append(logits)
    ids = np.char.add("img", np.arange(start, stop).astype(str))
    return ids, y, out[0], out[1]


def _p_true(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Softmax probability of the true class, in float64 (the reference's own formula)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[np.arange(len(y)), y] / e.sum(axis=1)


def _table(ids, y, logits) -> pa.Table:
    col = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), K).cast(pa.list_(pa.float32()))
    return pa.table({"id": pa.array(ids, type=pa.string()), "label": pa.array(y), "logits": col}, metadata=META)


class _ShardWriter:
    """Writes consecutive chunks into ``len(cuts) + 1`` files split at the given row numbers."""

    def __init__(self, folder: str, cuts: list[int]) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder, self.cuts, self.row, self.j, self.w = folder, cuts, 0, 0, None

    def write(self, t: pa.Table) -> None:
        while t.num_rows:
            end = self.cuts[self.j] if self.j < len(self.cuts) else None
            take = t.num_rows if end is None else min(t.num_rows, end - self.row)
            if self.w is None:
                self.w = pq.ParquetWriter(os.path.join(self.folder, f"part-{self.j}.parquet"), t.schema)
            self.w.write_table(t.slice(0, take), row_group_size=CHUNK)
            self.row += take
            t = t.slice(take)
            if end is not None and self.row == end:
                self.w.close()
                self.w, self.j = None, self.j + 1

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


def _uneven_cuts(n: int, rng: np.random.Generator) -> list[int]:
    w = rng.random(SHARDS) + 0.2
    cuts = np.floor(np.cumsum(w / w.sum())[:-1] * n).astype(int)
    return sorted(set(int(c) for c in cuts if 0 < c < n))


def make(n: int, folder: str, variants=VARIANTS, seed: int = 0, log=print) -> dict[str, str]:
    """Write the tables of ``variants`` for ``n`` rows (skipping those already there); return the paths."""
    p = paths(folder, n)
    os.makedirs(p["dir"], exist_ok=True)
    want_shards = "shards" in variants and not (os.path.isdir(p["old_shards"]) and os.path.isdir(p["new_shards"]))
    have_base = all(os.path.exists(p[k]) for k in ("old", "new", "reference"))
    if not have_base or want_shards:
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, 10**9])
        shard_w = (
            [
                _ShardWriter(p["old_shards"] + ".tmp", _uneven_cuts(n, rng)),
                _ShardWriter(p["new_shards"] + ".tmp", _uneven_cuts(n, rng)),
            ]
            if want_shards
            else None
        )
        writers = None
        joint = np.zeros(K**3, dtype=np.int64)
        near = confident = 0
        for c, start in enumerate(range(0, n, CHUNK)):
            ids, y, lo, ln = _chunk(seed, c, start, min(n, start + CHUNK))
            to, tn = _table(ids, y, lo), _table(ids, y, ln)
            if not have_base:
                if writers is None:
                    writers = [pq.ParquetWriter(p[k] + ".tmp", to.schema) for k in ("old", "new")]
                writers[0].write_table(to, row_group_size=CHUNK)
                writers[1].write_table(tn, row_group_size=CHUNK)
                o, nw = np.argmax(lo, axis=1), np.argmax(ln, axis=1)
                joint += np.bincount((y * K + o) * K + nw, minlength=K**3)
                neg = (o == y) & (nw != y)
                drop = _p_true(lo[neg], y[neg]) - _p_true(ln[neg], y[neg])
                near += int((drop < 0.1).sum())
                confident += int((drop >= 0.5).sum())
            if shard_w:
                shard_w[0].write(to)
                shard_w[1].write(tn)
            if c % 10 == 9:
                log(f"  {min(n, start + CHUNK):,} / {n:,} rows ({time.perf_counter() - t0:.0f} s)")
        if writers is not None:
            for w, k in zip(writers, ("old", "new")):
                w.close()
                os.replace(p[k] + ".tmp", p[k])
            ref = {
                "rows": n,
                "classes": CLASSES,
                "joint": joint.reshape(K, K, K).tolist(),
                "negative_flips_near_boundary": near,
                "negative_flips_confident": confident,
                "seed": seed,
            }
            with open(p["reference"], "w") as f:
                json.dump(ref, f)
        if shard_w:
            for w, k in zip(shard_w, ("old_shards", "new_shards")):
                w.close()
                shutil.rmtree(p[k], ignore_errors=True)
                os.replace(p[k] + ".tmp", p[k])
        log(f"wrote {n:,} rows in {time.perf_counter() - t0:.0f} s")
    if "shuffled" in variants and not os.path.exists(p["new_shuffled"]):
        import duckdb

        t0 = time.perf_counter()
        spill = os.path.join(p["dir"], "duckdb-tmp")
        con = duckdb.connect(config={"memory_limit": "2GB", "temp_directory": spill, "preserve_insertion_order": False})
        src, dst = p["new"].replace("'", "''"), (p["new_shuffled"] + ".tmp").replace("'", "''")
        con.sql(
            f"COPY (SELECT * FROM read_parquet('{src}') ORDER BY hash(id)) TO '{dst}' "
            f"(FORMAT parquet, ROW_GROUP_SIZE {CHUNK})"
        )
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        # DuckDB does not keep the schema metadata: put the class list back (a rewrite, batch by batch)
        with pq.ParquetFile(p["new_shuffled"] + ".tmp") as pf:
            schema = pf.schema_arrow.with_metadata(META)
            with pq.ParquetWriter(p["new_shuffled"] + ".tmp2", schema) as w:
                for b in pf.iter_batches(batch_size=CHUNK):
                    w.write_table(pa.Table.from_batches([b]).cast(schema), row_group_size=CHUNK)
        os.unlink(p["new_shuffled"] + ".tmp")
        os.replace(p["new_shuffled"] + ".tmp2", p["new_shuffled"])
        log(f"shuffled the new table in {time.perf_counter() - t0:.0f} s")
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default="/tmp/graceful-bench")
    ap.add_argument("--variants", default="same", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        sys.exit(f"unknown variants {bad}; choose from {VARIANTS}")
    p = make(args.rows, args.dir, variants, args.seed)
    total = sum(f.stat().st_size for f in Path(p["dir"]).rglob("*") if f.is_file())
    print(f"{p['dir']}: {total / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
