"""Benchmark: ``predict --engine ray`` (Ray Data, local Ray) against the single-process ``predict``.

Measures on this machine, in one process:

- ``predict(model, dataset, use_cache=False)``: the single-process engine;
- Ray: starting a local Ray (``ray.init``, ``--cpus`` logical CPUs), the Ray Data run
  (``predict_ray``: actor start-up, model load, decoding, inference, Parquet shards) and
  the shutdown, separately;

and checks that both give the same ids and scores. ``--copies N`` lists every image N
times (a manifest with new ids), so the run is long enough to show the steady state;
``--larger PX`` uses PX x PX colour JPEGs and a conv net sized for them
(``bench_inference.make_larger_case``), where the model is not nearly free.

Usage: python benchmarks/bench_ray_predict.py [--copies 10] [--larger 96] [--cpus 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np


def _manifest(data: str, copies: int, folder: str) -> str:
    """A manifest listing every image of ``data`` ``copies`` times (ids ``<copy>/<id>``)."""
    from graceful_core.io.datasets import load_dataset

    ds = load_dataset(data)
    os.symlink(os.path.abspath(data), os.path.join(folder, "images"))  # manifest paths stay inside its folder
    path = os.path.join(folder, "manifest.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "label"])
        for c in range(copies):
            for i, y in zip(ds.ids, ds.labels):
                w.writerow([f"{c}/{i}", f"images/{i}", ds.classes[y]])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sample_data/digits/test")
    ap.add_argument("--model", default="sample_data/models/new.pt")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--larger", type=int, default=0, metavar="PX")
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    os.environ["GRACEFUL_CACHE_DIR"] = tempfile.mkdtemp(prefix="graceful-bench-cache-")
    if args.larger:
        from bench_inference import make_larger_case

        args.data, models = make_larger_case(args.data, args.larger)
        args.model = models[0]
    work = tempfile.mkdtemp(prefix="graceful-bench-ray-")
    try:
        data = _manifest(args.data, args.copies, work) if args.copies > 1 else args.data

        from graceful_core.distributed import predict_ray, ray_session
        from graceful_core.inference import predict
        from graceful_core.io.datasets import load_dataset
        from graceful_core.io.tables import load_predictions_table
        from graceful_core.models.loader import load_model

        ds = load_dataset(data)
        model = load_model(args.model)
        print(f"{len(ds):,} images ({args.data} x {args.copies}), model {args.model}, {args.cpus} CPUs")
        t0 = time.perf_counter()
        local = predict(model, ds, use_cache=False)
        t_local = time.perf_counter() - t0
        print(f"  predict (one process)        : {t_local:7.2f} s  ({len(ds) / t_local:8.0f} img/s)")

        t0 = time.perf_counter()
        with ray_session(args.cpus):
            t_init = time.perf_counter() - t0
            t1 = time.perf_counter()
            r = predict_ray(args.model, data, os.path.join(work, "out"))
            t_run = time.perf_counter() - t1
            t2 = time.perf_counter()
        t_down = time.perf_counter() - t2
        total = time.perf_counter() - t0
        print(f"  Ray start (ray.init)         : {t_init:7.2f} s")
        print(
            f"  Ray Data run ({r.actors} actor(s))     : {t_run:7.2f} s  ({len(ds) / t_run:8.0f} img/s), "
            f"{len(r.files)} shards"
        )
        print(f"  Ray shutdown                 : {t_down:7.2f} s")
        print(f"  overhead: run {t_run / t_local:.2f}x predict; with start and shutdown {total / t_local:.2f}x")
        got = load_predictions_table(r.out_dir)
        same = list(got.ids) == list(local.ids) and np.allclose(got.scores, local.scores, rtol=1e-5, atol=1e-5)
        print(f"  same ids and scores as predict: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.larger:  # make_larger_case's images and model
            shutil.rmtree(args.data, ignore_errors=True)
            Path(args.model).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
