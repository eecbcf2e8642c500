"""One vocabulary: each metric's words, each shared constant and each format is written once."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from graceful_core import vocabulary as v
from graceful_core.metrics.summary import FlipSummary

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = ROOT / "graceful_core" / "vocabulary.py"


def _sources() -> dict[Path, str]:
    """Every file of the faces and the core: Python, templates."""
    files = [
        *ROOT.glob("graceful_core/**/*.py"),
        *ROOT.glob("graceful_ui/**/*.py"),
        *ROOT.glob("app_pages/*.py"),
        ROOT / "app.py",
        *ROOT.glob("graceful_core/report/templates/*"),
    ]
    return {p: p.read_text(encoding="utf-8") for p in files if p.is_file()}


def _where(text: str, sources: dict[Path, str]) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p, s in sources.items() if text in s)


def test_each_metric_help_text_and_long_label_is_written_once():
    sources = _sources()
    for m in v.METRICS.values():
        # a 30-character piece as written in vocabulary.py (texts are split over literals and f-strings)
        own = sources[VOCABULARY]
        piece = next(m.help[i : i + 30] for i in range(0, max(1, len(m.help) - 29)) if m.help[i : i + 30] in own)
        assert _where(piece, sources) == ["graceful_core/vocabulary.py"], (m.key, piece)
        if len(m.label) >= 10:  # short labels ("top-1", "mAP") are also ordinary words elsewhere
            assert _where(f'"{m.label}"', sources) == ["graceful_core/vocabulary.py"], m.label


@pytest.mark.parametrize(
    "pattern, what",
    [
        (r'"\.pq"', "the Parquet suffixes"),
        (r'"\.onnx"\)', "the model suffixes"),
        (r'=\s*\(\s*"plain",\s*"distill"', "the training methods"),
        (r"Callable\[\[str, int, int\], None\]", "the progress-callback type"),
        (r"EXIT_\w+\s*=\s*\d", "the exit codes"),
        (r'"negative flip", "positive flip", "both correct"', "the flip types"),
    ],
)
def test_each_shared_constant_is_defined_once(pattern, what):
    hits = [str(p.relative_to(ROOT)) for p, s in _sources().items() if re.search(pattern, s)]
    assert hits == ["graceful_core/vocabulary.py"], (what, hits)


def test_every_card_is_a_summary_number_and_a_report_key():
    fields = {f.name for f in dataclasses.fields(FlipSummary)}
    for key in v.SUMMARY_CARDS + v.MORE_CARDS + v.CLI_LINES:
        assert key in fields and v.METRICS[key].caption is not None, key


@pytest.mark.parametrize(
    "x, pct, rat",
    [
        (0.1234, "12.34 %", "0.123"),
        (0.0, "0.00 %", "0.000"),
        (0.00012345, "0.01 %", "0.000123"),
        (1.0, "100.00 %", "1.000"),
    ],
)
def test_formats_by_hand(x, pct, rat):
    assert v.percent(x) == pct and v.ratio(x) == rat
    assert v.METRICS["negative_flip_rate"].format(x) == pct
    assert v.METRICS["relative_negative_flip_rate"].format(x) == rat


@pytest.mark.parametrize("undefined", [None, float("nan"), math.inf, -math.inf])
def test_undefined_is_na_everywhere(undefined):
    assert v.is_undefined(undefined)
    for fmt in (v.percent, v.ratio, v.p_value, v.points, v.probability):
        assert fmt(undefined) == "n/a"
    assert not v.is_undefined(0.0) and not v.is_undefined(3) and v.count(None) == "n/a" and v.count(0) == "0"


def test_interval_and_p_value_by_hand():
    assert v.interval((0.0081, 0.0313)) == "0.81 % – 3.13 %"
    assert v.p_value(0.092285) == "0.0923" and v.p_value(1.0) == "1"
    assert v.points(0.013) == "+1.30 pp" and v.points(-0.1111) == "-11.11 pp"


def test_docs_name_every_key_of_the_json_report():
    """docs/metrics.md, the project's reference, lists every key a report can carry."""
    import numpy as np

    from graceful_core.comparing.predictions import compare_predictions
    from graceful_core.metrics.churn import churn_floor
    from graceful_core.types import Predictions

    rng = np.random.default_rng(0)
    n = 40
    ids = np.array([f"s{i}" for i in range(n)], dtype=object)
    y = rng.integers(0, 3, n)
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    logits = rng.normal(size=(n, 3)).astype(np.float32)
    old = Predictions(
        ids=ids,
        pred=logits.argmax(1),
        classes=list("abc"),
        labels=y,
        scores=logits,
        score_kind="logits",
        embedding=emb,
        extra={"slices": np.array(["p", "q"] * (n // 2))},
    )
    new = Predictions(ids=ids, pred=y, classes=list("abc"), embedding=emb[::-1].copy())
    comp = compare_predictions(old, new, old_head=lambda e: e[:, :3])
    comp = dataclasses.replace(
        comp, churn_floor=churn_floor(y, old.pred, new.pred, y[::-1], reference_name="o2"), regression_slices=()
    )
    rep = comp.to_report()
    docs = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    keys = set(rep) | set(rep["old"]) | set(rep["compatibility"]) | set(rep["per_class"][0]) | set(rep["per_slice"][0])
    missing = sorted(k for k in keys if f"`{k}`" not in docs and f"{k}`" not in docs)
    assert missing == [], missing


def test_counts_have_one_format():
    """A count reads "10,000" on every page and report (``count``), never "10000" on one and "10,000" on another."""
    assert (v.count(10_000), v.count(999), v.count(1_234_567), v.count(None)) == ("10,000", "999", "1,234,567", "n/a")
    assert (v.images(1), v.images(10_000), v.negative_flips(1_024)) == (
        "1 image",
        "10,000 images",
        "1,024 negative flips",
    )
    # an f-string writing a count field ("{comp.n_samples}") by itself: only through count() or images()
    raw = re.compile(r"\{[A-Za-z_.]*\.n_[a-z_]+(:,)?\}")
    shown = {
        p: s
        for p, s in _sources().items()
        if p.is_relative_to(ROOT / "app_pages")
        or p.is_relative_to(ROOT / "graceful_ui")
        or p.is_relative_to(ROOT / "graceful_core" / "report")
        or p == VOCABULARY
    }
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p, s in shown.items() for m in raw.finditer(s)]
    assert found == [], found
