"""Mitigation experiment: do focal distillation and BCT reduce regressions on real data?

    python scripts/experiment_mitigation.py --dataset fashion       # Fashion-MNIST on 2,000 photos, results/mitigation-fashion-2000.*
    python scripts/experiment_mitigation.py [--sweep]               # digits (the first experiment), results/mitigation.*
    python scripts/experiment_mitigation.py --quick --out DIR [--subset 200]            # tests
    python scripts/experiment_mitigation.py --dataset fashion --quick --fashion-dir D --out DIR

Every number in the tables comes from ``graceful_core``: error rates, NFR, relative NFR and
BTC from :mod:`graceful_core.metrics`, negative flips from
:class:`~graceful_core.metrics.counts.FlipCounts`, cross-test Hit@1 from
:func:`graceful_core.metrics.retrieval.cross_test` (leave-one-out cosine retrieval, BCT's
compatibility criterion M(new, old) > M(old, old), Shen et al., CVPR 2020).

**Fashion-MNIST protocol** (``--dataset fashion``). The 60,000 training images are split as
the sample build splits them (``scripts/fashion_sample.py``): 1,000 images per class for
validation, the rest for fitting. Models train on a fixed stratified subset of the fitting
images (the first ``--per-class`` images of each class in file order); each is evaluated on
the validation split (used only to choose λ) and on the official 10,000 test images (the
reported numbers). Per seed: an old model (``small-cnn-28``) and then every new method
(``large-cnn-28``, **the same initialisation seed for every method**, so differences are
paired): plain; distillation (β = 0); focal distillation with the paper's α = 1, β = 5
(Yan et al., CVPR 2021); a variant that distills only where the old model is right
(α = 0, β = 6: the same weight as the paper's on those images, none elsewhere), each over
a grid of λ; BCT (λ = 1). For each λ family, "the" setting is chosen on validation: the λ
with the lowest mean validation NFR among those whose mean validation error is at most
plain's + ``--equal-error`` points. Per method: mean ± std over seeds (ddof = 1), and the
paired difference to plain with a paired t test and a Wilcoxon signed-rank test over seeds
(``scipy.stats``). Training runs are cached by content hash in
``.cache/experiment_mitigation`` (an interrupted run resumes).

**Digits protocol** (the default, ``results/mitigation.md``): k-fold cross-validation over
all 1,797 scans of ``sklearn.datasets.load_digits``; out-of-fold predictions are pooled, the
cross-test is computed within each held-out fold (models of different folds live in
different spaces) and pooled over folds, weighted by the number of queries.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import fashion_sample as fs  # noqa: E402

from graceful_core.metrics import (  # noqa: E402
    backward_trust_compatibility,
    error_rate,
    negative_flip_rate,
    relative_negative_flip_rate,
)
from graceful_core.metrics.confidence import argmax_lowest  # noqa: E402
from graceful_core.metrics.counts import FlipCounts  # noqa: E402
from graceful_core.metrics.retrieval import cross_test  # noqa: E402
from graceful_core.training.trainer import old_logits_of, tensors_from_dataset, train_model  # noqa: E402
from graceful_core.types import ModelInfo  # noqa: E402

OLD_ARCH, NEW_ARCH = "small-cnn", "large-cnn"
FASHION_OLD_ARCH, FASHION_NEW_ARCH = "small-cnn-28", "large-cnn-28"
#: The compared methods (digits): name -> train_model keyword arguments.
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
#: Fashion: the λ families (name -> loss parameters without λ).
FAMILIES: dict[str, dict] = {
    "distill": {"method": "distill", "alpha": 1.0, "beta": 0.0},
    "focal (α 1, β 5)": {"method": "focal-distillation", "alpha": 1.0, "beta": 5.0},
    "focal, old-right only (α 0, β 6)": {"method": "focal-distillation", "alpha": 0.0, "beta": 6.0},
}
LAMBDAS = (0.1, 0.25, 0.5, 1.0)


def fashion_methods(lambdas: tuple[float, ...], families: dict[str, dict] = FAMILIES) -> dict[str, dict]:
    """plain, each family at each λ, BCT (λ 1): name -> train_model keyword arguments."""
    out = {"plain": {"method": "plain"}}
    for fam, kw in families.items():
        for lam in lambdas:
            out[f"{fam} λ={lam:g}"] = kw | {"lam": float(lam)}
    out["bct (λ 1)"] = {"method": "bct", "lam": 1.0}
    return out


# --------------------------------------------------------------------------- metrics (all graceful_core)
@dataclass(frozen=True)
class Outputs:
    """One model on one evaluation set: logits ``[N, K]`` and embeddings ``[N, D]``."""

    logits: np.ndarray
    embedding: np.ndarray


def flip_metrics(y: np.ndarray, old: Outputs, new: Outputs, n_classes: int) -> dict:
    """Error rates, NFR, negative flips, relative NFR, BTC of one old/new pair (graceful_core.metrics)."""
    o, n = argmax_lowest(old.logits), argmax_lowest(new.logits)
    counts = FlipCounts.from_predictions(y, o, n, n_classes)
    return {
        "error_rate": error_rate(y, n),
        "old_error_rate": error_rate(y, o),
        "negative_flip_rate": negative_flip_rate(y, o, n),
        "negative_flips": counts.negative_flips,
        "relative_negative_flip_rate": relative_negative_flip_rate(y, o, n),
        "backward_trust_compatibility": backward_trust_compatibility(y, o, n),
    }


def retrieval_hits(y: np.ndarray, old: Outputs, new: Outputs) -> dict:
    """Hit@1 of new→old (cross-test), new→new and old→old, with the number of valid queries."""
    ct = cross_test(old.embedding, new.embedding, y, compute_map=False)
    t = ct.scores["top1"]
    return {
        "cross_test_hit1": t["new_old"],
        "self_test_hit1": t["new_new"],
        "old_self_test_hit1": t["old_old"],
        "n_queries": ct.n_queries,
    }


def _finite(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _mean_std(values: list) -> tuple[float | None, float | None]:
    v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return None, None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


KEYS = [
    "error_rate",
    "negative_flip_rate",
    "negative_flips",
    "relative_negative_flip_rate",
    "backward_trust_compatibility",
    "nfr_reduction_vs_plain",
    "cross_test_hit1",
    "self_test_hit1",
    "old_error_rate",
]
#: Metrics whose paired difference to plain is tested across seeds.
PAIRED_KEYS = ["error_rate", "negative_flip_rate", "cross_test_hit1"]


def paired_test(diffs: list[float]) -> dict:
    """Mean ± std of per-seed differences, paired t test and Wilcoxon signed-rank p (two-sided).

    ``scipy.stats.ttest_1samp(d, 0)`` equals the paired t test of the two samples;
    ``scipy.stats.wilcoxon(d)`` (exact for small n). With 5 seeds the smallest possible
    two-sided Wilcoxon p is 2/32 = 0.0625. None where undefined (all differences 0; for t, all equal).
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    out = {"mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "t_p": None, "wilcoxon_p": None}
    if len(d) >= 2 and np.any(d != 0):
        if d.std(ddof=1) > 1e-9:  # equal differences (up to rounding) have no t statistic
            out["t_p"] = _finite(float(stats.ttest_1samp(d, 0.0).pvalue))
        out["wilcoxon_p"] = _finite(float(stats.wilcoxon(d).pvalue))
    return out


def summarise(per_seed: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean ± std over seeds per method; paired differences to plain with tests."""
    plain = per_seed["plain"]
    for rows in per_seed.values():
        for r, p in zip(rows, plain):
            r["nfr_reduction_vs_plain"] = (
                1.0 - r["negative_flip_rate"] / p["negative_flip_rate"] if p["negative_flip_rate"] else None
            )
    out = {}
    for m, rows in per_seed.items():
        s = {k: dict(zip(("mean", "std"), _mean_std([r.get(k) for r in rows]))) for k in KEYS}
        s["compatible_seeds"] = int(sum(bool(r["compatible"]) for r in rows))
        if m != "plain":
            s["vs_plain"] = {
                k: paired_test([r[k] - p[k] for r, p in zip(rows, plain)])
                for k in PAIRED_KEYS
                if all(r.get(k) is not None for r in rows + plain)
            }
        out[m] = s
    return out


# --------------------------------------------------------------------------- digits: data
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


@torch.no_grad()
def _outputs(model: torch.nn.Module, X: torch.Tensor, batch: int = 2000) -> Outputs:
    """:func:`fashion_sample.outputs` (logits and embeddings in eval mode) as :class:`Outputs`."""
    return Outputs(*fs.outputs(model, X, batch))


def run_fold(task: dict) -> dict:
    """Digits: train old + every method on the training folds; outputs on the held-out fold."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    images, labels = task["images"], task["labels"]
    tr, te = task["train_idx"], task["test_idx"]
    if task.get("train_fraction", 1.0) < 1.0:  # a stratified, seeded share of the training folds
        from sklearn.model_selection import train_test_split

        tr, _ = train_test_split(
            tr, train_size=task["train_fraction"], stratify=labels[tr], random_state=1000 * task["seed"] + task["fold"]
        )
        tr = np.sort(tr)
    info = fold_info(images[tr])
    X_tr, y_tr = tensors_from_dataset(_ArrayImages(images[tr], labels[tr]), info)
    X_te, _ = tensors_from_dataset(_ArrayImages(images[te], labels[te]), info)
    base = 1000 * task["seed"] + 10 * task["fold"]
    old = train_model(OLD_ARCH, X_tr, y_tr, epochs=task["epochs_old"], seed=base + 1)
    table = old_logits_of(old, X_tr)
    out = {"test_idx": te, "outputs": {"old": _outputs(old, X_te)}}
    for name, kw in task["methods"].items():
        kw = dict(kw)
        method = kw.pop("method")
        extra = {"old_model": old} if method == "bct" else {"old_logits": table} if method != "plain" else {}
        m = train_model(NEW_ARCH, X_tr, y_tr, method=method, epochs=task["epochs"], seed=base + 2, **extra, **kw)
        out["outputs"][name] = _outputs(m, X_te)
    return out


def run_digits(
    *,
    seeds: int,
    folds: int,
    epochs: int,
    epochs_old: int,
    subset: int | None,
    methods: dict[str, dict],
    jobs: int,
    train_fraction: float = 1.0,
) -> dict:
    """The digits protocol (module docstring): per-seed rows of every method."""
    from sklearn.model_selection import StratifiedKFold

    images, labels = load_data(subset)
    n = len(labels)
    tasks = []
    for seed in range(seeds):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (tr, te) in enumerate(skf.split(np.zeros(n), labels)):
            tasks.append(
                {
                    "seed": seed,
                    "fold": fold,
                    "images": images,
                    "labels": labels,
                    "train_idx": tr,
                    "test_idx": te,
                    "epochs": epochs,
                    "epochs_old": epochs_old,
                    "methods": methods,
                    "train_fraction": train_fraction,
                }
            )
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(run_fold, tasks))
    else:
        results = [run_fold(t) for t in tasks]

    per_seed: dict[str, list[dict]] = {name: [] for name in methods}
    old_self: list[float] = []
    for seed in range(seeds):
        fold_results = [r for t, r in zip(tasks, results) if t["seed"] == seed]
        logits = {k: np.empty((n, 10), dtype=np.float32) for k in ["old", *methods]}
        hits = {k: [0.0, 0] for k in ["old", *[f"{m}|x" for m in methods], *[f"{m}|self" for m in methods]]}
        for r in fold_results:
            te, y_te = r["test_idx"], labels[r["test_idx"]]
            old = r["outputs"]["old"]
            logits["old"][te] = old.logits
            for m in methods:
                logits[m][te] = r["outputs"][m].logits
                h = retrieval_hits(y_te, old, r["outputs"][m])
                for key, value in (
                    (f"{m}|x", h["cross_test_hit1"]),
                    (f"{m}|self", h["self_test_hit1"]),
                    *((("old", h["old_self_test_hit1"]),) if m == next(iter(methods)) else ()),
                ):
                    if h["n_queries"]:
                        hits[key][0] += value * h["n_queries"]
                        hits[key][1] += h["n_queries"]
        o_self = hits["old"][0] / hits["old"][1]
        old_self.append(o_self)
        empty = np.zeros((n, 1), dtype=np.float32)
        for m in methods:
            row = flip_metrics(labels, Outputs(logits["old"], empty), Outputs(logits[m], empty), 10)
            row["cross_test_hit1"] = hits[f"{m}|x"][0] / hits[f"{m}|x"][1]
            row["self_test_hit1"] = hits[f"{m}|self"][0] / hits[f"{m}|self"][1]
            row["old_self_test_hit1"] = o_self
            row["compatible"] = row["cross_test_hit1"] > o_self
            per_seed[m].append(row)
    return {"n_samples": n, "per_seed": per_seed, "old_self_test_hit1": old_self}


# --------------------------------------------------------------------------- fashion
@dataclass(frozen=True)
class FashionSetup:
    """Sizes and budgets of the Fashion-MNIST experiment."""

    per_class: int = 1000
    val_per_class: int = 1000
    split_seed: int = 0
    epochs: int = 12
    epochs_old: int = 2
    batch_size: int = 64
    seeds: int = 5


_DATA: dict = {}


def _fashion_arrays(src: str, setup: FashionSetup) -> dict:
    """Training subset, validation and test arrays (cached per process)."""
    key = (src, setup.per_class, setup.val_per_class, setup.split_seed)
    if key not in _DATA:
        d = fs.load_fashion(src)
        fit, val = fs.validation_split(d.train_labels, setup.val_per_class, setup.split_seed)
        sub = fit[fs.first_per_class(d.train_labels[fit], setup.per_class)]
        mean, std = fs.normalisation(d.train_images[sub])
        _DATA.clear()
        _DATA[key] = {
            "X": fs.to_tensor(d.train_images[sub], mean, std),
            "y": torch.from_numpy(d.train_labels[sub]),
            "X_val": fs.to_tensor(d.train_images[val], mean, std),
            "y_val": d.train_labels[val],
            "X_test": fs.to_tensor(d.test_images, mean, std),
            "y_test": d.test_labels,
            "n_train": len(sub),
            "mean": mean,
            "std": std,
            "fingerprint": fs.data_key(d.train_images, d.train_labels, sub, mean, std)
            + fs.data_key(d.train_images, d.train_labels, val, mean, std)
            + fs.data_key(d.test_images, d.test_labels, np.arange(len(d.test_labels)), mean, std),
        }
    return _DATA[key]


def fashion_task(task: dict) -> dict:
    """Train one model (the seed's old model, or one method against it); save its outputs (and old's weights)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    setup: FashionSetup = task["setup"]
    data = _fashion_arrays(task["src"], setup)
    t0, c0 = time.perf_counter(), time.process_time()
    kw = dict(task["kw"])
    method = kw.pop("method", "plain")
    if task["old_weights"] is not None:
        from graceful_core.training.architectures import build_model

        old = build_model(FASHION_OLD_ARCH, num_classes=10, embedding_dim=64)
        old.load_state_dict(torch.load(task["old_weights"], map_location="cpu", weights_only=True))
        old.eval()
        if method == "bct":
            kw["old_model"] = old
        elif method != "plain":
            kw["old_logits"] = old_logits_of(old, data["X"])
    model = train_model(
        task["arch"],
        data["X"],
        data["y"],
        method=method,
        epochs=task["epochs"],
        seed=task["seed"],
        batch_size=setup.batch_size,
        num_classes=10,
        embedding_dim=None if method == "bct" else 64,
        **kw,
    )
    val, test = _outputs(model, data["X_val"]), _outputs(model, data["X_test"])
    path = Path(task["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    cpu = time.process_time() - c0
    np.savez(
        tmp,
        val_logits=val.logits,
        val_emb=val.embedding,
        test_logits=test.logits,
        test_emb=test.embedding,
        cpu_seconds=np.float64(cpu),
    )
    os.replace(tmp, path)
    if task["weights"] is not None:
        wtmp = Path(task["weights"]).with_name(f".{Path(task['weights']).stem}.{os.getpid()}.tmp")
        torch.save(model.state_dict(), wtmp)
        os.replace(wtmp, task["weights"])
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu}


def run_fashion(*, src: str, setup: FashionSetup, methods: dict[str, dict], jobs: int, cache: Path, log=print) -> dict:
    """The Fashion-MNIST protocol (module docstring): per-seed rows on validation and test."""
    from graceful_core.cache import make_key

    data = _fashion_arrays(src, setup)
    base = make_key(
        "mitigation-fashion-v1", torch.__version__, data["fingerprint"], json.dumps({"batch_size": setup.batch_size})
    )
    tasks: dict[tuple[int, str], dict] = {}
    for seed in range(setup.seeds):
        old_kw = {"arch": FASHION_OLD_ARCH, "epochs": setup.epochs_old, "seed": 1000 * seed + 1, "kw": {}}
        old_key = make_key(base, json.dumps(old_kw, sort_keys=True))
        tasks[(seed, "old")] = old_kw | {"key": old_key, "old": None}
        for m, kw in methods.items():
            new_kw = {"arch": FASHION_NEW_ARCH, "epochs": setup.epochs, "seed": 1000 * seed + 2, "kw": kw}
            tasks[(seed, m)] = new_kw | {
                "key": make_key(base, old_key, json.dumps(new_kw, sort_keys=True)),
                "old": (seed, "old"),
            }
    cache.mkdir(parents=True, exist_ok=True)
    for t in tasks.values():
        t["path"] = str(cache / f"{t['key'][:24]}.npz")
        t["weights"] = str(cache / f"{t['key'][:24]}.pt") if t["old"] is None else None
    done = {
        k
        for k, t in tasks.items()
        if Path(t["path"]).is_file() and (t["weights"] is None or Path(t["weights"]).is_file())
    }
    todo = [k for k in tasks if k not in done]
    log(f"fashion: {len(tasks)} trainings ({len(done)} cached), {jobs} processes, {data['n_train']} training images")
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    running: dict = {}
    finished = len(done)
    try:
        while todo or running:
            ready = [k for k in todo if tasks[k]["old"] is None or tasks[k]["old"] in done]
            for k in ready:
                t = tasks[k]
                todo.remove(k)
                job = {
                    "src": src,
                    "setup": setup,
                    "arch": t["arch"],
                    "epochs": t["epochs"],
                    "seed": t["seed"],
                    "kw": t["kw"],
                    "path": t["path"],
                    "weights": t["weights"],
                    "old_weights": None if t["old"] is None else tasks[t["old"]]["weights"],
                }
                if pool is None:
                    fashion_task(job)
                    done.add(k)
                    finished += 1
                else:
                    running[pool.submit(fashion_task, job)] = k
            if running:
                fin, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in fin:
                    k = running.pop(f)
                    f.result()
                    done.add(k)
                    finished += 1
                    elapsed = time.perf_counter() - t0
                    log(f"  [{finished}/{len(tasks)}] seed {k[0]} {k[1]} ({elapsed / 60:.1f} min)")
            elif todo and not ready:
                raise RuntimeError(f"tasks wait for an old model that never trains: {todo[:3]}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    def load(k: tuple[int, str], split: str) -> Outputs:
        with np.load(tasks[k]["path"]) as z:
            return Outputs(z[f"{split}_logits"], z[f"{split}_emb"])

    cpu_seconds = 0.0
    for t in tasks.values():
        with np.load(t["path"]) as z:
            cpu_seconds += float(z["cpu_seconds"])
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    val_rows: dict[str, list[dict]] = {m: [] for m in methods}
    old_self: list[float] = []
    for seed in range(setup.seeds):
        old_test, old_val = load((seed, "old"), "test"), load((seed, "old"), "val")
        for m in methods:
            new_test = load((seed, m), "test")
            row = flip_metrics(data["y_test"], old_test, new_test, 10) | retrieval_hits(
                data["y_test"], old_test, new_test
            )
            row["compatible"] = bool(row["cross_test_hit1"] > row["old_self_test_hit1"])
            per_seed[m].append(row)
            val_rows[m].append(flip_metrics(data["y_val"], old_val, load((seed, m), "val"), 10))
        old_self.append(per_seed["plain"][-1]["old_self_test_hit1"])
    return {
        "n_samples": len(data["y_test"]),
        "n_train": data["n_train"],
        "per_seed": per_seed,
        "validation_per_seed": val_rows,
        "old_self_test_hit1": old_self,
        "cpu_seconds": cpu_seconds,
    }


def select_on_validation(
    val_rows: dict[str, list[dict]],
    lambdas: tuple[float, ...],
    equal_error: float,
    families: dict[str, dict] = FAMILIES,
) -> dict:
    """Per family, the λ with the lowest mean validation NFR among those whose mean validation error
    is at most plain's + ``equal_error``; None when no λ qualifies."""
    plain_er = float(np.mean([r["error_rate"] for r in val_rows["plain"]]))
    out = {}
    for fam in families:
        cands = []
        for lam in lambdas:
            rows = val_rows[f"{fam} λ={lam:g}"]
            er, nfr = (
                float(np.mean([r["error_rate"] for r in rows])),
                float(np.mean([r["negative_flip_rate"] for r in rows])),
            )
            cands.append(
                {
                    "lambda": lam,
                    "val_error_rate": er,
                    "val_negative_flip_rate": nfr,
                    "qualifies": er <= plain_er + equal_error,
                }
            )
        ok = [c for c in cands if c["qualifies"]]
        best = min(ok, key=lambda c: (c["val_negative_flip_rate"], c["lambda"])) if ok else None
        out[fam] = {
            "chosen": None if best is None else f"{fam} λ={best['lambda']:g}",
            "candidates": cands,
            "plain_val_error_rate": plain_er,
        }
    return out


# --------------------------------------------------------------------------- the report
def _fmt(ms: dict, scale: float = 1.0, digits: int = 2) -> str:
    if ms["mean"] is None:
        return "n/a"
    return f"{ms['mean'] * scale:.{digits}f} ± {ms['std'] * scale:.{digits}f}"


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def _diff(d: dict | None, scale: float = 100.0) -> str:
    if d is None:
        return "—"
    return f"{d['mean'] * scale:+.2f} ± {d['std'] * scale:.2f} (t p {_p(d['t_p'])}, W p {_p(d['wilcoxon_p'])})"


def results_table(summary: dict, methods: dict[str, dict], seeds: int, chosen: set[str] = frozenset()) -> list[str]:
    lines = [
        "| method | loss parameters | error rate % | NFR % | negative flips | relative NFR | BTC % "
        "| cross-test Hit@1 % (new→old) | compatible (seeds) | Δ error vs plain (pts) | Δ NFR vs plain (pts) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summary.items():
        params = ", ".join(f"{k}={v:g}" for k, v in methods[m].items() if k != "method") or "—"
        vs = s.get("vs_plain", {})
        name = f"**{m}**" if m in chosen else m
        lines.append(
            f"| {name} | {params} | {_fmt(s['error_rate'], 100)} | {_fmt(s['negative_flip_rate'], 100)} | "
            f"{_fmt(s['negative_flips'], 1, 1)} | {_fmt(s['relative_negative_flip_rate'], 1, 3)} | "
            f"{_fmt(s['backward_trust_compatibility'], 100)} | {_fmt(s['cross_test_hit1'], 100)} | "
            f"{s['compatible_seeds']}/{seeds} | {_diff(vs.get('error_rate'))} | {_diff(vs.get('negative_flip_rate'))} |"
        )
    return lines


def markdown_digits(config: dict, summary: dict, raw: dict, elapsed: float) -> str:
    seeds = config["seeds"]
    o_mean, o_std = _mean_std(raw["old_self_test_hit1"])
    old_er = summary["plain"]["old_error_rate"]
    lines = [
        "# Mitigation experiment: focal distillation and BCT on real digit scans",
        "",
        f"Generated by `python scripts/experiment_mitigation.py {' '.join(config['argv'])}`".rstrip()
        + f" in {elapsed / 60:.1f} min.",
        "",
        "## Setup",
        "",
        f"- Data: {raw['n_samples']} scans of `sklearn.datasets.load_digits` (8x8, 10 classes), as PNG-equivalent uint8 "
        "images through `graceful_core.transforms.preprocess` (mean/std of the training folds).",
        f"- {config['folds']}-fold stratified cross-validation, {seeds} seeds (split shuffle and training seed). Per seed and "
        f"fold: old = `{OLD_ARCH}` ({config['epochs_old']} epochs); every new method = `{NEW_ARCH}` ({config['epochs']} epochs, "
        "Adam, cosine decay, batch 64), **same initialisation seed for all methods** (paired), trained on the same folds. "
        "Held-out folds are concatenated into out-of-fold predictions for all images."
        + (
            f" **Low-data regime**: old and new models train on a stratified {config['train_fraction']:.0%} of each "
            "fold's training images."
            if config.get("train_fraction", 1.0) < 1.0
            else ""
        ),
        "- Every metric is graceful_core's (`graceful_core.metrics`, `FlipCounts`, `retrieval.cross_test`). Cross-test "
        "Hit@1 within each held-out fold, pooled over folds weighted by queries. "
        f"Old self-test Hit@1: {o_mean * 100:.2f} ± {o_std * 100:.2f} %. Compatible = cross-test > old self-test.",
        f"- Old model error rate: {_fmt(old_er, 100)} %. Mean ± std over seeds (ddof = 1), in %, except relative NFR. "
        "Δ vs plain: mean ± std of the per-seed paired differences, paired t test (t p) and Wilcoxon signed-rank (W p).",
        "",
        "## Results",
        "",
        *results_table(summary, config["methods"], seeds),
        "",
    ]
    return "\n".join(lines)


def markdown_fashion(config: dict, summary: dict, raw: dict, selection: dict, elapsed: float, png: str | None) -> str:
    seeds = config["seeds"]
    o_mean, o_std = _mean_std(raw["old_self_test_hit1"])
    chosen = {v["chosen"] for v in selection.values() if v["chosen"]}
    p = summary["plain"]
    lines = [
        "# Mitigation experiment on Fashion-MNIST: focal distillation and BCT where regressions are common",
        "",
        f"Generated by `python scripts/experiment_mitigation.py {' '.join(config['argv'])}` in {elapsed / 60:.1f} min "
        f"({config['jobs']} processes, one thread each; the trainings' CPU time adds up to {raw['cpu_seconds'] / 60:.0f} "
        f"min, i.e. about {raw['cpu_seconds'] / 60 / max(1, config['jobs']):.0f} min on {config['jobs']} idle cores).",
        "",
        "## Setup",
        "",
        f"- Data: Fashion-MNIST (Debian `dataset-fashion-mnist`). Training: a fixed stratified subset of "
        f"{raw['n_train']:,} images (the first {config['per_class']:,} per class, in file order, of the training images "
        f"outside the validation split). Validation: {config['val_per_class']:,} training images per class "
        f"(the sample build's split), used only to choose λ. Test: the official test images ({raw['n_samples']:,}); "
        "every number below is on test.",
        f"- Per seed ({seeds} seeds): old = `{FASHION_OLD_ARCH}` ({config['epochs_old']} epochs); every new method = "
        f"`{FASHION_NEW_ARCH}` ({config['epochs']} epochs, Adam, cosine decay, batch {config['batch_size']}), **the same "
        "initialisation seed for every method** (paired), the seed's old model as teacher / frozen head.",
        (
            "- Methods: plain (cross-entropy); distill (KL to the old model on every image, β = 0); focal distillation with "
            "the paper's α = 1, β = 5 (Yan et al., CVPR 2021); the variant that distills only where the old model is right "
            "(α = 0, β = 6: the paper's weight there, none elsewhere); each over λ ∈ "
        )
        + f"{{{', '.join(f'{v:g}' for v in config['lambdas'])}}}; BCT (Shen et al., CVPR 2020, λ = 1).",
        "- Metrics: graceful_core's (`graceful_core.metrics`: error rate, NFR, relative NFR, BTC; `FlipCounts`: negative "
        "flips; `retrieval.cross_test`: leave-one-out cosine Hit@1 of new queries on the old model's gallery over the "
        f"{raw['n_samples']:,} test images). Old self-test Hit@1 {o_mean * 100:.2f} ± {o_std * 100:.2f} %; compatible = cross-test "
        f"above it. Old error rate {_fmt(p['old_error_rate'], 100)} %.",
        "- Mean ± std over seeds (ddof = 1). Δ vs plain: mean ± std of the per-seed paired differences (method − plain, "
        "in percentage points), two-sided paired t test (t p) and Wilcoxon signed-rank test (W p; with "
        f"{seeds} seeds its smallest possible value is 2/2^{seeds} = {2 / 2**seeds:.4g}).",
        f"- **Choice on validation** (never on test): per family, the λ with the lowest mean validation NFR among those "
        f'whose mean validation error is at most plain\'s + {config["equal_error"] * 100:g} points ("equal error"). '
        "Chosen rows are in bold.",
        "",
        "## Results (test set)",
        "",
        *results_table(summary, config["methods"], seeds, chosen),
        "",
        "## Choice of λ on the validation split",
        "",
        "| family | λ | validation error % | validation NFR % | within equal error |",
        "|---|---|---|---|---|",
    ]
    for fam, sel in selection.items():
        for c in sel["candidates"]:
            mark = " (chosen)" if sel["chosen"] == f"{fam} λ={c['lambda']:g}" else ""
            lines.append(
                f"| {fam} | {c['lambda']:g}{mark} | {c['val_error_rate'] * 100:.2f} | "
                f"{c['val_negative_flip_rate'] * 100:.2f} | {'yes' if c['qualifies'] else 'no'} |"
            )
    plain_val = next(iter(selection.values()))["plain_val_error_rate"] if selection else float("nan")
    lines += ["", f"Plain's validation error: {plain_val * 100:.2f} %.", ""]
    if png:
        lines += [
            "## NFR vs error rate",
            "",
            f"![NFR vs error rate]({png})",
            "",
            "Mean over seeds with ± 1 std bars; the λ families are lines (λ grows along each line).",
            "",
        ]
    lines += ["## What works and what does not", "", *verdicts(summary, selection, o_mean), ""]
    return "\n".join(lines)


def verdicts(summary: dict, selection: dict, old_self: float) -> list[str]:
    """Plain sentences generated from the numbers (the claim: lower NFR at equal error, Yan et al.)."""
    p = summary["plain"]
    out = []
    for fam, sel in selection.items():
        if sel["chosen"] is None:
            out.append(f"- {fam}: no λ kept the validation error within the equal-error margin; nothing to claim.")
            continue
        s = summary[sel["chosen"]]
        d_nfr, d_er = s["vs_plain"]["negative_flip_rate"], s["vs_plain"]["error_rate"]
        red = s["nfr_reduction_vs_plain"]
        sig = d_nfr["t_p"] is not None and d_nfr["t_p"] < 0.05 and d_nfr["mean"] < 0
        er_sig = d_er["t_p"] is not None and d_er["t_p"] < 0.05
        out.append(
            f"- {sel['chosen']} (chosen on validation): NFR {s['negative_flip_rate']['mean'] * 100:.2f} % vs "
            f"{p['negative_flip_rate']['mean'] * 100:.2f} % for plain ({red['mean'] * 100:.0f} ± {red['std'] * 100:.0f} % "
            f"fewer negative flips; paired t p {_p(d_nfr['t_p'])}), error rate {d_er['mean'] * 100:+.2f} points "
            f"(t p {_p(d_er['t_p'])}). "
            + ("**NFR lower, significantly**" if sig else "NFR not significantly lower")
            + (", at a significantly different error rate." if er_sig else ", error rate not significantly different.")
        )
    bct = next((m for m in summary if m.startswith("bct")), None)
    if bct:
        s = summary[bct]
        out.append(
            f"- {bct}: cross-test Hit@1 {s['cross_test_hit1']['mean'] * 100:.2f} % vs old self-test "
            f"{old_self * 100:.2f} % (compatible in {s['compatible_seeds']} of the seeds; plain: "
            f"{p['cross_test_hit1']['mean'] * 100:.2f} %); error rate {s['vs_plain']['error_rate']['mean'] * 100:+.2f} "
            f"points, NFR {s['vs_plain']['negative_flip_rate']['mean'] * 100:+.2f} points vs plain."
        )
    return out


# --------------------------------------------------------------------------- the picture
def tradeoff_figure(summary: dict, selection: dict, lambdas: tuple[float, ...], families: dict[str, dict] = FAMILIES):
    """NFR (%) against error rate (%): mean ± std per method; one line per λ family."""
    import plotly.graph_objects as go

    fig = go.Figure()

    def point(name: str) -> tuple[float, float, float, float]:
        s = summary[name]
        return (
            s["error_rate"]["mean"] * 100,
            s["negative_flip_rate"]["mean"] * 100,
            s["error_rate"]["std"] * 100,
            s["negative_flip_rate"]["std"] * 100,
        )

    for m, symbol in (("plain", "circle"), *((m, "diamond") for m in summary if m.startswith("bct"))):
        x, y, ex, ey = point(m)
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                error_x={"type": "data", "array": [ex]},
                error_y={"type": "data", "array": [ey]},
                mode="markers+text",
                text=[m],
                textposition="top right",
                marker={"size": 12, "symbol": symbol},
                name=m,
            )
        )
    for fam in families:
        names = [f"{fam} λ={lam:g}" for lam in lambdas if f"{fam} λ={lam:g}" in summary]
        pts = [point(n) for n in names]
        chosen = selection.get(fam, {}).get("chosen")
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                error_x={"type": "data", "array": [p[2] for p in pts]},
                error_y={"type": "data", "array": [p[3] for p in pts]},
                mode="lines+markers+text",
                text=[f"λ {n.split('=')[-1]}" + (" ✓" if n == chosen else "") for n in names],
                textposition="bottom right",
                marker={"size": [14 if n == chosen else 9 for n in names]},
                name=fam,
            )
        )
    fig.update_layout(
        width=1000,
        height=640,
        template="plotly_white",
        title="Fashion-MNIST: negative flip rate vs error rate (mean ± std over seeds; ✓ chosen on validation)",
        xaxis_title="error rate of the new model on test (%)",
        yaxis_title="negative flip rate NFR (%)",
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def write_png(fig, path: Path, chromium: str = "/usr/bin/chromium") -> bool:
    """Render a plotly figure to PNG in headless Chromium (Playwright); False when no browser is available."""
    if not Path(chromium).exists():
        return False
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        html = Path(d) / "figure.html"
        html.write_text(fig.to_html(include_plotlyjs=True, full_html=True, config={"staticPlot": True}))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": fig.layout.width + 40, "height": fig.layout.height + 40})
                page.goto(html.as_uri())
                page.wait_for_selector(".main-svg", timeout=30_000)
                page.locator(".plot-container").first.screenshot(path=str(path))
            finally:
                browser.close()
    return True


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["digits", "fashion"], default="digits")
    parser.add_argument("--seeds", type=int, default=None, help="default 5")
    parser.add_argument("--folds", type=int, default=5, help="digits: cross-validation folds")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every new model (digits 30, fashion 12)")
    parser.add_argument("--epochs-old", type=int, default=None, help="epochs of the old model (digits 6, fashion 2)")
    parser.add_argument("--subset", type=int, default=None, help="digits: stratified subset of the 1,797 images")
    parser.add_argument("--sweep", action="store_true", help="digits: also run the lambda variants in SWEEP")
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="digits: train old and new models on this stratified share of each fold's training images",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help=f"fashion: training images per class (fixed subset; default {FashionSetup.per_class})",
    )
    parser.add_argument(
        "--lambdas", type=float, nargs="+", default=None, help=f"fashion: the λ grid (default {list(LAMBDAS)})"
    )
    parser.add_argument(
        "--equal-error",
        type=float,
        default=0.005,
        help="fashion: λ choice keeps the validation error within plain's + this (0.005 = half a point)",
    )
    parser.add_argument("--fashion-dir", type=Path, default=None, help="fashion: folder of the IDX files")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / ".cache" / "experiment_mitigation",
        help="fashion: cache of finished trainings",
    )
    parser.add_argument("--no-png", action="store_true", help="fashion: do not render the trade-off picture")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (for tests)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument(
        "--name", default=None, help="output files <out>/<name>.md/.json (default mitigation[-fashion])"
    )
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 5
    if args.per_class is None:
        args.per_class = FashionSetup.per_class
    if args.lambdas is None:
        args.lambdas = list(LAMBDAS)
    if args.seeds < 2:
        parser.error("need --seeds >= 2")
    if args.dataset == "fashion":
        return main_fashion(args, argv)
    if args.quick:
        args.seeds, args.folds, args.epochs, args.epochs_old = 2, 2, 2, 1
        args.subset = args.subset or 300
    args.epochs = args.epochs or 30
    args.epochs_old = args.epochs_old or 6
    if args.folds < 2 or args.epochs < 1 or args.epochs_old < 1:
        parser.error("need --folds >= 2, --epochs >= 1, --epochs-old >= 1")
    if not 0.0 < args.train_fraction <= 1.0:
        parser.error("--train-fraction must be in (0, 1]")
    name = args.name or "mitigation"
    methods = {**METHODS, **(SWEEP if args.sweep else {})}
    config = {
        "dataset": "digits",
        "seeds": args.seeds,
        "folds": args.folds,
        "epochs": args.epochs,
        "epochs_old": args.epochs_old,
        "subset": args.subset,
        "train_fraction": args.train_fraction,
        "methods": methods,
        "argv": argv,
        "old_arch": OLD_ARCH,
        "new_arch": NEW_ARCH,
    }
    t0 = time.perf_counter()
    raw = run_digits(
        seeds=args.seeds,
        folds=args.folds,
        epochs=args.epochs,
        epochs_old=args.epochs_old,
        subset=args.subset,
        methods=methods,
        jobs=args.jobs,
        train_fraction=args.train_fraction,
    )
    elapsed = time.perf_counter() - t0
    summary = summarise(raw["per_seed"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(markdown_digits(config, summary, raw, elapsed))
    _write_json(
        args.out / f"{name}.json",
        {
            "config": config,
            "summary": summary,
            "per_seed": raw["per_seed"],
            "old_self_test_hit1": raw["old_self_test_hit1"],
            "n_samples": raw["n_samples"],
            "seconds": elapsed,
        },
    )
    _print(summary)
    print(f"done in {elapsed:.1f} s; wrote {args.out / (name + '.md')}")
    return 0


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, np.bool_ | np.integer | np.floating):
        return x.item()
    return x


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False, ensure_ascii=False) + "\n")


