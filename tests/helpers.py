"""Builders and oracles shared by the tests: one definition each, imported, never copied.

- :func:`predictions`: a :class:`~graceful_core.types.Predictions` from plain lists.
- :func:`brute_force_hit1`: leave-one-out cosine Hit@1 from the full similarity matrix.
- :func:`assert_reports_equal`: two JSON reports equal key for key, floats to a tolerance.
- :func:`parse`: the tags and visible text of an HTML report.
- :func:`planted_tables`: two predictions tables with a planted regression slice.
- :func:`run_cli`: the command line's exit code and output, in this process or in a new one.
- :func:`fashion_flips_brute_force`: the Fashion sample's negative flips per class, from its committed tables.

The AppTest helpers (start the app, read a page) are in :mod:`tests.apptest`, the real-browser ones in
:mod:`tests.browser.harness`, the builders of hostile files in :mod:`tests.bad_inputs`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from graceful_core.types import Predictions

#: The repository's root (tests/ is one level below it).
ROOT = Path(__file__).resolve().parents[1]
#: The bundled samples' folder.
SAMPLE = ROOT / "sample_data"
#: The bundled digits pair (the small, fast one most tests compare): models, test images, committed tables.
DIGITS_OLD, DIGITS_NEW = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt"
DIGITS_TEST = SAMPLE / "digits" / "test"
DIGITS_OLD_CSV, DIGITS_NEW_CSV = SAMPLE / "predictions" / "old.csv", SAMPLE / "predictions" / "new.csv"
#: The bundled Fashion-MNIST sample (the app's default comparison) and its committed predictions tables.
FASHION = SAMPLE / "fashion"
FASHION_PREDS = FASHION / "predictions"
#: Skips a test (or, as ``pytestmark``, a module) that needs the Fashion sample's models and tables.
needs_fashion = pytest.mark.skipif(
    not all(
        f.is_file()
        for f in (
            FASHION / "models" / "old.pt",
            FASHION / "models" / "new.pt",
            FASHION_PREDS / "old.parquet",
            FASHION_PREDS / "new.parquet",
        )
    ),
    reason="the Fashion-MNIST sample's models or predictions are missing",
)


# --------------------------------------------------------------------------- builders
def predictions(
    ids: Sequence[Any],
    pred: Any = None,
    *,
    classes: Sequence[str],
    labels: Any = None,
    scores: Any = None,
    score_kind: str = "logits",
    embedding: Any = None,
    source: str = "x.csv",
    slices: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> Predictions:
    """A :class:`Predictions` from plain lists: ids as objects, class codes as int64.

    ``pred`` None takes each row's argmax of ``scores`` (the lower class on ties).
    ``score_kind`` applies only when there are ``scores``; ``slices`` becomes the
    ``extra["slices"]`` column.

    >>> p = predictions(["a", "b"], scores=[[0.1, 2.0], [3.0, 3.0]], classes=["x", "y"], labels=[1, 1])
    >>> p.pred.tolist(), p.score_kind, p.ids.dtype
    ([1, 0], 'logits', dtype('O'))
    """
    if pred is None:
        pred = np.argmax(np.asarray(scores), axis=1)
    more = dict(extra or {})
    if slices is not None:
        more["slices"] = np.asarray(slices, dtype=object)
    return Predictions(
        ids=np.asarray(ids, dtype=object),
        pred=np.asarray(pred, dtype=np.int64),
        classes=list(classes),
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        scores=scores,
        score_kind=None if scores is None else score_kind,
        embedding=embedding,
        source=source,
        extra=more,
    )


def planted_tables(
    folder: Path, *, n: int = 3000, seed: int = 1, effect: bool = True
) -> tuple[Path, Path, pd.DataFrame]:
    """An old table with ``site`` and ``camera`` and a new one (other row order); with ``effect``
    the new model flips 15 % of the old model's right answers at site "harbour" and 3 % elsewhere.

    Returns the two paths and the joined truth (site, camera, negative flip) for the reference.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"img{i:05d}" for i in range(n)])
    y = rng.integers(0, 5, n)
    site = rng.choice(SITES, n, p=[0.3, 0.25, 0.15, 0.15, 0.15])
    camera = rng.choice(["A", "B", "C"], n)
    old = np.where(rng.random(n) < 0.9, y, (y + 1) % 5)
    rate = np.where(site == "harbour", 0.15, 0.03) if effect else np.full(n, 0.04)
    new = np.where((old == y) & (rng.random(n) < rate), (y + 2) % 5, old)
    new = np.where((old != y) & (rng.random(n) < 0.5), y, new)
    old_path, new_path = folder / "old.csv", folder / "new.csv"
    pd.DataFrame({"id": ids, "label": y, "pred": old, "site": site, "camera": camera}).to_csv(old_path, index=False)
    pd.DataFrame({"id": ids, "label": y, "pred": new}).sample(frac=1, random_state=0).to_csv(new_path, index=False)
    truth = pd.DataFrame({"site": site, "camera": camera, "flip": (old == y) & (new != y)})
    return old_path, new_path, truth


#: The sites of :func:`planted_tables` ("harbour" is the planted slice).
SITES = ("north", "south", "harbour", "airport", "depot")


