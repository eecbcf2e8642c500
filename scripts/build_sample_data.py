"""Build graceful's sample data: real images as PNGs and real trained models.

    python scripts/build_sample_data.py                   # both samples
    python scripts/build_sample_data.py --only digits     # the small digits sample (about 10 s)
    python scripts/build_sample_data.py --only fashion    # Fashion-MNIST (needs the Debian package
                                                          # dataset-fashion-mnist; see sample_data/README.md)
    python scripts/build_sample_data.py --only fashion --models new-ft
                                                          # only these Fashion models, in place, starting
                                                          # from the shipped models they depend on
    python scripts/build_sample_data.py --only maps       # only the Fashion pair's precomputed embedding maps
    python scripts/prediction_manifest.py --sample NAME   # only the record of which model made each table
                                                          # (scripts/sample_maps.py; a full Fashion build
                                                          # writes them too)

Digits (``sample_data/digits``, ``sample_data/models``, ``sample_data/predictions``):

1. ``sklearn.datasets.load_digits`` (1,797 8x8 scans, values 0..16, 10 classes) is
   written as PNGs (value v -> uint8 round(v * 255 / 16), mode "L") in the
   class-per-subfolder layout ``sample_data/digits/{train,test}/<class>/<index>.png``,
   split 70/30 stratified with a fixed ``random_state``.
2. Models are trained on the CPU on the train split only, from the PNGs read back and
   run through :func:`graceful_core.transforms.preprocess` (the inference pipeline),
   and saved as TorchScript with ``graceful.json`` in ``sample_data/models/``.
3. ``write_prediction_tables()`` writes a predictions table per model on the test split.

Fashion-MNIST (``sample_data/fashion/``): see ``scripts/fashion_sample.py``.

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, one thread per
training process; a model file is saved under its final name (TorchScript archives
name their root folder after the file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import fashion_sample  # noqa: E402
import prediction_manifest  # noqa: E402
import sample_maps  # noqa: E402

from graceful_core.errors import InputError  # noqa: E402
from graceful_core.training.export import save_torchscript  # noqa: E402
from graceful_core.training.trainer import tensors_from_dataset, train_model  # noqa: E402
from graceful_core.types import ModelInfo  # noqa: E402

OUT = ROOT / "sample_data"
DIGITS = OUT / "digits"
MODELS = OUT / "models"
CLASSES = tuple(str(k) for k in range(10))
SPLIT_SEED = 0
TEST_SIZE = 0.3
NEW_SEED = 3
#: Focal distillation (Yan et al. 2021) and BCT (Shen et al. 2020) settings of new-pc / new-bct / edge.
PC_PARAMS = {"alpha": 1.0, "beta": 5.0, "lam": 0.5, "temperature": 1.0}  # lam: see README sweep
BCT_PARAMS = {"lam": 1.0}


# --------------------------------------------------------------------------- images
def digit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scan values 0..16 -> uint8 ``round(v * 255 / 16)``."""
    return np.round(np.asarray(values, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)


def write_pngs() -> dict[str, int]:
    """Write the train/test PNGs (replacing ``sample_data/digits``); returns counts per split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(index, test_size=TEST_SIZE, stratify=digits.target, random_state=SPLIT_SEED)
    if DIGITS.exists():
        shutil.rmtree(DIGITS)
    counts = {}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        for i in sorted(int(v) for v in idx):
            folder = DIGITS / split / CLASSES[int(digits.target[i])]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(digit_to_uint8(digits.images[i]), mode="L").save(folder / f"{i:04d}.png")
        counts[split] = len(idx)
    return counts


class PngFolder:
    """Minimal class-per-subfolder reader: ``__len__``, ``load_image(i)``, ``labels``, ``ids``."""

    def __init__(self, root: Path) -> None:
        self.paths = sorted(root.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))
        self.labels = np.array([CLASSES.index(p.parent.name) for p in self.paths], dtype=np.int64)
        self.ids = [f"{p.parent.name}/{p.name}" for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as img:
            return img.copy()


def normalisation(train: PngFolder) -> tuple[float, float]:
    """Pixel mean and (population) std of the train split after ``/ 255``."""
    pixels = np.stack([np.asarray(train.load_image(i), dtype=np.float64) / 255.0 for i in range(len(train))])
    return float(pixels.mean()), float(pixels.std())


def model_info(name: str, mean: float, std: float) -> ModelInfo:
    return ModelInfo(name=name, input_size=(1, 8, 8), mean=(mean,), std=(std,), classes=CLASSES)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def outputs(model: torch.nn.Module, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predictions [N], embeddings [N, D]) of a model in eval mode."""
    model.eval()
    emb = model.embed(X)
    return model.head(emb).argmax(1).numpy(), emb.numpy()


def loo_cosine_top1(query: np.ndarray, gallery: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out cosine top-1: query i (query model) vs all other samples (gallery model)."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    s = q @ g.T
    np.fill_diagonal(s, -np.inf)
    return float(np.mean(labels[s.argmax(1)] == labels))


def flip_stats(old_pred: np.ndarray, new_pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    old_ok, new_ok = old_pred == y, new_pred == y
    return {
        "negative_flips": int(np.sum(old_ok & ~new_ok)),
        "nfr": float(np.mean(old_ok & ~new_ok)),
        "btc": float(np.sum(old_ok & new_ok) / np.sum(old_ok)),
    }


# --------------------------------------------------------------------------- predictions tables
def write_prediction_tables(model_names: list[str]) -> None:
    """Write ``sample_data/predictions/<model>.csv`` for each model on the test split.

    Each table is what ``python -m graceful_core predict`` writes: ``id``, ``label`` and
    ``pred`` as class names, the logits (``logit_0..``) and the embedding (``emb_0..``),
    so ``compare old.csv new.csv`` gives the same report as the model files do.
    """
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import write_predictions_table
    from graceful_core.models.loader import load_model

    out = OUT / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(DIGITS / "test")
    for name in model_names:
        preds = predict(load_model(MODELS / f"{name}.pt"), dataset, use_cache=False)
        write_predictions_table(preds, out / f"{name}.csv")
        print(f"predictions table: {out / f'{name}.csv'} ({len(preds)} rows)")


# --------------------------------------------------------------------------- main
def build_digits(args: argparse.Namespace) -> None:
    """The digits sample (unchanged since it was first built)."""
    if args.tables_only:
        write_prediction_tables(["old", "new", "new-pc", "new-bct", "v3", "edge"])
        return
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    counts = write_pngs()
    train, test = PngFolder(DIGITS / "train"), PngFolder(DIGITS / "test")
    mean, std = normalisation(train)
    print(f"images: {counts['train']} train, {counts['test']} test; mean {mean:.6f}, std {std:.6f}")
    info = model_info("digits", mean, std)
    X_tr, y_tr = tensors_from_dataset(train, info)
    X_te, y_te = tensors_from_dataset(test, info)
    y_np = y_te.numpy()
    MODELS.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}

    def fit(name: str, arch: str, **kw) -> torch.nn.Module:
        t = time.perf_counter()
        model = train_model(arch, X_tr, y_tr, **kw)
        save_torchscript(model, MODELS / f"{name}.pt", model_info(name, mean, std))
        pred, emb = outputs(model, X_te)
        results[name] = {"arch": arch, "test_accuracy": float(np.mean(pred == y_np)), "pred": pred, "emb": emb}
        print(
            f"{name:8s} {arch:13s} test accuracy {results[name]['test_accuracy']:.4f} ({time.perf_counter() - t:.1f} s)"
        )
        return model

    fit("old", "small-cnn", epochs=args.epochs_old, seed=1)
    fit("new", "large-cnn", epochs=args.epochs_new, seed=NEW_SEED)
    # Mitigated versions of "new": same architecture, budget and seed; the old model is
    # used as shipped (the TorchScript file), as a user of graceful would.
    old_ts = torch.jit.load(str(MODELS / "old.pt"))
    fit(
        "new-pc",
        "large-cnn",
        epochs=args.epochs_new,
        seed=NEW_SEED,
        method="focal-distillation",
        old_model=old_ts,
        **PC_PARAMS,
    )
    fit(
        "new-bct",
        "large-cnn",
        epochs=args.epochs_new,
        seed=NEW_SEED,
        method="bct",
        old_model=torch.jit.load(str(MODELS / "old.pt")),
        **BCT_PARAMS,
    )
    # The next generation and a small model that shares its embedding space.
    fit("v3", "large-cnn-v3", epochs=args.epochs_v3, seed=4)
    fit(
        "edge",
        "edge-cnn",
        epochs=args.epochs_new,
        seed=5,
        method="bct",
        old_model=torch.jit.load(str(MODELS / "v3.pt")),
        **BCT_PARAMS,
    )

    old = results["old"]
    summary = {
        "split_seed": SPLIT_SEED,
        "mean": mean,
        "std": std,
        "pc_params": PC_PARAMS,
        "bct_params": BCT_PARAMS,
        "models": {},
    }
    old_self = loo_cosine_top1(old["emb"], old["emb"], y_np)
    v3 = results["v3"]
    for name, r in results.items():
        entry = {"arch": r["arch"], "test_accuracy": r["test_accuracy"]}
        if name == "edge":
            entry["cross_test_top1_vs_v3"] = loo_cosine_top1(r["emb"], v3["emb"], y_np)
            entry["v3_self_test_top1"] = loo_cosine_top1(v3["emb"], v3["emb"], y_np)
            entry["self_test_top1"] = loo_cosine_top1(r["emb"], r["emb"], y_np)
            print(
                f"edge -> v3 gallery: cross-test top-1 {entry['cross_test_top1_vs_v3']:.4f} "
                f"(v3 self-test {entry['v3_self_test_top1']:.4f}, edge self-test {entry['self_test_top1']:.4f})"
            )
        elif name in ("new", "new-pc", "new-bct"):
            entry.update(flip_stats(old["pred"], r["pred"], y_np))
            entry["cross_test_top1_vs_old"] = loo_cosine_top1(r["emb"], old["emb"], y_np)
            print(
                f"old -> {name}: negative flips {entry['negative_flips']} (NFR {entry['nfr']:.4f}), "
                f"BTC {entry['btc']:.4f}, cross-test top-1 {entry['cross_test_top1_vs_old']:.4f} "
                f"(old self-test {old_self:.4f})"
            )
        summary["models"][name] = entry
    summary["old_self_test_top1"] = old_self
    (MODELS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    write_prediction_tables(list(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=["digits", "fashion", "maps"],
        help="build one sample, or only the Fashion pair's embedding maps (default: both samples)",
    )
    parser.add_argument("--epochs-old", type=int, default=6, help="digits: epochs of old")
    parser.add_argument("--epochs-new", type=int, default=30, help="digits: epochs of new and its variants")
    parser.add_argument("--epochs-v3", type=int, default=40, help="digits: epochs of v3")
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="digits: only (re)write sample_data/predictions/ from the existing models",
    )
    parser.add_argument(
        "--fashion-dir",
        type=Path,
        default=fashion_sample.FASHION_SRC,
        help="folder with the four Fashion-MNIST IDX files (default: Debian's)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="fashion: output folder (default: sample_data)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".cache" / "build_sample_data",
        help="fashion: cache of trained weights (default: .cache/build_sample_data)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="fashion: training processes (one thread each)")
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="NAME",
        help="fashion: (re)build only these final models of the existing sample, in place (their "
        "files, tables and summary entries), from the shipped models they depend on",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fashion: tiny budgets and splits, for tests on a small IDX file"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.only in (None, "digits"):
        build_digits(args)
    if args.only in (None, "fashion"):
        cfg = fashion_sample.QUICK if args.quick else fashion_sample.FashionConfig()
        try:
            if args.models:
                fashion_sample.update_fashion_models(
                    args.out, args.fashion_dir, args.cache, args.models, cfg, jobs=max(1, args.jobs)
                )
            else:
                fashion_sample.build_fashion(args.out, args.fashion_dir, args.cache, cfg, jobs=max(1, args.jobs))
        except InputError as e:
            print(f"error: {e.message}", file=sys.stderr)
            return 2
    if args.only in (None, "digits"):  # the record of which model file made each table (the app reads them)
        prediction_manifest.write_sample_manifest(OUT, "digits")
    if args.only in (None, "fashion") and not args.quick:
        prediction_manifest.write_sample_manifest(args.out, "fashion")
    rebuilt_pair = not args.models or bool({"old", "new"} & set(args.models))
    if args.only == "maps" or (args.only in (None, "fashion") and not args.quick and rebuilt_pair):
        sample_maps.write_sample_maps(args.out, "fashion")  # after the models: the maps are fitted on their embeddings
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
