"""The Fashion-MNIST sample: images, manifest, models and predictions tables.

Used by ``python scripts/build_sample_data.py`` (which documents the command line) and by
``scripts/experiment_mitigation.py`` (the data loading). Source: the four IDX files of
Debian's package ``dataset-fashion-mnist`` (Xiao, Rasul & Vollgraf 2017, Zalando
Research, MIT licence) in ``/usr/share/datasets/fashion-mnist/``.

What :func:`build_fashion` writes under ``<out>/fashion/`` (``sample_data/README.md``
explains every choice and the measured numbers):

- ``test/<folder>/<index>.png``: all 10,000 official test images, 8-bit grayscale 28x28,
  pixels exactly as in the IDX file; ``<index>`` is the image's position in
  ``t10k-images-idx3-ubyte`` (5 digits); ``test/classes.json`` maps the folder names
  (``t-shirt-top``) to the class names (``T-shirt/top``).
- ``test.csv``: a manifest of the same images (``id`` as in the folder, ``path``,
  ``label`` as class name) with two metadata columns computed from the pixels:
  ``ink_coverage`` and ``brightness`` in three named bins each.
- ``train/<folder>/<index>.png`` (+ ``classes.json``): the first ``app_train_per_class``
  images of each class in the training file, for the app's in-app training.
- ``models/<name>.pt`` (TorchScript with ``graceful.json``), ``models/v3.onnx`` (ONNX) and
  ``models/edge.pt2`` (torch.export), one file per model (:data:`FORMATS`): trained on
  the 60,000 training images read straight from the IDX file, preprocessed exactly as
  :func:`graceful_core.transforms.preprocess` preprocesses the PNGs;
  ``models/selection.json``: the validation runs that chose the hyper-parameters;
  ``models/summary.json``: the final models' numbers on the test set.
- ``predictions/<name>.parquet``: ``graceful predict``'s table of every model on ``test/``.

Training runs are pure functions of (configuration, data, old model): each one's weights
are kept in a build cache (``torch.save`` of the state dict, read back with
``weights_only=True``) under a key hashing all three, so re-running the build only
re-exports. Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)`` and one
thread per training process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graceful_core.errors import InputError  # noqa: E402
from graceful_core.io.idx import read_idx  # noqa: E402

#: Where Debian's ``dataset-fashion-mnist`` puts the IDX files.
FASHION_SRC = Path("/usr/share/datasets/fashion-mnist")
APT_HINT = "install the Debian package with `apt-get install dataset-fashion-mnist` (or pass --fashion-dir)"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
#: Class names in label order (Xiao et al. 2017, README of zalandoresearch/fashion-mnist).
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: The four upper-body garments that look alike at 28x28.
UPPER_BODY = ("T-shirt/top", "Pullover", "Coat", "Shirt")
IMAGE_SIZE = (28, 28)
CLASSES_FILE = "classes.json"

#: Ink: a pixel brighter than this (of 255) belongs to the garment, not the black background.
INK_THRESHOLD = 32
#: ``ink_coverage`` bins: share of the 784 pixels that are ink (cut points 0.35, 0.55).
INK_BINS = ((0.35, "low (< 35 % of pixels)"), (0.55, "medium (35-55 %)"), (None, "high (>= 55 %)"))
#: ``brightness`` bins: mean value (0..255) of the ink pixels (cut points 140, 180).
BRIGHTNESS_BINS = ((140.0, "dark (mean < 140)"), (180.0, "medium (140-180)"), (None, "bright (mean >= 180)"))

EMBEDDING_DIM = 64
#: Thread count of every training and inference process (part of the determinism).
THREADS = 1


def folder_name(class_name: str) -> str:
    """A filesystem-safe folder for a class name: lower case, runs of other characters -> ``-``.

    >>> folder_name("T-shirt/top"), folder_name("Ankle boot")
    ('t-shirt-top', 'ankle-boot')
    """
    out = re.sub(r"[^a-z0-9]+", "-", class_name.lower()).strip("-")
    if not out:
        raise ValueError(f"class name {class_name!r} has no letter or digit for a folder name")
    return out


FASHION_FOLDERS = tuple(folder_name(c) for c in FASHION_CLASSES)


# --------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class FashionMNIST:
    """The four IDX arrays: uint8 images ``[N, 28, 28]`` and int64 labels ``[N]`` per split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_fashion(src: str | os.PathLike = FASHION_SRC) -> FashionMNIST:
    """Read and check the four IDX files in ``src``.

    Raises
    ------
    InputError
        A missing folder or file (naming the apt command), a bad IDX file, images that
        are not uint8 ``[N, 28, 28]``, labels that are not uint8 ``[N]`` in 0..9.
    """
    src = Path(src)
    arrays = {}
    for key, name in IDX_FILES.items():
        path = src / name
        if not path.is_file():
            raise InputError(path, f"missing: {APT_HINT}")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        img, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_name, lab_name = src / IDX_FILES[f"{split}_images"], src / IDX_FILES[f"{split}_labels"]
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[1:] != IMAGE_SIZE:
            raise InputError(img_name, f"expected uint8 images of shape [N, 28, 28], got {img.dtype} {list(img.shape)}")
        if lab.dtype != np.uint8 or lab.ndim != 1 or lab.shape[0] != img.shape[0]:
            raise InputError(lab_name, f"expected {img.shape[0]} uint8 labels, got {lab.dtype} {list(lab.shape)}")
        if lab.size and int(lab.max()) >= len(FASHION_CLASSES):
            raise InputError(lab_name, f"label {int(lab.max())} is not a class index 0..{len(FASHION_CLASSES) - 1}")
        arrays[f"{split}_labels"] = lab.astype(np.int64)
    return FashionMNIST(**arrays)


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` images of each class in file order (sorted): a fixed stratified subset."""
    keep = [np.flatnonzero(labels == k)[:n] for k in range(len(FASHION_CLASSES))]
    return np.sort(np.concatenate(keep))


def validation_split(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, val)`` index arrays (sorted): ``per_class`` images of each class drawn for validation.

    Per class, a permutation of its indices by ``np.random.default_rng(seed)`` (classes in
    label order); its first ``per_class`` entries are validation images.
    """
    rng = np.random.default_rng(seed)
    val = []
    for k in range(len(FASHION_CLASSES)):
        idx = np.flatnonzero(labels == k)
        if len(idx) <= per_class:
            raise ValueError(f"class {k} has {len(idx)} training images, cannot hold out {per_class}")
        val.append(rng.permutation(idx)[:per_class])
    val_idx = np.sort(np.concatenate(val))
    fit_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return fit_idx, val_idx


def normalisation(images: np.ndarray) -> tuple[float, float]:
    """Pixel mean and population std of ``images / 255`` (float64)."""
    px = images.astype(np.float64) / 255.0
    return float(px.mean()), float(px.std())


def to_tensor(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 1, 28, 28]``, bit for bit what
    :func:`graceful_core.transforms.preprocess` gives for the same pixels as an "L" image:
    ``(float32(p) / float32(255) - float32(mean)) / float32(std)``."""
    x = images.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(x[:, None], dtype=np.float32))


def model_info(name: str, mean: float, std: float):
    from graceful_core.types import ModelInfo

    return ModelInfo(name=name, input_size=(1, *IMAGE_SIZE), mean=(mean,), std=(std,), classes=FASHION_CLASSES)


# --------------------------------------------------------------------------- images and manifest
def write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> int:
    """Write ``root/<folder>/<index:05d>.png`` for every ``index`` and ``root/classes.json``; returns the count.

    ``root`` is replaced. Pixels are written unchanged as 8-bit grayscale ("L") PNGs.
    """
    from PIL import Image

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for folder in FASHION_FOLDERS:
        (root / folder).mkdir()
    for i in index:
        i = int(i)
        Image.fromarray(images[i], mode="L").save(root / FASHION_FOLDERS[int(labels[i])] / f"{i:05d}.png")
    (root / CLASSES_FILE).write_text(json.dumps(dict(zip(FASHION_FOLDERS, FASHION_CLASSES)), indent=1) + "\n")
    return len(index)


def sample_id(index: int, label: int) -> str:
    """The folder dataset's id of an image: ``<folder>/<index:05d>.png``."""
    return f"{FASHION_FOLDERS[label]}/{index:05d}.png"


def _bin(values: np.ndarray, bins) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    lower = -np.inf
    for cut, name in bins:
        upper = np.inf if cut is None else cut
        out[(values >= lower) & (values < upper)] = name
        lower = upper
    return out


def pixel_metadata(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image, from the pixels only: ink share, mean ink brightness and their named bins.

    ``ink = p > INK_THRESHOLD``; ``coverage = mean(ink)`` over the 784 pixels;
    ``brightness = mean(p | ink)`` (0 when no pixel is ink). Bins: :data:`INK_BINS`,
    :data:`BRIGHTNESS_BINS` (lower bound inclusive).
    """
    ink = images > INK_THRESHOLD
    n_ink = ink.sum(axis=(1, 2))
    coverage = n_ink / float(images.shape[1] * images.shape[2])
    total = np.where(ink, images, 0).sum(axis=(1, 2), dtype=np.int64)
    brightness = np.divide(total, n_ink, out=np.zeros(len(images)), where=n_ink > 0)
    return {
        "coverage": coverage,
        "brightness_value": brightness,
        "ink_coverage": _bin(coverage, INK_BINS),
        "brightness": _bin(brightness, BRIGHTNESS_BINS),
    }


def write_manifest(path: Path, folder: str, images: np.ndarray, labels: np.ndarray) -> None:
    """The test manifest: ``id`` (as in the folder dataset), ``path`` (``<folder>/<id>``), ``label``
    (class name), ``ink_coverage``, ``brightness`` (bins of :func:`pixel_metadata`)."""
    import pandas as pd

    meta = pixel_metadata(images)
    ids = [sample_id(i, int(y)) for i, y in enumerate(labels)]
    df = pd.DataFrame(
        {
            "id": ids,
            "path": [f"{folder}/{i}" for i in ids],
            "label": [FASHION_CLASSES[int(y)] for y in labels],
            "ink_coverage": meta["ink_coverage"],
            "brightness": meta["brightness"],
        }
    )
    df.to_csv(path, index=False, lineterminator="\n")


# --------------------------------------------------------------------------- training runs
@dataclass(frozen=True)
class Run:
    """One training run: a pure function of its fields, the data and its old model's run.

    ``data`` is ``"fit"`` (the training images minus the validation split) or ``"full"``
    (all training images); ``train`` holds :func:`~graceful_core.training.trainer.train_model`
    keyword arguments (``method``, ``epochs``, ``seed``, ``lam``, ...); ``old`` names the run
    whose model is the old model (distillation logits, or the frozen head for BCT); ``init``
    names the run whose weights the training starts from (a warm start, same architecture)
    instead of a random initialisation; ``refs`` names the reference runs of ELODI (the new
    model is held to the mean of their logits).
    """

    name: str
    arch: str
    data: str
    train: dict = field(default_factory=dict)
    old: str | None = None
    init: str | None = None
    refs: tuple[str, ...] = ()

    def depends_on(self) -> tuple[str, ...]:
        """The runs that must be trained before this one (its old model, its initial weights, its references)."""
        return tuple(dict.fromkeys(n for n in (self.old, self.init, *self.refs) if n is not None))

    def config(self) -> dict:
        return {"arch": self.arch, "data": self.data, "train": dict(sorted(self.train.items()))}


def run_keys(runs: dict[str, Run], data_keys: dict[str, str], fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Cache key of every run: SHA-256 of its config, its data's key, its old run's key (and its initial
    weights' run's key, for a warm start) and torch's version. ``fixed``: runs whose weights are given
    (not trained) with the key of those weights (:func:`weights_key`)."""
    from graceful_core.cache import make_key

    keys: dict[str, str] = dict(fixed or {})

    def key(name: str) -> str:
        if name not in keys:
            r = runs[name]
            old = key(r.old) if r.old else ""
            init = ("init", key(r.init)) if r.init else ()  # absent for the other runs: their keys stay
            refs = ("refs", *(key(n) for n in r.refs)) if r.refs else ()
            keys[name] = make_key(
                "fashion-run-v1",
                torch.__version__,
                json.dumps(r.config(), sort_keys=True),
                data_keys[r.data],
                old,
                *init,
                *refs,
            )
        return keys[name]

    for n in runs:
        key(n)
    return keys


def data_key(images: np.ndarray, labels: np.ndarray, index: np.ndarray, mean: float, std: float) -> str:
    """SHA-256 of the training pixels, labels and preprocessing of one index set."""
    h = hashlib.sha256(b"fashion-data-v1")
    h.update(np.ascontiguousarray(images[index]).tobytes())
    h.update(np.ascontiguousarray(labels[index], dtype="<i8").tobytes())
    h.update(repr((float(mean), float(std))).encode())
    return h.hexdigest()


def weights_key(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes (sorted by name): the key of given weights."""
    h = hashlib.sha256(b"fashion-weights-v1")
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def weights_path(cache: Path, name: str, key: str) -> Path:
    return cache / f"{name}-{key[:16]}.pt"


def load_weights(arch: str, path: Path) -> torch.nn.Module:
    """A model of ``arch`` with the state dict saved at ``path`` (``weights_only=True``), eval mode."""
    from graceful_core.training.architectures import build_model

    model = build_model(arch, num_classes=len(FASHION_CLASSES), embedding_dim=EMBEDDING_DIM)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


_WORKER_DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _train_arrays(src: str) -> tuple[np.ndarray, np.ndarray]:
    if src not in _WORKER_DATA:
        d = load_fashion(src)
        _WORKER_DATA.clear()
        _WORKER_DATA[src] = (d.train_images, d.train_labels)
    return _WORKER_DATA[src]


def train_run(task: dict) -> dict:
    """Train one run in this process (one thread, deterministic) and save its state dict.

    ``task``: ``src`` (IDX folder), ``index`` (training indices), ``mean``, ``std``,
    ``arch``, ``train`` (keyword arguments), ``old_arch`` / ``old_path`` (or None),
    ``init_path`` (weights to start from, same architecture; absent or None: random
    initialisation), ``path`` (where the weights go).
    """
    from graceful_core.training.trainer import train_model

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    images, labels = _train_arrays(task["src"])
    idx = task["index"]
    X = to_tensor(images[idx], task["mean"], task["std"])
    y = torch.from_numpy(labels[idx])
    kw = dict(task["train"])
    if task["old_path"] is not None:
        kw["old_model"] = load_weights(task["old_arch"], Path(task["old_path"]))
    if task.get("init_path") is not None:
        kw["init_from"] = torch.load(task["init_path"], map_location="cpu", weights_only=True)
    if task.get("ref_paths"):
        kw["reference_models"] = [
            load_weights(a, Path(q)) for a, q in zip(task["ref_archs"], task["ref_paths"], strict=True)
        ]
    model = train_model(
        task["arch"],
        X,
        y,
        num_classes=len(FASHION_CLASSES),
        embedding_dim=None if kw.get("method") == "bct" else EMBEDDING_DIM,
        **kw,
    )
    path = Path(task["path"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return {"seconds": time.perf_counter() - t0}


#: Relative cost of an epoch per image, for the order of the runs (the most expensive first).
_ARCH_COST = {"large-cnn-v3-28": 2.5, "large-cnn-28": 1.0, "small-cnn-28": 0.25, "edge-cnn-28": 0.2}


def _cost(r: Run) -> float:
    return _ARCH_COST.get(r.arch, 1.0) * r.train.get("epochs", 1) * (1 if r.data == "fit" else 1.2)


def run_all(
    runs: dict[str, Run],
    keys: dict[str, str],
    cache: Path,
    make_task: Callable[[Run], dict],
    jobs: int,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Train every run whose weights are not cached, old models first, ``jobs`` processes at a time.

    Returns the weights file of every run. Each training is deterministic by itself, so
    the order and the number of processes do not change any result.
    """
    cache.mkdir(parents=True, exist_ok=True)
    paths = {n: weights_path(cache, runs[n].name, keys[n]) for n in runs}
    todo = {n for n in runs if not paths[n].is_file()}
    for n in sorted(set(runs) - todo):
        log(f"  {n}: cached ({paths[n].name})")
    running: dict[Future, str] = {}
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        while todo or running:
            waiting = todo | set(running.values())
            ready = sorted(
                (n for n in todo if not waiting.intersection(runs[n].depends_on())),
                key=lambda n: (not any(n in runs[m].depends_on() for m in todo), -_cost(runs[n]), n),
            )
            if not ready and not running:
                raise RuntimeError(f"runs waiting for an old model that is never trained: {sorted(todo)}")
            for n in ready:
                task = make_task(runs[n]) | {"path": str(paths[n])}
                if runs[n].old is not None:
                    task |= {"old_arch": runs[runs[n].old].arch, "old_path": str(paths[runs[n].old])}
                else:
                    task |= {"old_arch": None, "old_path": None}
                task["init_path"] = None if runs[n].init is None else str(paths[runs[n].init])
                task["ref_paths"] = [str(paths[m]) for m in runs[n].refs]
                task["ref_archs"] = [runs[m].arch for m in runs[n].refs]
                todo.discard(n)
                log(f"  {n}: queued ({runs[n].arch}, {runs[n].data}, {runs[n].train})")
                if pool is None:
                    info = train_run(task)
                    log(f"  {n}: done in {info['seconds']:.0f} s")
                else:
                    running[pool.submit(train_run, task)] = n
            if running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    n = running.pop(f)
                    log(f"  {n}: done in {f.result()['seconds']:.0f} s")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return paths


@torch.no_grad()
def outputs(model: torch.nn.Module, X: torch.Tensor, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """``(logits [N, K], embeddings [N, D])`` of a model in eval mode."""
    model.eval()
    lg, em = [], []
    for s in range(0, X.shape[0], batch):
        e = model.embed(X[s : s + batch])
        em.append(e)
        lg.append(model.head(e))
    return torch.cat(lg).numpy(), torch.cat(em).numpy()


# --------------------------------------------------------------------------- the configuration
@dataclass(frozen=True)
class PCSetting:
    """new-pc's training objective: focal distillation (Yan et al. 2021), ``lam * (alpha + beta * 1[old right]) *
    KL`` at ``temperature`` (times T²), or logit difference inhibition toward old (``method="ldi"``, Zhao et al. 2022:
    ``lam * mean(max(|z_new - z_old| - margin, 0)^p)``)."""

    alpha: float
    beta: float
    lam: float
    method: str = "focal-distillation"
    temperature: float = 1.0
    margin: float = 0.5
    p: float = 2.0

    @property
    def paper(self) -> bool:
        """The paper's alpha = 1, beta = 5 at temperature 1 (only lambda varies)."""
        return self.method == "focal-distillation" and (self.alpha, self.beta, self.temperature) == (1.0, 5.0, 1.0)

    @property
    def label(self) -> str:
        """Key of the validation run (the paper's weights keep the short form)."""
        if self.method == "ldi":
            return f"new-pc ldi margin={self.margin:g} p={self.p:g} lam={self.lam:g}"
        t = "" if self.temperature == 1.0 else f" T={self.temperature:g}"
        return (
            f"new-pc lam={self.lam:g}"
            if self.paper
            else f"new-pc alpha={self.alpha:g} beta={self.beta:g}{t} lam={self.lam:g}"
        )

    @property
    def run_name(self) -> str:
        if self.method == "ldi":
            return f"new-pc-ldi-m{self.margin:g}p{self.p:g}-lam{self.lam:g}"
        t = "" if self.temperature == 1.0 else f"-T{self.temperature:g}"
        return f"new-pc-lam{self.lam:g}" if self.paper else f"new-pc-a{self.alpha:g}b{self.beta:g}{t}-lam{self.lam:g}"

    def train(self) -> dict:
        """``train_model`` keyword arguments (the keys of temperature 1 focal distillation are those of old builds, so
        their cache keys stay)."""
        if self.method == "ldi":
            return {"method": "ldi", "margin": self.margin, "p": self.p, "lam": self.lam}
        if self.method != "focal-distillation":
            raise ValueError(f"new-pc trains focal distillation or ldi, not {self.method!r}")
        t = {} if self.temperature == 1.0 else {"temperature": self.temperature}
        return {"method": "focal-distillation", "alpha": self.alpha, "beta": self.beta, "lam": self.lam} | t


@dataclass(frozen=True)
class FashionConfig:
    """Sizes, budgets and grids of the build (README: how each was chosen)."""

    val_per_class: int = 1000
    app_train_per_class: int = 200
    split_seed: int = 0
    batch_size: int = 64
    old_arch: str = "small-cnn-28"
    new_arch: str = "large-cnn-28"
    v3_arch: str = "large-cnn-v3-28"
    edge_arch: str = "edge-cnn-28"
    epochs_old: int = 2
    epochs_new: int = 12
    epochs_v3: int = 12
    seed_old: int = 1
    seed_old_reseed: int = 2
    seed_new: int = 3
    seed_v3: int = 4
    seed_edge: int = 5
    #: new-pc's training: the trained single-model remedy scripts/experiment_field.py chose on this validation
    #: split over 3 seeds (results/mitigation-fashion.md: focal distillation at the PCT reference setting, T 100,
    #: alpha 1, beta 5, lambda 0.01); the build keeps the rule below for a grid of more than one.
    pc_grid: tuple[PCSetting, ...] = (PCSetting(1.0, 5.0, 0.01, temperature=100.0),)
    #: new-pc may cost at most this much validation error over new (absolute, e.g. 0.005 = half a point).
    pc_max_error_increase: float = 0.005
    #: BCT (Shen et al. 2020): the smallest lambda whose validation cross-test beats old's self-test.
    bct_lambdas: tuple[float, ...] = (1.0, 2.0)
    edge_bct_lambda: float = 1.0
    #: new-ft, the same-architecture update (retrained on more data, the most common kind): old's
    #: architecture started from old's weights and trained further on all training images, with a new
    #: shuffling seed and half the from-scratch learning rate (fixed before any run; nothing selected).
    epochs_ft: int = 4
    seed_ft: int = 6
    lr_ft: float = 1e-3


QUICK = FashionConfig(
    val_per_class=4,
    app_train_per_class=2,
    epochs_old=1,
    epochs_new=1,
    epochs_v3=1,
    epochs_ft=1,
    pc_grid=(PCSetting(1.0, 5.0, 0.5), PCSetting(0.0, 6.0, 1.0)),
    bct_lambdas=(1.0, 2.0),
)


def selection_runs(cfg: FashionConfig, bct_lambdas: tuple[float, ...] | None = None) -> dict[str, Run]:
    """The validation runs (trained on "fit", evaluated on the validation split); BCT for ``bct_lambdas``
    (default: all of ``cfg.bct_lambdas``)."""
    bs = cfg.batch_size
    runs = {
        "old": Run("old", cfg.old_arch, "fit", {"epochs": cfg.epochs_old, "seed": cfg.seed_old, "batch_size": bs}),
        "new": Run("new", cfg.new_arch, "fit", {"epochs": cfg.epochs_new, "seed": cfg.seed_new, "batch_size": bs}),
    }
    for pc in cfg.pc_grid:
        runs[pc.label] = Run(
            pc.run_name,
            cfg.new_arch,
            "fit",
            {"epochs": cfg.epochs_new, "seed": cfg.seed_new, "batch_size": bs} | pc.train(),
            old="old",
        )
    for lam in cfg.bct_lambdas if bct_lambdas is None else bct_lambdas:
        runs[f"new-bct lam={lam:g}"] = Run(
            f"new-bct-lam{lam:g}",
            cfg.new_arch,
            "fit",
            {"epochs": cfg.epochs_new, "seed": cfg.seed_new, "batch_size": bs, "method": "bct", "lam": lam},
            old="old",
        )
    return runs


def final_runs(cfg: FashionConfig, pc: PCSetting, bct_lambda: float) -> dict[str, Run]:
    """The shipped models, trained on all training images."""
    bs = cfg.batch_size
    new = {"epochs": cfg.epochs_new, "seed": cfg.seed_new, "batch_size": bs}
    return {
        "old": Run("old", cfg.old_arch, "full", {"epochs": cfg.epochs_old, "seed": cfg.seed_old, "batch_size": bs}),
        "old-reseed": Run(
            "old-reseed",
            cfg.old_arch,
            "full",
            {"epochs": cfg.epochs_old, "seed": cfg.seed_old_reseed, "batch_size": bs},
        ),
        "new": Run("new", cfg.new_arch, "full", new),
        "new-pc": Run("new-pc", cfg.new_arch, "full", new | pc.train(), old="old"),
        "new-bct": Run("new-bct", cfg.new_arch, "full", new | {"method": "bct", "lam": bct_lambda}, old="old"),
        "v3": Run("v3", cfg.v3_arch, "full", {"epochs": cfg.epochs_v3, "seed": cfg.seed_v3, "batch_size": bs}),
        "edge": Run(
            "edge",
            cfg.edge_arch,
            "full",
            {
                "epochs": cfg.epochs_new,
                "seed": cfg.seed_edge,
                "batch_size": bs,
                "method": "bct",
                "lam": cfg.edge_bct_lambda,
            },
            old="v3",
        ),
        "new-ft": Run(
            "new-ft",
            cfg.old_arch,
            "full",
            {"epochs": cfg.epochs_ft, "seed": cfg.seed_ft, "batch_size": bs, "lr": cfg.lr_ft},
            init="old",
        ),
    }


# --------------------------------------------------------------------------- metrics (graceful_core's)
def pair_metrics(y: np.ndarray, old_logits, old_emb, new_logits, new_emb) -> dict:
    """Error rates, flips, BTC and cross-test Hit@1 of one old/new pair, by graceful_core's functions."""
    from graceful_core.metrics import backward_trust_compatibility, error_rate, negative_flip_rate
    from graceful_core.metrics.confidence import argmax_lowest
    from graceful_core.metrics.counts import FlipCounts
    from graceful_core.metrics.retrieval import cross_test

    o, n = argmax_lowest(old_logits), argmax_lowest(new_logits)
    counts = FlipCounts.from_predictions(y, o, n, len(FASHION_CLASSES))
    ct = cross_test(old_emb, new_emb, y, compute_map=False)
    t = ct.scores["top1"]
    return {
        "old_error_rate": error_rate(y, o),
        "error_rate": error_rate(y, n),
        "negative_flips": counts.negative_flips,
        "positive_flips": counts.positive_flips,
        "negative_flip_rate": negative_flip_rate(y, o, n),
        "backward_trust_compatibility": backward_trust_compatibility(y, o, n),
        "cross_test_hit1": t["new_old"],
        "old_self_test_hit1": t["old_old"],
        "self_test_hit1": t["new_new"],
        "compatible": bool(ct.compatible),
    }


def choose_pc(cfg: FashionConfig, val: dict[str, dict]) -> tuple[PCSetting, str]:
    """The setting with the fewest validation negative flips among those whose validation error is at most
    ``new``'s + ``pc_max_error_increase`` (ties: the earlier in the grid); else the one with the lowest error."""
    base = val["new"]["error_rate"]
    rule = (
        f"fewest validation negative flips among the grid whose validation error is at most new's + "
        f"{cfg.pc_max_error_increase * 100:g} points"
    )
    ok = [pc for pc in cfg.pc_grid if val[pc.label]["error_rate"] <= base + cfg.pc_max_error_increase]
    if not ok:
        return min(
            cfg.pc_grid, key=lambda pc: val[pc.label]["error_rate"]
        ), rule + " (none qualified: the lowest error)"
    return min(ok, key=lambda pc: val[pc.label]["negative_flips"]), rule


def choose_bct_lambda(cfg: FashionConfig, val: dict[str, dict]) -> tuple[float | None, str]:
    """The first lambda of ``cfg.bct_lambdas`` (tried in order) whose validation cross-test Hit@1 exceeds
    old's self-test; None when none of those tried so far is (the build then tries the next one)."""
    rule = (
        f"the first lambda of {list(cfg.bct_lambdas)}, tried in this order, whose model is compatible with old "
        "on the validation split (cross-test Hit@1 above old's self-test)"
    )
    for lam in cfg.bct_lambdas:
        r = val.get(f"new-bct lam={lam:g}")
        if r is not None and r["compatible"]:
            return lam, rule
    return None, rule


# --------------------------------------------------------------------------- the build
def _round(x):
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    return x


def build_fashion(
    out: Path,
    src: Path,
    cache: Path,
    cfg: FashionConfig = FashionConfig(),
    *,
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> dict:
    """Write the whole Fashion-MNIST sample under ``out/fashion`` (module docstring); returns the summary."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    data = load_fashion(src)
    root = out / "fashion"
    root.mkdir(parents=True, exist_ok=True)
    n_test = write_class_folders(root / "test", data.test_images, data.test_labels, np.arange(len(data.test_labels)))
    write_manifest(root / "test.csv", "test", data.test_images, data.test_labels)
    app_idx = first_per_class(data.train_labels, cfg.app_train_per_class)
    write_class_folders(root / "train", data.train_images, data.train_labels, app_idx)
    log(f"fashion: {n_test} test PNGs, {len(app_idx)} training PNGs, manifest ({time.perf_counter() - t0:.1f} s)")

    mean, std = normalisation(data.train_images)
    fit_idx, val_idx = validation_split(data.train_labels, cfg.val_per_class, cfg.split_seed)
    index = {"fit": fit_idx, "full": np.arange(len(data.train_labels))}
    dkeys = {k: data_key(data.train_images, data.train_labels, v, mean, std) for k, v in index.items()}

    def make_task(r: Run) -> dict:
        return {"src": str(src), "index": index[r.data], "mean": mean, "std": std, "arch": r.arch, "train": r.train}

    # 1. Selection on the validation split; the final old, old-reseed, new, v3 and edge do not depend on it.
    #    BCT lambdas are tried in order, the next one only if the previous was not compatible.
    X_val = to_tensor(data.train_images[val_idx], mean, std)
    y_val = data.train_labels[val_idx]
    fin_pre = final_runs(cfg, cfg.pc_grid[0], cfg.bct_lambdas[0])
    independent = {k: fin_pre[k] for k in ("old", "old-reseed", "new", "v3", "edge")}
    val: dict[str, dict] = {}
    val_out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for tried in range(1, len(cfg.bct_lambdas) + 1):
        sel = selection_runs(cfg, cfg.bct_lambdas[:tried])
        combined = {f"sel:{k}": replace(r, old=None if r.old is None else f"sel:{r.old}") for k, r in sel.items()}
        if tried == 1:
            combined |= {
                f"fin:{k}": replace(r, old=None if r.old is None else f"fin:{r.old}") for k, r in independent.items()
            }
        log(
            f"fashion: {len(combined)} training runs (validation runs"
            f"{' + independent final models' if tried == 1 else ''}), {jobs} processes"
        )
        paths = run_all(combined, run_keys(combined, dkeys), cache, make_task, jobs, log)
        for k in sel:
            if k not in val_out:
                val_out[k] = outputs(load_weights(sel[k].arch, paths[f"sel:{k}"]), X_val)
        val = {k: pair_metrics(y_val, *val_out["old"], *val_out[k]) for k in sel if k != "old"}
        bct_lambda, bct_rule = choose_bct_lambda(cfg, val)
        if bct_lambda is not None:
            break
    if bct_lambda is None:
        bct_lambda = cfg.bct_lambdas[-1]
        bct_rule += f" (none was: the last, {bct_lambda:g})"
    pc, pc_rule = choose_pc(cfg, val)
    log(f"fashion: chose new-pc {pc}, new-bct lambda {bct_lambda:g} on the validation split")

    # 2. The mitigated final models.
    fin = final_runs(cfg, pc, bct_lambda)
    fin_keys = run_keys(fin, dkeys)
    fin_paths = run_all({k: fin[k] for k in fin}, fin_keys, cache, make_task, jobs, log)

    # 3. Export, predictions tables, numbers.
    models_dir = root / "models"
    export_models(models_dir, fin, fin_paths, mean, std)
    selection = {
        "validation": {
            "per_class": cfg.val_per_class,
            "images": len(val_idx),
            "seed": cfg.split_seed,
            "fit_images": len(fit_idx),
        },
        "runs": {k: {"arch": r.arch, "train": r.train, **({"old": r.old} if r.old else {})} for k, r in sel.items()},
        "validation_metrics_vs_old": _round(val),
        "old_validation_error_rate": _round(val["new"]["old_error_rate"]),
        "new_pc": {"rule": pc_rule, **asdict(pc)},
        "new_bct": {"rule": bct_rule, "lambda": bct_lambda},
        "new_ft": new_ft_selection(cfg),
    }
    (models_dir / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    summary = write_predictions(root, fin, fin_paths, to_tensor(data.test_images, mean, std), mean, std, cfg, log)
    summary["selection"] = {"new_pc": asdict(pc), "new_bct_lambda": bct_lambda}
    (models_dir / "summary.json").write_text(json.dumps(_round(summary), indent=2) + "\n")
    log(f"fashion: done in {time.perf_counter() - t0:.1f} s")
    return summary


def new_ft_selection(cfg: FashionConfig) -> dict:
    """``selection.json``'s entry of new-ft: its setting was fixed, not chosen (nothing to validate)."""
    return {
        "rule": "fixed before any run (no selection): old's architecture and weights, trained further on all "
        "training images with a new seed and half the from-scratch learning rate",
        "init": "old",
        "epochs": cfg.epochs_ft,
        "seed": cfg.seed_ft,
        "lr": cfg.lr_ft,
    }


def update_fashion_models(
    out: Path,
    src: Path,
    cache: Path,
    names: list[str],
    cfg: FashionConfig = FashionConfig(),
    *,
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> dict:
    """(Re)build only the final models ``names`` of an existing sample under ``out/fashion``, in place.

    Trains what is not cached (the models and the runs they depend on, keyed as in the full build; the
    new-pc and new-bct settings are those of the existing ``models/selection.json``), then writes each
    model's file, its predictions table, its ``summary.json`` entry and the pairs of :data:`PAIRS` that
    involve it. Every run it depends on but does not rebuild must give exactly the weights of the
    shipped file (checked; else nothing is written): the update then equals what the full build writes.
    """
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import write_predictions_table
    from graceful_core.models.loader import load_model
    from graceful_core.training.export import save_torchscript

    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    root = out / "fashion"
    models_dir, pred_dir = root / "models", root / "predictions"
    sel_path, sum_path = models_dir / "selection.json", models_dir / "summary.json"
    for p in (sel_path, sum_path, root / "test"):
        if not p.exists():
            raise InputError(p, "missing: build the whole sample first (build_sample_data.py --only fashion)")
    selection, summary = json.loads(sel_path.read_text()), json.loads(sum_path.read_text())
    pc = PCSetting(**{k: v for k, v in selection["new_pc"].items() if k in PCSetting.__dataclass_fields__})
    fin = final_runs(cfg, pc, float(selection["new_bct"]["lambda"]))
    unknown = sorted(set(names) - set(fin))
    if unknown:
        raise InputError(None, f"unknown model(s) {', '.join(unknown)}; the final models are {', '.join(fin)}")
    needed: list[str] = []

    def add(n: str) -> None:
        for d in fin[n].depends_on():
            add(d)
        if n not in needed:
            needed.append(n)

    for n in names:
        add(n)
    data = load_fashion(src)
    mean, std = normalisation(data.train_images)
    if (round(mean, 6), round(std, 6)) != (round(summary["mean"], 6), round(summary["std"], 6)):
        raise InputError(
            src,
            f"pixel mean/std {mean:.6f}/{std:.6f} differ from the sample's "
            f"{summary['mean']}/{summary['std']}: not the same training images",
        )
    fit_idx, _ = validation_split(data.train_labels, cfg.val_per_class, cfg.split_seed)
    index = {"fit": fit_idx, "full": np.arange(len(data.train_labels))}
    dkeys = {k: data_key(data.train_images, data.train_labels, v, mean, std) for k, v in index.items()}

    def make_task(r: Run) -> dict:
        return {"src": str(src), "index": index[r.data], "mean": mean, "std": std, "arch": r.arch, "train": r.train}

    # A run it depends on but does not rebuild is the shipped file's weights, keyed by their content: the
    # update starts from exactly the model users have, even where retraining it would not give it bit for bit
    # (other CPU kernels).
    fixed: dict[str, str] = {}
    for n in needed:
        if n in names:
            continue
        shipped = model_file(models_dir, n)
        if shipped.suffix != ".pt":
            raise InputError(shipped, "only a TorchScript model can be read back as the weights of its run")
        state = dict(torch.jit.load(str(shipped), map_location="cpu").state_dict())
        load_weights(fin[n].arch, _save_weights(state, cache, n, fixed.setdefault(n, weights_key(state))))
        log(f"fashion: {n} = the weights of the shipped {shipped.name} (key {fixed[n][:16]})")
    runs = {n: fin[n] for n in needed if n not in fixed}
    runs_all = {n: fin[n] for n in needed}
    log(f"fashion: updating {', '.join(names)} ({len(runs)} training runs, {jobs} processes)")
    keys = run_keys(runs_all, dkeys, fixed)
    paths = {n: weights_path(cache, n, fixed[n]) for n in fixed}
    paths |= run_all(runs_all, keys, cache, make_task, jobs, log)
    dataset = load_dataset(root / "test")
    for n in names:
        path = model_file(models_dir, n)
        if path.suffix != ".pt":
            raise InputError(path, "updating in place is written for the TorchScript models only")
        # a TorchScript archive's root folder is its file's stem: write the final name in a folder beside it
        tmp_dir = Path(tempfile.mkdtemp(prefix=".update-", dir=models_dir))
        try:
            save_torchscript(load_weights(fin[n].arch, paths[n]), tmp_dir / path.name, model_info(n, mean, std))
            os.replace(tmp_dir / path.name, path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        preds = predict(load_model(path), dataset, use_cache=False)
        write_predictions_table(preds, pred_dir / f"{n}.parquet")
        summary["models"][n] = model_summary(fin[n], preds)
    summary["config"] = asdict(cfg)
    for a, b in PAIRS:
        if a in names or b in names:
            summary["pairs"][f"{a} -> {b}"] = pair_summary(pred_dir, a, b)
            log(f"  {a} -> {b}: {summary['pairs'][f'{a} -> {b}']}")
    if "new-ft" in names:
        selection["new_ft"] = new_ft_selection(cfg)
        sel_path.write_text(json.dumps(selection, indent=2) + "\n")
    sum_path.write_text(json.dumps(_round(summary), indent=2) + "\n")
    return summary


def _save_weights(state: dict[str, torch.Tensor], cache: Path, name: str, key: str) -> Path:
    """Write ``state`` at the cache path of run ``name`` with ``key`` (atomically); returns the path."""
    cache.mkdir(parents=True, exist_ok=True)
    path = weights_path(cache, name, key)
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({k: v.detach().clone() for k, v in state.items()}, tmp)
        os.replace(tmp, path)
    return path


#: File format of each shipped model (TorchScript when not named): one file per model, so that
#: ``models/new.*`` names exactly one file, and every format graceful reads is in the sample.
FORMATS = {"v3": ".onnx", "edge": ".pt2"}


def model_file(models_dir: Path, name: str) -> Path:
    """The shipped file of model ``name`` (:data:`FORMATS`)."""
    return models_dir / f"{name}{FORMATS.get(name, '.pt')}"


def export_models(models_dir: Path, fin: dict[str, Run], paths: dict[str, Path], mean: float, std: float) -> None:
    """Write every final model in its format (:data:`FORMATS`), each with its ``graceful.json``."""
    from graceful_core.training.export import export_onnx, save_pt2, save_torchscript

    if models_dir.exists():
        shutil.rmtree(models_dir)
    models_dir.mkdir(parents=True)
    for name, r in fin.items():
        model = load_weights(r.arch, paths[name])
        path, info = model_file(models_dir, name), model_info(name, mean, std)
        if path.suffix == ".onnx":
            export_onnx(model, path, info)
        elif path.suffix == ".pt2":
            save_pt2(model, info, path)
        else:
            save_torchscript(model, path, info)  # archive folder = file stem


PAIRS = (
    ("old", "new"),
    ("old", "new-pc"),
    ("old", "new-bct"),
    ("old", "old-reseed"),
    ("new", "v3"),
    ("v3", "edge"),
    ("old", "new-ft"),
)


def write_predictions(
    root: Path,
    fin: dict[str, Run],
    paths: dict[str, Path],
    X_test: torch.Tensor,
    mean: float,
    std: float,
    cfg: FashionConfig,
    log: Callable[[str], None] = print,
) -> dict:
    """``predictions/<name>.parquet`` for every model on ``test/`` (graceful's predict), the check of each
    exported format against its PyTorch module on ``X_test`` (the IDX test images, :func:`to_tensor`, in file
    order), and the test numbers of :data:`PAIRS` (graceful's compare on the tables)."""
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import write_predictions_table
    from graceful_core.models.loader import load_model

    pred_dir = root / "predictions"
    if pred_dir.exists():
        shutil.rmtree(pred_dir)
    pred_dir.mkdir(parents=True)
    dataset = load_dataset(root / "test")
    preds = {}
    for name in fin:
        preds[name] = predict(load_model(model_file(root / "models", name)), dataset, use_cache=False)
        write_predictions_table(preds[name], pred_dir / f"{name}.parquet")
    # every exported format gives the trained module's outputs (the module run here, in PyTorch, in eval mode),
    # on the same pixels: the table's rows are the folder's order, X_test the IDX file's (the id's index)
    X = X_test[[int(Path(sid).stem) for sid in dataset.ids]]
    for name in FORMATS:
        if name not in fin:
            continue
        logits, _ = outputs(load_weights(fin[name].arch, paths[name]), X)
        same = bool(np.array_equal(logits.argmax(1), preds[name].pred))
        diff = float(np.max(np.abs(logits - preds[name].scores)))
        log(
            f"fashion: {model_file(root / 'models', name).name} vs its PyTorch module on {len(dataset)} test images: "
            f"same predictions {same}, max |logit diff| {diff:.2e}"
        )
        if not same or diff > 1e-3:
            raise RuntimeError(f"{name}{FORMATS[name]} and its PyTorch module disagree on the test images")
    summary: dict = {
        "mean": mean,
        "std": std,
        "config": asdict(cfg),
        "test_images": len(dataset),
        "models": {},
        "pairs": {},
    }
    for name, r in fin.items():
        summary["models"][name] = model_summary(r, preds[name])
    for a, b in PAIRS:
        summary["pairs"][f"{a} -> {b}"] = pair_summary(pred_dir, a, b)
        log(f"  {a} -> {b}: {summary['pairs'][f'{a} -> {b}']}")
    return summary


def model_summary(r: Run, preds) -> dict:
    """``summary.json``'s entry of one final model: architecture, training, old / initial run, test accuracy."""
    return {
        "arch": r.arch,
        "train": r.train,
        **({"old": r.old} if r.old else {}),
        **({"init": r.init} if r.init else {}),
        "test_accuracy": float(np.mean(preds.pred == preds.labels)),
    }


def pair_summary(pred_dir: Path, a: str, b: str) -> dict:
    """``summary.json``'s numbers of the pair ``a -> b``: graceful's compare on the two predictions tables."""
    from graceful_core.comparing.sources import compare_sources

    rep = compare_sources(str(pred_dir / f"{a}.parquet"), str(pred_dir / f"{b}.parquet")).to_report()
    c = rep.get("compatibility") or {}
    return {
        "old_accuracy": rep["old"]["accuracy"],
        "new_accuracy": rep["new"]["accuracy"],
        "negative_flips": rep["n_negative_flips"],
        "positive_flips": rep["n_positive_flips"],
        "negative_flip_rate": rep["negative_flip_rate"],
        "backward_trust_compatibility": rep["backward_trust_compatibility"],
        "cross_test_top1_new_old": (c.get("top1") or {}).get("new_old"),
        "self_test_top1_old": (c.get("top1") or {}).get("old_old"),
        "self_test_top1_new": (c.get("top1") or {}).get("new_new"),
        "compatible": c.get("compatible"),
    }
