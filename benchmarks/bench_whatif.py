"""Benchmark the what-if remedy curves (graceful_core.metrics.whatif) on synthetic class scores.

N = 100,000 samples x K = 100 classes by default: old logits, new logits = old + noise
(a model update that agrees on most images), labels near the old argmax. Times, median
over repeats: the float64 softmax of both sides, the 21-point mixing curve, the 30-point
gating grid, and the whole report (scoring every point on the whole set and the 2-fold
cross-fitted recommendation) -- everything ``graceful mitigate`` computes without running
a model. The baseline, measured in the same run on the same arrays: one plain
``argmax`` pass over one [N, K] probability array (what reading off a single model's
predictions costs). Goal: the what-if curves of 100,000 x 100 in under 2 s.

Usage: python benchmarks/bench_whatif.py [--n 100000] [--k 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graceful_core.metrics import whatif as wi  # noqa: E402


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, k = args.n, args.k
    lo = (rng.normal(size=(n, k)) * 3).astype(np.float32)
    ln = lo + (rng.normal(size=(n, k)) * 1.5).astype(np.float32)
    y = np.where(rng.random(n) < 0.9, lo.argmax(axis=1), rng.integers(0, k, n))
    ids = np.arange(n).astype(str)
    print(f"N = {n:,}, K = {k}, {os.cpu_count()} CPUs, median of {args.repeat}")
    t_soft, (po, pn) = _median_time(
        lambda: (wi.probabilities64(lo, "logits"), wi.probabilities64(ln, "logits")), args.repeat
    )
    t_base, _ = _median_time(lambda: po.argmax(axis=1), args.repeat)
    t_mix, _ = _median_time(lambda: wi.mixing_predictions(po, pn), args.repeat)
    t_naive, _ = _median_time(lambda: [(po + w * (pn - po)).argmax(axis=1) for w in wi.MIXING_WEIGHTS], 1)
    grid = [(t, s) for t in wi.GATING_OLD_THRESHOLDS for s in wi.GATING_NEW_THRESHOLDS]
    t_gate, _ = _median_time(lambda: wi.gating_predictions(po, pn, grid), args.repeat)

    def whole():
        return wi.whatif_report(wi.candidate_predictions(y, po, pn), ids)

    t_all, rep = _median_time(whole, args.repeat)
    total = t_soft + t_all
    print(f"baseline: one argmax pass over [N, K]        {t_base:8.3f} s")
    print(f"softmax of both sides (float64)              {t_soft:8.3f} s")
    print(
        f"mixing curve, {len(wi.MIXING_WEIGHTS)} points                    {t_mix:8.3f} s  "
        f"({t_mix / t_base:.1f}x the baseline)"
    )
    print(f"  the same curve mixed over all classes      {t_naive:8.3f} s  ({t_naive / t_base:.1f}x; once)")
    print(f"gating grid, {len(grid)} points                     {t_gate:8.3f} s  ({t_gate / t_base:.1f}x)")
    print(f"whole report (curves, scores, cross-fitting) {t_all:8.3f} s  ({t_all / t_base:.1f}x)")
    print(
        f"softmax + whole report                       {total:8.3f} s  ({total / t_base:.1f}x the baseline); "
        f"goal < 2 s: {'met' if total < 2 else 'MISSED'}"
    )
    print("recommended:", rep.recommended.point.label())


if __name__ == "__main__":
    main()
