"""Benchmark: one training of the Mitigate page's default on a bundled sample (the update alone).

Trains the page's default update (focal distillation, λ = 1, α = 1, β = 5, the sample's
default epochs and architecture) of the sample's old model on its training images, as
the page does, with and without the per-epoch flip monitor on its test images; prints
the seconds of each (the page's plain baseline takes about as long again).

Goal: one training at the default epochs under 2 minutes on 2 cores.
Usage: python benchmarks/bench_mitigate.py [--sample fashion|digits] [--no-monitor]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from graceful_core.io.samples import digits_sample, fashion_sample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", choices=("fashion", "digits"), default="fashion")
    ap.add_argument("--no-monitor", action="store_true", help="skip the run with the per-epoch monitor")
    args = ap.parse_args()
    os.environ["GRACEFUL_CACHE_DIR"] = tempfile.mkdtemp(prefix="graceful-bench-mitigate-")
    from graceful_core.training.update import TrainParams, train_update

    s = (fashion_sample if args.sample == "fashion" else digits_sample)(ROOT / "sample_data")
    old = s.old_model()
    params = TrainParams(method="focal-distillation", arch=s.train_arch, epochs=s.train_epochs, seed=0)
    n_train = sum(1 for _ in s.train_data.rglob("*.png"))
    print(
        f"sample {s.name}: old {old.name}, {n_train} training images, {params.arch}, {params.epochs} epochs, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for monitor in [None] if args.no_monitor else [None, s.test_folder]:
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), time.process_time()
            train_update(old, s.train_data, Path(tmp) / "m.pt", params, monitor=monitor)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        what = "without monitor" if monitor is None else f"with the per-epoch monitor on {s.data_label}"
        print(
            f"one training, {what}: {dt:6.1f} s wall, {cpu:6.1f} s CPU (all threads; on 2 idle cores "
            f"wall is about CPU / 2), load average now {os.getloadavg()[0]:.1f}   (goal < 120 s wall)"
        )


if __name__ == "__main__":
    main()