def _print(summary: dict) -> None:
    for m, s in summary.items():
        print(
            f"{m:40s} ER {_fmt(s['error_rate'], 100)}  NFR {_fmt(s['negative_flip_rate'], 100)}  "
            f"cross-test {_fmt(s['cross_test_hit1'], 100)}",
            flush=True,
        )


def main_fashion(args: argparse.Namespace, argv: list[str]) -> int:
    src = str(args.fashion_dir or fs.FASHION_SRC)
    setup = FashionSetup(
        per_class=args.per_class,
        seeds=args.seeds,
        epochs=args.epochs or FashionSetup.epochs,
        epochs_old=args.epochs_old or FashionSetup.epochs_old,
    )
    lambdas = tuple(sorted(set(args.lambdas)))
    if args.quick:
        setup = FashionSetup(per_class=min(args.per_class, 4), val_per_class=3, seeds=2, epochs=1, epochs_old=1)
        lambdas = lambdas[:2]
    families = FAMILIES
    methods = fashion_methods(lambdas, families)
    name = args.name or "mitigation-fashion-2000"
    config = {
        "dataset": "fashion",
        "seeds": setup.seeds,
        "per_class": setup.per_class,
        "val_per_class": setup.val_per_class,
        "epochs": setup.epochs,
        "epochs_old": setup.epochs_old,
        "batch_size": setup.batch_size,
        "lambdas": list(lambdas),
        "equal_error": args.equal_error,
        "methods": methods,
        "argv": argv,
        "jobs": args.jobs,
        "old_arch": FASHION_OLD_ARCH,
        "new_arch": FASHION_NEW_ARCH,
    }
    t0 = time.perf_counter()
    try:
        raw = run_fashion(src=src, setup=setup, methods=methods, jobs=max(1, args.jobs), cache=args.cache)
    except fs.InputError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    summary = summarise(raw["per_seed"])
    selection = select_on_validation(raw["validation_per_seed"], lambdas, args.equal_error, families)
    elapsed = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    png = None
    if not args.no_png and write_png(tradeoff_figure(summary, selection, lambdas, families), args.out / f"{name}.png"):
        png = f"{name}.png"
    (args.out / f"{name}.md").write_text(markdown_fashion(config, summary, raw, selection, elapsed, png))
    _write_json(
        args.out / f"{name}.json",
        {
            "config": config,
            "summary": summary,
            "selection": selection,
            "per_seed": raw["per_seed"],
            "validation_per_seed": raw["validation_per_seed"],
            "old_self_test_hit1": raw["old_self_test_hit1"],
            "n_samples": raw["n_samples"],
            "n_train": raw["n_train"],
            "seconds": elapsed,
            "cpu_seconds": raw["cpu_seconds"],
        },
    )
    _print(summary)
    print(f"done in {elapsed:.1f} s; wrote {args.out / (name + '.md')}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