# --------------------------------------------------------------------------- the command line
def run_cli(
    *args: Any,
    cache: Path,
    env: Mapping[str, str] | None = None,
    in_process: bool = True,
    check: bool = False,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``python -m graceful_core *args`` from the repository root with ``cache`` as its disk cache.

    ``in_process`` (the default) calls :func:`graceful_core.cli.commands.main` in this process, as a fresh
    one would run it: the arguments as text, the cache and ``env`` set in ``os.environ`` and the working
    directory at the root for the call only, no model loaded before, output captured, Python's default
    warning filters (a new interpreter prints what pytest would otherwise collect). It spares a
    process start and the imports (seconds each on a busy machine). ``in_process=False`` starts the real
    ``python -m graceful_core``: for what only a process shows (the entry point, the exit status, the
    environment at import time).
    """
    argv = [str(a) for a in args]
    if not in_process:
        return subprocess.run(
            [sys.executable, "-m", "graceful_core", *argv],
            cwd=ROOT,
            env={**os.environ, **(env or {}), "GRACEFUL_CACHE_DIR": str(cache)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )
    from graceful_core.cli.commands import main
    from graceful_core.models.loader import clear_model_cache

    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    saved_env, saved_cwd, saved_argv0 = dict(os.environ), os.getcwd(), sys.argv[:1]
    os.environ.update({**(env or {}), "GRACEFUL_CACHE_DIR": str(cache)})
    os.chdir(ROOT)
    sys.argv[:1] = [str(ROOT / "graceful_core" / "__main__.py")]  # the name help texts use: python -m graceful_core
    clear_model_cache()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()  # a new interpreter's filters: deprecations only from __main__
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's usage errors and --help
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            out.flush()
            err.flush()
    finally:
        os.chdir(saved_cwd)
        sys.argv[:1] = saved_argv0
        os.environ.clear()
        os.environ.update(saved_env)
        clear_model_cache()
    result = subprocess.CompletedProcess(
        ["graceful", *argv], code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()
    )
    if check:
        result.check_returncode()
    return result


# --------------------------------------------------------------------------- oracles
def brute_force_hit1(
    query: np.ndarray, gallery: np.ndarray, labels: np.ndarray, block: int = 1000, *, grid: bool = False
) -> float:
    """Leave-one-out cosine Hit@1 from the full similarity matrix, in float64 row blocks.

    Query i's own gallery row is excluded; its nearest neighbour is the first maximum
    (ties: the lowest index, as ``docs/metrics.md``); only queries whose label occurs at
    least twice count (NaN when none does); a zero vector scores 0 against everything.
    ``grid``: the exact definition of :mod:`graceful_core.metrics.hit_at_1` (embeddings read as
    float32, cosines rounded to multiples of 2**-24 before the maximum), so results compare with ``==``.

    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> brute_force_hit1(x, x, np.array([0, 0, 1, 1])), brute_force_hit1(x, x, np.array([0, 1, 0, 1]))
    (1.0, 0.0)
    """

    def unit(a: Any) -> np.ndarray:
        a = np.asarray(a, np.float32 if grid else np.float64).astype(np.float64)
        n = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(n > 0, n, 1.0)

    q, g = unit(query), unit(gallery)
    labels = np.asarray(labels)
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    valid = counts[codes] >= 2
    if not valid.any():
        return math.nan
    hit = np.zeros(len(q), dtype=bool)
    for s in range(0, len(q), block):
        sim = q[s : s + block] @ g.T
        if grid:
            sim = np.round(sim * 2.0**24)
        rows = np.arange(sim.shape[0])
        sim[rows, s + rows] = -np.inf
        hit[s : s + block] = labels[np.argmax(sim, axis=1)] == labels[s : s + block]
    return float(hit[valid].mean())


def assert_reports_equal(a: Any, b: Any, path: str = "", *, rel: float = 1e-6, abs: float = 1e-9) -> None:
    """Equal keys and values, recursively; floats to ``rel``/``abs`` (two programs summing in different orders)."""
    if isinstance(a, dict):
        assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
        for k in a:
            assert_reports_equal(a[k], b[k], f"{path}.{k}", rel=rel, abs=abs)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_reports_equal(x, y, f"{path}[{i}]", rel=rel, abs=abs)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rel, abs=abs), path
    else:
        assert a == b, path


def fashion_flips_brute_force() -> dict:
    """Negative flips of the Fashion sample's old → new, by brute force from the committed tables (joined on id).

    Returns ``n`` (images), ``neg`` (negative flips), ``per_class`` (class -> (negative flips, support)) and
    ``order`` (classes, most negative flips first, ties by name).
    """
    old = pd.read_parquet(FASHION_PREDS / "old.parquet", columns=["id", "label", "pred"]).set_index("id")
    new = pd.read_parquet(FASHION_PREDS / "new.parquet", columns=["id", "pred"]).set_index("id")
    new = new.loc[old.index]
    neg = (old["pred"] == old["label"]).to_numpy() & (new["pred"] != old["label"]).to_numpy()
    per_class = {}
    for cls in sorted(set(old["label"])):
        mine = (old["label"] == cls).to_numpy()
        per_class[cls] = (int(np.sum(neg & mine)), int(np.sum(mine)))
    worst = sorted(per_class, key=lambda c: (-per_class[c][0], c))
    return {"n": len(old), "neg": int(neg.sum()), "per_class": per_class, "order": worst}


# --------------------------------------------------------------------------- HTML
class Tags(HTMLParser):
    """Every start tag with its attributes; text outside <script>/<style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def parse(doc: str) -> Tags:
    """The tags and the visible text of an HTML document."""
    p = Tags()
    p.feed(doc)
    p.close()
    return p
