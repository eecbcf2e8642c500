"""Benchmark: the sample model in each file format, the Python API and the flip monitor.

Prints, for the bundled ``new`` model converted to ``.pt2`` and ONNX (TorchScript is the
original): load time with the model cache cleared (``.pt2``: also the archive check alone),
inference over the test split without the inference cache; then ``FlipMonitor`` (constructor =
one old-model pass, ``update`` = one new-model pass plus metrics) and
``graceful_core.compare`` of two modules on a DataLoader. Medians of ``--repeat`` runs.

Usage: python benchmarks/bench_models.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere

import numpy as np  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        os.environ.setdefault("GRACEFUL_CACHE_DIR", os.path.join(tmp, "cache"))
        run(Path(tmp), args.repeat)


def run(tmp: Path, repeat: int) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    import graceful_core
    from graceful_core.inference import predict
    from graceful_core.io.datasets import align_classes, load_dataset
    from graceful_core.models.loader import clear_model_cache, load_model
    from graceful_core.models.pt2_archive import check_pt2_archive
    from graceful_core.training.export import convert_model_file
    from graceful_core.training.trainer import tensors_from_dataset

    models, data = ROOT / "sample_data" / "models", ROOT / "sample_data" / "digits" / "test"
    files = {"TorchScript .pt": models / "new.pt"}
    for to, label in (("pt2", "torch.export .pt2"), ("onnx", "ONNX")):
        files[label] = tmp / f"new.{to}"
        convert_model_file(models / "new.pt", to, files[label])
    dataset = load_dataset(data)

    print(f"sample model 'new' ({len(dataset)} test images), medians of {repeat}:")
    for label, path in files.items():

        def load(path=path):
            clear_model_cache()
            load_model(path)

        t_load = median_time(load, repeat)
        model = load_model(path)
        t_run = median_time(lambda model=model: predict(model, dataset, use_cache=False), repeat)
        print(
            f"  {label:18s} load {1000 * t_load:7.1f} ms   inference {1000 * t_run:7.1f} ms   "
            f"({path.stat().st_size / 1024:.0f} KiB)"
        )
    t_check = median_time(lambda: check_pt2_archive(files["torch.export .pt2"]), repeat)
    print(f"  .pt2 archive check alone: {1000 * t_check:.1f} ms")

    old, new = load_model(models / "old.pt"), load_model(models / "new.pt")
    X, y = tensors_from_dataset(align_classes(dataset, list(old.info.classes)), old.info)
    t0 = time.perf_counter()
    monitor = graceful_core.FlipMonitor(old.module, (X, y))
    t_init = time.perf_counter() - t0
    t_update = median_time(lambda: monitor.update(new.module), repeat)
    print(
        f"FlipMonitor: constructor (old pass) {1000 * t_init:.1f} ms; update (new pass, metrics, "
        f"cross-test Hit@1) {1000 * t_update:.1f} ms"
    )
    loader = DataLoader(TensorDataset(X, y), batch_size=256)
    t_cmp = median_time(lambda: graceful_core.compare(old.module, new.module, loader), max(1, repeat // 2))
    print(f"compare(two modules, DataLoader): {1000 * t_cmp:.1f} ms (incl. the full cross-test: top-1, top-5, mAP)")


if __name__ == "__main__":
    main()
