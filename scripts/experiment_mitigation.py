"""Mitigation experiment: do focal distillation and BCT reduce regressions on real data?

    python scripts/experiment_mitigation.py                # full run, writes results/
    python scripts/experiment_mitigation.py --quick --out DIR [--subset 200]

Data: all 1,797 scans of ``sklearn.datasets.load_digits``, as uint8 images (value v ->
round(v * 255 / 16)) through :func:`graceful_core.transforms.preprocess` with the
training folds' pixel mean/std.

Protocol, for every seed and every fold of a stratified k-fold split (shuffled by seed):
train the old model (``small-cnn``) on the training folds; then train each new method
(``large-cnn``, same initialisation seed for all methods, so the comparison is paired)
on the same folds; predict the held-out fold. Concatenating the held-out folds gives
out-of-fold predictions for every image, from which, per seed: error rates, negative
flip rate NFR (Yan et al., CVPR 2021), relative NFR = NFR / ((1 - ER_old) * ER_new),
backward trust compatibility BTC (Bansal et al., AAAI 2019) and the relative NFR
reduction vs plain training. Embedding compatibility (Shen et al., CVPR 2020) is the
cross-test Hit@1: leave-one-out cosine nearest neighbour *within each held-out fold*
(query embedded by the fold's new model, gallery = the other held-out images embedded by
the fold's old model), pooled over folds; compatible when it exceeds the old self-test.
Results are mean +/- std over seeds (std with ddof = 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graceful_core.training.trainer import old_logits_of, tensors_from_dataset, train_model  # noqa: E402
from graceful_core.types import ModelInfo  # noqa: E402

OLD_ARCH, NEW_ARCH = "small-cnn", "large-cnn"
#: The compared methods: name -> train_model keyword arguments.
METHODS: dict[str, dict] = {
    "plain": {"method": "plain"},
    "distill": {"method": "distill", "alpha": 1.0, "beta": 0.0, "lam": 1.0},
    "focal-distillation": {"method": "focal-distillation", "alpha": 1.0, "beta": 5.0, "lam": 1.0},
    "bct": {"method": "bct", "lam": 1.0},
}
#: Extra variants with --sweep (lambda of the distillation term).
SWEEP: dict[str, dict] = {
    "distill lam=0.5": {"method": "distill", "alpha": 1.0, "beta": 0.0, "lam": 0.5},
    "focal-distillation lam=0.5": {"method": "focal-distillation", "alpha": 1.0, "beta": 5.0, "lam": 0.5},
    "focal-distillation lam=0.25": {"method": "focal-distillation", "alpha": 1.0, "beta": 5.0, "lam": 0.25},
    "focal-distillation lam=2": {"method": "focal-distillation", "alpha": 1.0, "beta": 5.0, "lam": 2.0},
}


# --------------------------------------------------------------------------- data
class _ArrayImages:
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i], mode="L")


def load_data(subset: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 8, 8] and labels [N]; an optional stratified subset of size ``subset``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * 255.0 / 16.0).astype(np.uint8)
    labels = d.target.astype(np.int64)
    if subset is not None and subset < len(labels):
        keep, _ = train_test_split(np.arange(len(labels)), train_size=subset, stratify=labels, random_state=seed)
        keep = np.sort(keep)
        images, labels = images[keep], labels[keep]
    return images, labels


def fold_info(images: np.ndarray) -> ModelInfo:
    """Preprocessing with the pixel mean/std (after / 255) of the given training images."""
    px = images.astype(np.float64) / 255.0
    return ModelInfo("fold", (1, 8, 8), (float(px.mean()),), (float(px.std()),), tuple(str(k) for k in range(10)))


# --------------------------------------------------------------------------- metrics (NumPy one-liners)
def flip_metrics(y: np.ndarray, old_pred: np.ndarray, new_pred: np.ndarray) -> dict[str, float | None]:
    """ER, NFR, relative NFR, BTC (DESIGN §2)."""
    old_ok, new_ok = old_pred == y, new_pred == y
    er_old, er_new = float(np.mean(~old_ok)), float(np.mean(~new_ok))
    nfr = float(np.mean(old_ok & ~new_ok))
    denom = (1.0 - er_old) * er_new
    return {
        "error_rate": er_new,
        "old_error_rate": er_old,
        "negative_flip_rate": nfr,
        "negative_flips": int(np.sum(old_ok & ~new_ok)),
        "relative_negative_flip_rate": nfr / denom if denom > 0 else None,
        "backward_trust_compatibility": float(np.sum(old_ok & new_ok) / np.sum(old_ok)) if old_ok.any() else None,
    }


def loo_hits(query: np.ndarray, gallery: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(hits, queries) of leave-one-out cosine top-1; ties to the lowest gallery index.

    Queries whose label has no other sample are left out.
    """
    q = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    s = q.astype(np.float64) @ g.astype(np.float64).T
    np.fill_diagonal(s, -np.inf)
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    valid = counts[labels] > 1
    hit = labels[s.argmax(axis=1)] == labels
    return int(np.sum(hit & valid)), int(np.sum(valid))


