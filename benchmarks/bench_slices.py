"""Benchmark regression-slice discovery (graceful_core.metrics.slices) on synthetic data.

N = 10,000 samples by default, old-model embeddings of D = 64, 128 and 256 dimensions (30
Gaussian blobs), a metadata table with `site` (8 values), `camera` (3) and a numeric
`brightness` (quintiles), and negative flips at 2 % with 10 % planted in one site.
Prints, per D, the median over repeats of: k-means clustering alone
(:func:`embedding_clusters`, k by the default rule) and the whole
:func:`find_regression_slices` call (candidates, clusters, tests, ranking), plus what was
found first. Goal: a few seconds on 2 cores at N = 10,000, D = 64..256.

Usage: python benchmarks/bench_slices.py [--n 10000] [--dims 64 128 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graceful_core.metrics.slices import default_n_clusters, embedding_clusters, find_regression_slices  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    site = rng.choice([f"site-{i}" for i in range(8)], n)
    meta = pd.DataFrame({"site": site, "camera": rng.choice(["A", "B", "C"], n), "brightness": rng.gamma(2.0, 40.0, n)})
    flips = rng.random(n) < np.where(site == "site-3", 0.10, 0.02)
    print(f"N = {n:,}, k = {default_n_clusters(n, 10)} (default rule), {os.cpu_count()} CPUs, median of {args.repeat}")
    find_regression_slices(
        np.zeros(200, bool),
        np.zeros(200, int),
        ["x"],  # warm-up: scipy/sklearn imports
        metadata=meta.iloc[:200],
        embeddings=rng.normal(size=(200, 8)),
    )
    for d in args.dims:
        centres = rng.normal(size=(30, d))
        emb = (centres[rng.integers(0, 30, n)] + rng.normal(scale=1.5, size=(n, d))).astype(np.float32)
        t_cluster, t_all = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            embedding_clusters(emb, labels, [str(c) for c in range(10)])
            t_cluster.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rep = find_regression_slices(flips, labels, [str(c) for c in range(10)], metadata=meta, embeddings=emb)
            t_all.append(time.perf_counter() - t0)
        top = rep.slices[0]
        print(
            f"D = {d:4d}: clustering {statistics.median(t_cluster):.2f} s, whole call "
            f"{statistics.median(t_all):.2f} s ({len(rep.slices)} slices); first: {top.title}, "
            f"p_adj {top.p_adjusted:.1e}"
        )


if __name__ == "__main__":
    main()
