"""Benchmark: cold ``compare`` on the Fashion sample against a bare decode-and-infer loop.

The baseline is the floor of any comparison of two model files on images: a bare loop
that decodes the 10,000 PNGs of ``sample_data/fashion/test`` once (Pillow), normalises
them, and runs both models on each batch of 256 (``Model.run``), timed after the imports
and the model loads. The measured command is the real one, in a fresh interpreter with an
empty cache directory (cold: inference, cross-test, slices, report)::

    python -m graceful_core compare OLD NEW --data sample_data/fashion/test --json report.json

Both run in child processes, alternately, ``--runs`` times each; the script prints the
median wall and CPU seconds (user + system of the child, all threads: steadier than wall
time when other jobs share the cores), the load average, and the ratio command /
baseline (goal: at most 3).

Usage::

    python benchmarks/bench_fashion_compare.py            # old.pt vs new.pt, 1 run each
    python benchmarks/bench_fashion_compare.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sample_data" / "fashion" / "test"
MODELS = ROOT / "sample_data" / "fashion" / "models"


def _baseline(old: str, new: str, batch: int = 256) -> dict:
    """The bare loop, in this (child) process; returns its wall and CPU seconds."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from graceful_core.models.loader import load_model

    models = [load_model(old), load_model(new)]
    files = sorted(p for p in DATA.rglob("*.png"))
    t0, c0 = time.perf_counter(), time.process_time()
    outs = [[], []]
    for start in range(0, len(files), batch):
        imgs = [np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0 for f in files[start : start + batch]]
        x = np.stack(imgs)[:, None]
        for j, m in enumerate(models):
            info = m.info
            xm = ((x - np.float32(info.mean[0])) / np.float32(info.std[0])).astype(np.float32)
            outs[j].append(m.run(xm)[0])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert sum(len(o) for o in outs[0]) == len(files) == 10_000, len(files)
    return {"wall": wall, "cpu": cpu}


def _child(cmd: list[str], env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{cmd} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "stdout": r.stdout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default=str(MODELS / "old.pt"))
    ap.add_argument("--new", default=str(MODELS / "new.pt"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_child:
        print(json.dumps(_baseline(args.old, args.new)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base, cold = [], []
    print(f"load average at start: {os.getloadavg()}")
    for _ in range(args.runs):
        b = _child([sys.executable, __file__, "--baseline-child", "--old", args.old, "--new", args.new], env)
        base.append(json.loads(b["stdout"]))
        with tempfile.TemporaryDirectory() as tmp:
            c = _child(
                [
                    sys.executable,
                    "-m",
                    "graceful_core",
                    "compare",
                    args.old,
                    args.new,
                    "--data",
                    str(DATA),
                    "--json",
                    os.path.join(tmp, "report.json"),
                ],
                {**env, "GRACEFUL_CACHE_DIR": os.path.join(tmp, "c")},
            )
            cold.append(c)
    bw, bc = statistics.median(x["wall"] for x in base), statistics.median(x["cpu"] for x in base)
    cw, cc = statistics.median(x["wall"] for x in cold), statistics.median(x["cpu"] for x in cold)
    print(f"baseline: decode 10,000 PNGs once + both models   wall {bw:6.2f} s   CPU {bc:6.2f} s")
    print(f"graceful compare, cold cache (whole command)      wall {cw:6.2f} s   CPU {cc:6.2f} s")
    print(f"ratio compare / baseline: wall {cw / bw:.2f}x   CPU {cc / bc:.2f}x   (goal <= 3x)")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