# --------------------------------------------------------------------------- one fold
def run_fold(task: dict) -> dict:
    """Train old + every method on the training folds; outputs on the held-out fold."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    images, labels = task["images"], task["labels"]
    tr, te = task["train_idx"], task["test_idx"]
    if task.get("train_fraction", 1.0) < 1.0:  # a stratified, seeded share of the training folds
        from sklearn.model_selection import train_test_split

        tr, _ = train_test_split(tr, train_size=task["train_fraction"], stratify=labels[tr],
                                 random_state=1000 * task["seed"] + task["fold"])
        tr = np.sort(tr)
    info = fold_info(images[tr])
    X_tr, y_tr = tensors_from_dataset(_ArrayImages(images[tr], labels[tr]), info)
    X_te, y_te = tensors_from_dataset(_ArrayImages(images[te], labels[te]), info)
    base = 1000 * task["seed"] + 10 * task["fold"]
    old = train_model(OLD_ARCH, X_tr, y_tr, epochs=task["epochs_old"], seed=base + 1)
    table = old_logits_of(old, X_tr)
    out = {"test_idx": te, "outputs": {}}
    with torch.no_grad():
        e = old.embed(X_te)
        out["outputs"]["old"] = (old.head(e).argmax(1).numpy(), e.numpy())
    for name, kw in task["methods"].items():
        kw = dict(kw)
        method = kw.pop("method")
        extra = {"old_model": old} if method == "bct" else {"old_logits": table} if method != "plain" else {}
        m = train_model(NEW_ARCH, X_tr, y_tr, method=method, epochs=task["epochs"], seed=base + 2, **extra, **kw)
        with torch.no_grad():
            e = m.embed(X_te)
            out["outputs"][name] = (m.head(e).argmax(1).numpy(), e.numpy())
    return out


# --------------------------------------------------------------------------- experiment
def run_experiment(
    *, seeds: int, folds: int, epochs: int, epochs_old: int, subset: int | None, methods: dict[str, dict], jobs: int,
    train_fraction: float = 1.0,
) -> dict:
    from sklearn.model_selection import StratifiedKFold

    images, labels = load_data(subset)
    n = len(labels)
    tasks = []
    for seed in range(seeds):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (tr, te) in enumerate(skf.split(np.zeros(n), labels)):
            tasks.append({"seed": seed, "fold": fold, "images": images, "labels": labels, "train_idx": tr,
                          "test_idx": te, "epochs": epochs, "epochs_old": epochs_old, "methods": methods,
                          "train_fraction": train_fraction})
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(run_fold, tasks))
    else:
        results = [run_fold(t) for t in tasks]

    per_seed: dict[str, list[dict]] = {name: [] for name in methods}
    old_self: list[float] = []
    for seed in range(seeds):
        fold_results = [r for t, r in zip(tasks, results) if t["seed"] == seed]
        names = ["old", *methods]
        pred = {k: np.empty(n, dtype=np.int64) for k in names}
        hits = {k: [0, 0] for k in ["old", *[f"{m}|x" for m in methods], *[f"{m}|self" for m in methods]]}
        for r in fold_results:
            te = r["test_idx"]
            y_te = labels[te]
            old_pred, old_emb = r["outputs"]["old"]
            pred["old"][te] = old_pred
            h, q = loo_hits(old_emb, old_emb, y_te)
            hits["old"][0] += h
            hits["old"][1] += q
            for m in methods:
                p, e = r["outputs"][m]
                pred[m][te] = p
                for key, gallery in ((f"{m}|x", old_emb), (f"{m}|self", e)):
                    h, q = loo_hits(e, gallery, y_te)
                    hits[key][0] += h
                    hits[key][1] += q
        o_self = hits["old"][0] / hits["old"][1]
        old_self.append(o_self)
        plain_nfr = None
        for m in methods:
            row = flip_metrics(labels, pred["old"], pred[m])
            row["cross_test_hit1"] = hits[f"{m}|x"][0] / hits[f"{m}|x"][1]
            row["self_test_hit1"] = hits[f"{m}|self"][0] / hits[f"{m}|self"][1]
            row["old_self_test_hit1"] = o_self
            row["compatible"] = row["cross_test_hit1"] > o_self
            if m == "plain":
                plain_nfr = row["negative_flip_rate"]
            per_seed[m].append(row)
        for m in methods:
            row = per_seed[m][-1]
            row["nfr_reduction_vs_plain"] = (
                1.0 - row["negative_flip_rate"] / plain_nfr if plain_nfr else None
            )
    return {"n_samples": n, "per_seed": per_seed, "old_self_test_hit1": old_self}


def _mean_std(values: list) -> tuple[float | None, float | None]:
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


KEYS = ["error_rate", "negative_flip_rate", "relative_negative_flip_rate", "backward_trust_compatibility",
        "nfr_reduction_vs_plain", "cross_test_hit1", "self_test_hit1", "old_error_rate", "negative_flips"]


def summarise(raw: dict) -> dict[str, dict]:
    out = {}
    for m, rows in raw["per_seed"].items():
        out[m] = {k: dict(zip(("mean", "std"), _mean_std([r[k] for r in rows]))) for k in KEYS}
        out[m]["compatible_seeds"] = int(sum(r["compatible"] for r in rows))
    return out


def _fmt(ms: dict, scale: float = 1.0, digits: int = 2) -> str:
    if ms["mean"] is None:
        return "n/a"
    return f"{ms['mean'] * scale:.{digits}f} ± {ms['std'] * scale:.{digits}f}"


def markdown(config: dict, summary: dict, raw: dict, elapsed: float) -> str:
    seeds = config["seeds"]
    o_mean, o_std = _mean_std(raw["old_self_test_hit1"])
    old_er = summary["plain"]["old_error_rate"]
    lines = [
        "# Mitigation experiment: focal distillation and BCT on real digit scans",
        "",
        f"Generated by `python scripts/experiment_mitigation.py {' '.join(config['argv'])}`".rstrip() + f" in {elapsed / 60:.1f} min.",
        "",
        "## Setup",
        "",
        f"- Data: {raw['n_samples']} scans of `sklearn.datasets.load_digits` (8x8, 10 classes), as PNG-equivalent uint8 "
        "images through `graceful_core.transforms.preprocess` (mean/std of the training folds).",
        f"- {config['folds']}-fold stratified cross-validation, {seeds} seeds (split shuffle and training seed). Per seed and "
        f"fold: old = `{OLD_ARCH}` ({config['epochs_old']} epochs); every new method = `{NEW_ARCH}` ({config['epochs']} epochs, "
        "Adam, cosine decay, batch 64), **same initialisation seed for all methods** (paired), trained on the same folds "
        "(the old model's logits / frozen head come from the fold's old model). Held-out folds are concatenated into "
        "out-of-fold predictions for all images."
        + (f" **Low-data regime**: old and new models train on a stratified {config['train_fraction']:.0%} of each "
           "fold's training images (seeded per seed and fold), so both err more and regressions are common; evaluation "
           "is still on all held-out images." if config.get("train_fraction", 1.0) < 1.0 else ""),
        "- NFR = share of all images the old model gets right and the new one wrong (Yan et al., CVPR 2021); relative NFR = "
        "NFR / ((1 − ER_old) · ER_new); BTC = P(new right | old right); NFR reduction = 1 − NFR(method) / NFR(plain), per seed.",
        "- Cross-test Hit@1 (Shen et al., CVPR 2020): leave-one-out cosine nearest neighbour **within each held-out fold** "
        "(queries embedded by the fold's new model, gallery = the other held-out images embedded by the same fold's old "
        "model), pooled over folds. Embeddings of different folds' models live in different spaces, so they are never "
        f"mixed. Old self-test Hit@1 (old vs old, same protocol): {o_mean * 100:.2f} ± {o_std * 100:.2f} %. "
        "Compatible = cross-test > old self-test.",
        f"- Old model error rate: {_fmt(old_er, 100)} %. Values are mean ± std over seeds (ddof = 1), in %, except "
        "relative NFR.",
        "",
        "## Results",
        "",
        "| method | loss parameters | ER new % | NFR % | negative flips | relative NFR | BTC % | NFR reduction vs plain % "
        "| cross-test Hit@1 % (new→old) | self-test Hit@1 % (new→new) | compatible (seeds) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summary.items():
        params = ", ".join(f"{k}={v:g}" for k, v in config["methods"][m].items() if k != "method") or "—"
        lines.append(
            f"| {m} | {params} | {_fmt(s['error_rate'], 100)} | {_fmt(s['negative_flip_rate'], 100)} | "
            f"{_fmt(s['negative_flips'], 1, 1)} | {_fmt(s['relative_negative_flip_rate'], 1, 3)} | "
            f"{_fmt(s['backward_trust_compatibility'], 100)} | "
            f"{'—' if m == 'plain' else _fmt(s['nfr_reduction_vs_plain'], 100, 1)} | {_fmt(s['cross_test_hit1'], 100)} | "
            f"{_fmt(s['self_test_hit1'], 100)} | {s['compatible_seeds']}/{seeds} |"
        )
    lines += ["", "## Observations (generated from the numbers above)", ""]
    p = summary["plain"]
    for m, s in summary.items():
        if m == "plain":
            continue
        d_er = (s["error_rate"]["mean"] - p["error_rate"]["mean"]) * 100
        red = s["nfr_reduction_vs_plain"]["mean"]
        lines.append(
            f"- {m}: NFR {s['negative_flip_rate']['mean'] * 100:.2f} % vs {p['negative_flip_rate']['mean'] * 100:.2f} % "
            f"for plain (NFR reduction {'n/a' if red is None else f'{red * 100:.1f} %'}), error rate {d_er:+.2f} points; "
            f"cross-test Hit@1 {s['cross_test_hit1']['mean'] * 100:.2f} % vs old self-test {o_mean * 100:.2f} % "
            f"({'compatible' if s['cross_test_hit1']['mean'] > o_mean else 'not compatible'} on average)."
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every new model")
    parser.add_argument("--epochs-old", type=int, default=6, help="epochs of the old model")
    parser.add_argument("--subset", type=int, default=None, help="stratified subset of the 1,797 images")
    parser.add_argument("--sweep", action="store_true", help="also run the lambda variants in SWEEP")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 folds, 2 epochs, 300 images (for tests)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--name", default="mitigation", help="output files <out>/<name>.md and .json")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train old and new models on this stratified share of each fold's training images")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.folds, args.epochs, args.epochs_old = 2, 2, 2, 1
        args.subset = args.subset or 300
    if args.seeds < 2 or args.folds < 2 or args.epochs < 1 or args.epochs_old < 1:
        parser.error("need --seeds >= 2, --folds >= 2, --epochs >= 1, --epochs-old >= 1")
    if not 0.0 < args.train_fraction <= 1.0:
        parser.error("--train-fraction must be in (0, 1]")
    methods = {**METHODS, **(SWEEP if args.sweep else {})}
    config = {"seeds": args.seeds, "folds": args.folds, "epochs": args.epochs, "epochs_old": args.epochs_old,
              "subset": args.subset, "train_fraction": args.train_fraction, "methods": methods, "argv": argv, "old_arch": OLD_ARCH, "new_arch": NEW_ARCH}

    t0 = time.perf_counter()
    raw = run_experiment(seeds=args.seeds, folds=args.folds, epochs=args.epochs, epochs_old=args.epochs_old,
                         subset=args.subset, methods=methods, jobs=args.jobs, train_fraction=args.train_fraction)
    elapsed = time.perf_counter() - t0
    summary = summarise(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(markdown(config, summary, raw, elapsed))
    payload = {"config": config, "summary": summary, "per_seed": raw["per_seed"],
               "old_self_test_hit1": raw["old_self_test_hit1"], "n_samples": raw["n_samples"], "seconds": elapsed}
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    for m, s in summary.items():
        print(f"{m:30s} ER {_fmt(s['error_rate'], 100)}  NFR {_fmt(s['negative_flip_rate'], 100)}  "
              f"cross-test {_fmt(s['cross_test_hit1'], 100)}")
    print(f"done in {elapsed:.1f} s; wrote {args.out / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
