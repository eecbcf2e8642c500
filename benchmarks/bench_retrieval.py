"""Benchmark: leave-one-out retrieval metrics vs faiss exact search, and UMAP time.

Prints, for N random clustered embeddings of size D:

* faiss-cpu exact inner-product search (IndexFlatIP, k=6 so self can be dropped);
* graceful's Hit@1/Hit@5 alone (``compute_map=False``) and the full computation with
  mAP (``retrieval_metrics`` defaults: exact mAP over every query);
* with ``--cross``: the whole embedding part of a comparison (wall and process CPU time), ``cross_test`` (four
  pairs, each with exact mAP, plus the embedding overlap read off the same search) of
  ``old = x`` and ``new = x + noise``, against faiss's three exact top-k searches
  (old→old, new→new, new→old; goal <= 2x); each side's library import (faiss; numba with
  graceful's compiled kernels) is timed apart, outside the clock, and a wall ratio with them is printed too;
* time ratios to faiss (goals: Hit@k <= 2x, full <= 4x) and peak memory (goal < 2 GiB);
* UMAP time on ``--umap-points`` points (joint map of old+new): first call including
  numba compilation, and a second call in the same process.

Every measurement runs in a fresh subprocess; peak memory is that process's VmHWM (peak
resident set) from /proc/self/status, reported with the baseline after the data was
built. Usage::

    python benchmarks/bench_retrieval.py                 # N=50,000, D=128, 2 threads
    python benchmarks/bench_retrieval.py --n 5000 --dim 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _data(n: int, dim: int, classes: int, noise: float, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    x = centres[y] + rng.normal(size=(n, dim)).astype(np.float32) * noise
    return x.astype(np.float32), y


def _new_embedding(x):
    """A "new model" embedding of the same samples: the old one plus noise (fixed seed)."""
    import numpy as np

    return (x + np.random.default_rng(2).normal(size=x.shape).astype(np.float32) * 0.5).astype(np.float32)


def _worker(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    x, y = _data(args.n, args.dim, args.classes, args.noise)
    out: dict = {"baseline_mib": _vm_hwm_mib()}
    if args.worker == "faiss":
        import faiss

        faiss.omp_set_num_threads(args.threads)
        t = time.perf_counter()
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(args.dim)
        index.add(xn)
        _, nb = index.search(xn, 6)
        # drop self (wherever it landed), keep 5
        keep = nb != np.arange(args.n)[:, None]
        nb5 = np.array([row[k][:5] for row, k in zip(nb, keep)])
        out["seconds"] = time.perf_counter() - t
        valid = np.bincount(y)[y] >= 2
        match = y[nb5] == y[:, None]
        out["hit1"] = float(match[valid, 0].mean())
        out["hit5"] = float(match[valid].any(axis=1).mean())
    elif args.worker == "faiss3":
        t = time.perf_counter()
        import faiss

        out["import_seconds"] = time.perf_counter() - t
        faiss.omp_set_num_threads(args.threads)
        new = _new_embedding(x)
        t, cpu = time.perf_counter(), time.process_time()
        on, nn = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, new))
        for query, gallery in ((on, on), (nn, nn), (nn, on)):
            index = faiss.IndexFlatIP(args.dim)
            index.add(gallery)
            index.search(query, 6)
        out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - cpu
    elif args.worker == "cross":
        sys.path.insert(0, str(ROOT))
        from graceful_core.metrics.retrieval import cross_test

        # the compiled kernels' library (numba) is imported before the clock, as faiss is on the other side
        t = time.perf_counter()
        import graceful_core.metrics.average_precision_kernels  # noqa: F401

        out["import_seconds"] = time.perf_counter() - t

        new = _new_embedding(x)
        t, cpu = time.perf_counter(), time.process_time()
        ct = cross_test(x, new, y)
        out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - cpu
        out["map"], out["map_queries"], out["overlap"] = ct.scores["map"], ct.map_queries, ct.embedding_overlap
    elif args.worker in ("hits", "full"):
        sys.path.insert(0, str(ROOT))
        from graceful_core.metrics.retrieval import retrieval_metrics

        t = time.perf_counter()
        r = retrieval_metrics(x, x, y, ks=(1, 5), compute_map=args.worker == "full")
        out["seconds"] = time.perf_counter() - t
        out["hit1"], out["hit5"] = r.hit_at[1], r.hit_at[5]
        out["map"], out["map_queries"], out["map_ci95"] = r.map, r.map_queries, r.map_ci95
    elif args.worker == "umap":
        sys.path.insert(0, str(ROOT))
        from graceful_core.explore.projection import joint_umap

        m = args.umap_points // 2
        old, new = x[:m], x[:m] + np.random.default_rng(1).normal(size=x[:m].shape).astype(np.float32) * 0.1
        t = time.perf_counter()
        joint_umap(old, new, max_points=args.umap_points)
        out["first_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        joint_umap(old, new, max_points=args.umap_points, seed=1)
        out["second_seconds"] = time.perf_counter() - t
    out["peak_mib"] = _vm_hwm_mib()
    return out


def _run(name: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--n",
        str(args.n),
        "--dim",
        str(args.dim),
        "--classes",
        str(args.classes),
        "--repeat",
        "1",
        "--noise",
        str(args.noise),
        "--threads",
        str(args.threads),
        "--umap-points",
        str(args.umap_points),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{name} worker failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--noise", type=float, default=1.5, help="per-dimension noise around unit-variance centres")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--umap-points", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=2, help="rounds of (faiss, Hit@k, full); the best time is shown")
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--cross", action="store_true", help="only the cross-test against faiss's three searches")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return
    print(
        f"N={args.n:,} D={args.dim} classes={args.classes} noise={args.noise} threads={args.threads} "
        f"(best of {args.repeat}, interleaved, each in a fresh process)",
        flush=True,
    )
    if args.cross:
        cross: dict[str, list[dict]] = {"faiss3": [], "cross": []}
        for _ in range(args.repeat):
            for name in cross:
                cross[name].append(_run(name, args))
        f3, c = (min(v, key=lambda r: r["seconds"]) for v in cross.values())
        print(f"load average {os.getloadavg()}")
        print(
            f"faiss: 3 searches k=6        {f3['seconds']:8.2f} s   CPU {f3['cpu_seconds']:7.2f} s   peak {f3['peak_mib']:7.0f} MiB"
        )
        print(
            f"graceful cross_test (exact)  {c['seconds']:8.2f} s   CPU {c['cpu_seconds']:7.2f} s   "
            f"peak {c['peak_mib']:7.0f} MiB   "
            f"mAP old→old {c['map']['old_old']:.4f} new→old {c['map']['new_old']:.4f} over "
            f"{c['map_queries']:,} queries, overlap {c['overlap']:.4f}"
        )
        print(f"ratio cross_test / faiss x3  {c['seconds'] / f3['seconds']:8.2f} x wall (goal <= 2)", flush=True)
        # on a loaded machine the wall clock measures the neighbours too; process CPU time (all threads) does not
        print(f"                             {c['cpu_seconds'] / f3['cpu_seconds']:8.2f} x CPU", flush=True)
        with_imports = (c["seconds"] + c["import_seconds"]) / (f3["seconds"] + f3["import_seconds"])
        print(
            f"imports, outside the clocks: faiss {f3['import_seconds']:.2f} s, graceful's kernels (numba) "
            f"{c['import_seconds']:.2f} s; wall ratio with them {with_imports:.2f} x",
            flush=True,
        )
        return
    runs: dict[str, list[dict]] = {"faiss": [], "hits": [], "full": []}
    for _ in range(args.repeat):
        for name in runs:
            runs[name].append(_run(name, args))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    times = {k: " ".join(f"{r['seconds']:.1f}" for r in v) for k, v in runs.items()}
    f, h, a = best["faiss"], best["hits"], best["full"]
    print(
        f"faiss IndexFlatIP k=6        {f['seconds']:8.2f} s   peak {f['peak_mib']:7.0f} MiB "
        f"(data {f['baseline_mib']:.0f})   Hit@1 {f['hit1']:.4f} Hit@5 {f['hit5']:.4f}   runs {times['faiss']}",
        flush=True,
    )
    print(
        f"graceful Hit@1/Hit@5         {h['seconds']:8.2f} s   peak {h['peak_mib']:7.0f} MiB "
        f"(data {h['baseline_mib']:.0f})   Hit@1 {h['hit1']:.4f} Hit@5 {h['hit5']:.4f}   runs {times['hits']}",
        flush=True,
    )
    ci = a["map_ci95"]
    print(
        f"graceful Hit@k + mAP         {a['seconds']:8.2f} s   peak {a['peak_mib']:7.0f} MiB "
        f"(data {a['baseline_mib']:.0f})   mAP {a['map']:.4f} over {a['map_queries']:,} queries"
        f"{'' if ci is None else f' (95% CI {ci[0]:.4f}-{ci[1]:.4f})'}   runs {times['full']}",
        flush=True,
    )
    print(f"ratio Hit@k / faiss          {h['seconds'] / f['seconds']:8.2f} x (goal <= 2)")
    print(f"ratio full / faiss           {a['seconds'] / f['seconds']:8.2f} x (goal <= 4)")
    peak = max(r["peak_mib"] for k in ("hits", "full") for r in runs[k])
    print(f"peak memory (graceful)       {peak:8.0f} MiB (goal < 2048)", flush=True)
    if not args.skip_umap:
        u = _run("umap", args)
        print(
            f"UMAP {args.umap_points:,} points        first {u['first_seconds']:.1f} s (incl. numba JIT), "
            f"second {u['second_seconds']:.1f} s, peak {u['peak_mib']:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
