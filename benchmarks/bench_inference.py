"""Benchmark: inference end to end vs a bare batched ``model(x)`` loop; cache hit time.

For each model:
- bare loop: images preloaded and preprocessed into one tensor beforehand, then only
  ``model.run(batch)`` in batches (the lower bound);
- end to end: ``predict(model, dataset, use_cache=False)`` (decode PNGs, transforms,
  batching, bookkeeping);
- from the cache: ``predict(model, dataset)`` a second time (includes hashing the model
  file and the dataset's content to find the entry).
Also times a whole second ``python -m graceful_core compare`` run (warm cache).

Goals: end-to-end overhead under 2x the bare loop; second run from the cache < 1 s.

Usage: python benchmarks/bench_inference.py [--sample fashion|digits] [--data DIR --models A B] [--repeat 5]
(default: the Fashion-MNIST sample, 10,000 test photos, old.pt and new.pt).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_larger_case(data: str, px: int) -> tuple[str, list[str]]:
    """A folder of ``px``-pixel RGB JPEG versions of ``data`` and a TorchScript conv net for them."""
    import torch
    from PIL import Image
    from torch import nn

    from graceful_core.training.export import save_torchscript
    from graceful_core.types import ModelInfo

    root = Path(tempfile.mkdtemp(prefix="graceful-bench-larger-"))
    rng = np.random.default_rng(0)
    for src in sorted(Path(data).rglob("*.png")):
        g = np.asarray(Image.open(src).convert("L").resize((px, px), Image.Resampling.BILINEAR), dtype=np.float32)
        rgb = np.clip(g[..., None] * rng.uniform(0.6, 1.0, 3) + rng.normal(0, 8, (px, px, 3)), 0, 255)
        out = root / src.parent.name / (src.stem + ".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb.astype(np.uint8)).save(out, quality=90)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [3, 32, 64, 128, 128]
            layers: list[nn.Module] = []
            for a, b in zip(chans, chans[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
            self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.project = nn.Linear(128, 64)
            self.classifier = nn.Linear(64, 10)

        @torch.jit.export
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.project(self.features(x))

        @torch.jit.export
        def head(self, e: torch.Tensor) -> torch.Tensor:
            return self.classifier(e)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(x))

    torch.manual_seed(0)
    info = ModelInfo(
        name="bench-conv",
        input_size=(3, px, px),
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        classes=tuple(str(k) for k in range(10)),
    )
    model_path = root.parent / f"{root.name}-conv.pt"
    save_torchscript(Net().eval(), model_path, info)
    return str(root), [str(model_path)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sample",
        choices=("fashion", "digits"),
        default="fashion",
        help="the bundled sample whose test images and old/new models are measured (default: fashion)",
    )
    ap.add_argument("--data", help="a dataset folder or manifest instead of the sample's test data")
    ap.add_argument("--models", nargs="+", help="model files instead of the sample's old and new models")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument(
        "--larger",
        type=int,
        default=0,
        metavar="PX",
        help="instead: the test digits upscaled to PX x PX colour JPEGs and a (random-weight) "
        "conv net sized for them, to see the overhead where the model is not nearly free",
    )
    args = ap.parse_args()
    from graceful_core.io.samples import digits_sample, fashion_sample

    sample = (fashion_sample if args.sample == "fashion" else digits_sample)(ROOT / "sample_data")
    args.data = args.data or str(sample.test_data)
    args.models = args.models or [str(p) for p in sample.models()[:2]]  # old first, then new
    os.environ["GRACEFUL_CACHE_DIR"] = tempfile.mkdtemp(prefix="graceful-bench-cache-")
    if args.larger:
        args.data, args.models = make_larger_case(args.data, args.larger)

    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.models.loader import load_model
    from graceful_core.transforms import preprocess

    ds = load_dataset(args.data)
    n = len(ds)
    print(f"dataset {args.data}: {n} images; batch size {args.batch_size}; best of {args.repeat}")
    for path in args.models:
        model = load_model(path)
        x = np.stack([preprocess(ds.load_image(i), model.info) for i in range(n)])

        def bare(model=model, x=x) -> None:
            for s in range(0, n, args.batch_size):
                model.run(x[s : s + args.batch_size])

        t_bare = best_of(bare, args.repeat)
        t_e2e = best_of(lambda m=model: predict(m, ds, batch_size=args.batch_size, use_cache=False), args.repeat)
        predict(model, ds, batch_size=args.batch_size)  # fill the cache
        t_hit = best_of(lambda m=model: predict(m, ds, batch_size=args.batch_size), args.repeat)
        print(
            f"{os.path.basename(path):10s} bare loop {n / t_bare:9.0f} img/s ({t_bare * 1e3:6.1f} ms) | "
            f"end to end {n / t_e2e:8.0f} img/s ({t_e2e * 1e3:6.1f} ms) | overhead {t_e2e / t_bare:5.2f}x (goal < 2x) | "
            f"cache hit {t_hit * 1e3:6.1f} ms (goal < 1000 ms)"
        )
    if len(args.models) >= 2:
        cmd = [sys.executable, "-m", "graceful_core", "compare", args.models[0], args.models[1], "--data", args.data]
        subprocess.run(cmd, check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        print(
            f"whole CLI compare, second run (warm cache, incl. Python start-up and imports): "
            f"{time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
