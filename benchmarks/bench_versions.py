"""The Versions page's model set on Fashion-MNIST (old, new, v3, edge: the page's default chain), in process.

Reads the four bundled predictions tables (``sample_data/fashion/predictions``: logits and embeddings of
10,000 test photos, written by ``graceful predict``), then times, in the same run:

- the cross-test matrix as it was computed before: ``retrieval_metrics(..., ks=(1,), compute_map=False)``
  for every ordered pair (16 searches, each an exact top-k);
- the same matrix now: :func:`graceful_core.metrics.hit_at_1.hit_at_1_matrix` (Hit@1 alone, one GEMM per
  unordered pair) -- every value must be equal;
- a bare floor: the float32 GEMMs alone (one per unordered pair of same-sized embeddings);
- :func:`graceful_core.comparing.lineage.model_matrix` as the page calls it after inference (counts + cross-tests).

Usage: ``python benchmarks/bench_versions.py``. Say the load (``uptime``) with the figures.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from graceful_core.comparing.lineage import align_model_set, model_matrix  # noqa: E402
from graceful_core.comparing.sources import predictions_for  # noqa: E402
from graceful_core.io.datasets import load_dataset  # noqa: E402
from graceful_core.metrics.hit_at_1 import hit_at_1_matrix  # noqa: E402
from graceful_core.metrics.retrieval import retrieval_metrics  # noqa: E402

CHAIN = ("old", "new", "v3", "edge")
FASHION = ROOT / "sample_data" / "fashion"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1]


def main() -> None:
    import torch

    print(f"load at start: {load()}")
    ds = load_dataset(FASHION / "test.csv")
    preds = []
    for name in CHAIN:
        classes = list(preds[0].classes) if preds else None
        preds.append(predictions_for(FASHION / "predictions" / f"{name}.parquet", ds, classes=classes))
    aligned, labels, _ = align_model_set(preds)
    embs = [p.embedding for p in aligned]
    print("embedding sizes:", [None if e is None else e.shape for e in embs])
    pairs = [
        (q, g)
        for q in range(4)
        for g in range(4)
        if embs[q] is not None and embs[g] is not None and embs[q].shape[1] == embs[g].shape[1]
    ]

    t0 = time.perf_counter()
    before = {
        (q, g): retrieval_metrics(embs[q], embs[g], labels, ks=(1,), compute_map=False).hit_at[1] for q, g in pairs
    }
    t_before = time.perf_counter() - t0

    t0 = time.perf_counter()
    now = hit_at_1_matrix(embs, labels)
    t_now = time.perf_counter() - t0
    assert set(now) == set(before) and all(now[k] == before[k] for k in before), "the matrices differ"

    unit = [None if e is None else torch.nn.functional.normalize(torch.from_numpy(e), dim=1) for e in embs]
    t0 = time.perf_counter()
    for q, g in pairs:
        if q <= g:
            (unit[q] @ unit[g].T).max(dim=1)
    t_floor = time.perf_counter() - t0

    t0 = time.perf_counter()
    ms = model_matrix(preds, [f"{n}" for n in CHAIN])
    t_matrix = time.perf_counter() - t0
    assert all(ms.cross_top1[q][g] == now[q, g] for q, g in pairs)
    print(f"load at end: {load()}")
    print(f"cross-test matrix, {len(pairs)} ordered pairs, N = {labels.shape[0]:,}:")
    print(f"  before (retrieval_metrics per pair):  {t_before:7.2f} s")
    print(f"  now (hit_at_1_matrix):                {t_now:7.2f} s   {t_before / t_now:5.2f}x faster, equal values")
    print(f"  floor (bare float32 GEMMs + max):     {t_floor:7.2f} s   now = {t_now / t_floor:5.2f}x the floor")
    print(f"model_matrix (counts + cross-tests):    {t_matrix:7.2f} s")
    print("values:", np.round([[ms.cross_top1[q][g] or np.nan for g in range(4)] for q in range(4)], 4).tolist())


if __name__ == "__main__":
    main()
