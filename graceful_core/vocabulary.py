"""graceful's one vocabulary: every metric's words and format, and the shared constants.

Each metric shown anywhere (the app's cards and tables, the HTML report, the CLI summary,
``docs/metrics.md``) is one :class:`Metric` in :data:`METRICS`: its label, its name in a
sentence, its unit (which fixes its format), its help text and, for the numbers of a
comparison's summary, the caption under its value. A face looks a metric up here and
never writes its words or its format itself. The definitions and formulas behind the
words are in ``docs/metrics.md``.

The constants that several modules share live here too, once each: the file suffixes
(:data:`MODEL_SUFFIXES`, :data:`TABLE_SUFFIXES`, :data:`MANIFEST_SUFFIXES`, ...), the
training methods (:data:`TRAINING_METHODS`), the command line's exit codes
(:data:`EXIT_OK`, ...), the flip types and their colours, and the progress-callback type
(:data:`StageProgress`).

This module imports nothing heavy (no NumPy, no pandas), so any module can import it.

Examples
--------
>>> METRICS["negative_flip_rate"].label
'Negative flip rate (NFR)'
>>> METRICS["negative_flip_rate"].format(0.012345)
'1.23 %'
>>> METRICS["relative_negative_flip_rate"].format(float("nan"))
'n/a'
>>> percent(None), p_value(0.0312), interval((0.01, 0.02))
('n/a', '0.0312', '1.00 % – 2.00 %')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # only for annotations: the summary type imports nothing from here
    from graceful_core.metrics.retrieval import CrossTest
    from graceful_core.metrics.summary import FlipSummary

# --------------------------------------------------------------------------- constants
#: Model files graceful reads (torch.export .pt2 archives, TorchScript archives and ONNX).
MODEL_SUFFIXES = (".pt2", ".pt", ".pth", ".ts", ".onnx")
#: Predictions tables in CSV.
CSV_SUFFIXES = (".csv",)
#: Predictions tables in Parquet.
PARQUET_SUFFIXES = (".parquet", ".pq")
#: Every predictions table (CSV or Parquet).
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
#: Dataset manifests (``id``, ``path``, ``label``): the same formats as tables.
MANIFEST_SUFFIXES = TABLE_SUFFIXES
#: Zip archives (a dataset of class folders, or a manifest's images).
ZIP_SUFFIXES = (".zip",)
#: Formats a model file converts to (``graceful export --to``; :func:`graceful_core.training.export.convert_model_file`).
EXPORT_FORMATS = ("onnx", "pt2")

#: Training methods of the reference trainer, in the order the faces list them.
TRAINING_METHODS = ("plain", "distill", "focal-distillation", "bct", "ldi", "elodi")
#: What each training method does, in one sentence (Markdown).
METHOD_HELP: Mapping[str, str] = {
    "plain": "Cross-entropy only: the ordinary retrained model, and the baseline of every other method.",
    "distill": "Cross-entropy + λ · KL to the old model's outputs on every image (β = 0): copies the old "
    "model's errors too.",
    "focal-distillation": "Cross-entropy + λ · (α + β · 1[old right]) · KL to the old model: stay close to it "
    "where it was right (Yan et al., *Positive-Congruent Training*, CVPR 2021).",
    "bct": "Cross-entropy + λ · cross-entropy through the old model's frozen classifier: new embeddings stay "
    "searchable against the old gallery (Shen et al., *Backward-Compatible Representation Learning*, "
    "CVPR 2020).",
    "ldi": "Cross-entropy + λ · mean over classes of max(|new logit − old logit| − margin, 0)^p: logit "
    "differences beyond a margin are inhibited (logit difference inhibition, Zhao et al., *ELODI*, 2022).",
    "elodi": "The same inhibition toward the mean logits of k ≥ 3 reference models of the new architecture "
    "trained with other seeds, instead of the old model (Zhao et al., *ELODI: Ensemble Logit Difference "
    "Inhibition for Positive-Congruent Training*, 2022).",
}

#: Exit status of the command line: report written and every gate passed.
EXIT_OK = 0
#: A gate (``--max-nfr``, ``--min-btc``) failed.
EXIT_GATE = 1
#: Bad input: one ``error: <file>: <problem>`` line on stderr, no partial output.
EXIT_INPUT = 2
#: Interrupted (Ctrl-C), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130

#: ``progress(stage, done, total)``: ``stage`` names what runs (e.g. a model's file name),
#: ``done`` of ``total`` units are finished; ``total == 0`` is a stage without counts.
StageProgress = Callable[[str, int, int], None]

#: Flip status of one sample, in this order everywhere (index = the small int code).
FLIP_TYPES = ("negative flip", "positive flip", "both correct", "both wrong")
#: Each flip type in marks: old ✓/✗ → new ✓/✗.
FLIP_MARKS: Mapping[str, str] = {
    "negative flip": "old ✓ → new ✗",
    "positive flip": "old ✗ → new ✓",
    "both correct": "old ✓ → new ✓",
    "both wrong": "old ✗ → new ✗",
}
#: Colours of the flip types (and of right/wrong results) in every figure and report.
FLIP_COLOURS: Mapping[str, str] = {
    "negative flip": "#d62728",
    "positive flip": "#2ca02c",
    "both correct": "#9e9e9e",
    "both wrong": "#ff7f0e",
}
#: A right result (same label as the query) and a wrong one.
RIGHT_COLOUR, WRONG_COLOUR = FLIP_COLOURS["positive flip"], FLIP_COLOURS["negative flip"]
#: Colours of the two models in scatter plots.
MODEL_COLOURS: Mapping[str, str] = {"old": "#1f77b4", "new": "#ff7f0e"}


@dataclass(frozen=True)
class EmbeddingColouring:
    """One way to colour the embedding maps: its link code, its widget label, the column it colours by."""

    code: str
    """The value of the ``colour`` URL parameter."""
    label: str
    """The choice's label in the app's "Colour by" widget."""
    column: str
    """The column of :func:`graceful_core.report.figures.embedding_points` that gives the colour."""


#: The embedding maps' colourings, in the widget's order ("cluster" only where the comparison
#: has clusters of the old embeddings).
EMBEDDING_COLOURINGS = (
    EmbeddingColouring("model", "model", "model"),
    EmbeddingColouring("class", "class", "true class"),
    EmbeddingColouring("flip", "flip status", "flip"),
    EmbeddingColouring("cluster", "cluster", "cluster"),
)


# -- embedding compatibility: the BCT cross-test's verdict (docs/metrics.md, "Embedding compatibility")
#: A cross-test that ran but has no verdict: no query has another image of its label.
NO_VALID_QUERIES = "no valid queries: every label occurs only once"


def compatibility_sentence(ct: CrossTest) -> str:
    """The cross-test's verdict in one line: compatible or not, on top-1 (Hit@1).

    Compatible means ``M(new, old) > M(old, old)`` (Shen et al., CVPR 2020); the reason
    when there is no cross-test, :data:`NO_VALID_QUERIES` when no query counts.

    >>> from types import SimpleNamespace as NS
    >>> compatibility_sentence(NS(reason=None, compatible=False, scores={"top1": {"new_old": 0.31, "old_old": 0.9}}))
    'not compatible: new queries on the old gallery reach top-1 31.0% <= old→old 90.0%'
    """
    if ct.reason is not None:
        return ct.reason
    t = ct.scores["top1"]
    if is_undefined(t["new_old"]) or is_undefined(t["old_old"]):
        return NO_VALID_QUERIES
    rel = ">" if ct.compatible else "<="
    word = "compatible" if ct.compatible else "not compatible"
    return f"{word}: new queries on the old gallery reach top-1 {t['new_old']:.1%} {rel} old→old {t['old_old']:.1%}"


def compatibility_advice(compatible: bool) -> str:
    """What a compatible or an incompatible cross-test means for the index, in one sentence."""
    if compatible:
        return "You can search the old index with the new model: no re-indexing (backfill) is needed."
    return "Re-index (backfill) the gallery with the new model, or train the new model to be compatible (BCT)."


#: Significance level of the McNemar verdict.
ALPHA = 0.05

#: Image sizes, one per use, in pixels (the longer side; images are upscaled without smoothing).
#: The HTML report's negative-flip thumbnails: small, since each one is inlined in the file.
REPORT_THUMB_PX = 64
#: The app's image grid (Flips, Slices): 4x a 28x28 Fashion-MNIST photo and 14x an 8x8 digit, so each
#: source pixel becomes an equal square.
GRID_THUMB_PX = 112
#: The Retrieval page's query and neighbour strip (up to ten images in a row).
RETRIEVAL_THUMB_PX = 72
#: The Sample page's one large image.
SAMPLE_IMAGE_PX = 280

# --------------------------------------------------------------------------- comparisons at scale
#: Two predictions tables are compared streamed when either has more rows than this
#: (:func:`graceful_core.comparing.sources.should_stream`); :data:`STREAM_ROWS_ENV` replaces it.
STREAM_MIN_ROWS = 1_000_000
#: Environment variable with another threshold (``0``: stream every pair of tables).
STREAM_ROWS_ENV = "GRACEFUL_STREAM_ROWS"
#: ``compare --stream`` / ``matrix --stream``: by size, always, never.
STREAM_CHOICES = ("auto", "always", "never")
#: Why a streamed comparison has no embedding cross-test (the report's ``compatibility.reason``).
STREAMED_NO_CROSS_TEST = (
    "streamed comparison: embeddings are not read (the cross-test needs every embedding in "
    "memory); for the cross-test compare in memory (compare --stream never; memory grows "
    "with the rows)"
)
#: What a view that needs per-sample data says about a streamed comparison (Markdown).
STREAMED_NO_SAMPLES = (
    "This comparison was **streamed** ({n} images): it holds the counts and the flipped images' "
    "ids, not per-sample data in memory, so this view is not available for it. The **Overview** "
    "and **Flips** pages show everything it holds."
)
#: The Flips grid of a streamed comparison: which images it lists.
STREAMED_GRID_NOTE = (
    "Streamed comparison: the grid lists the flipped images only, read page by page from the "
    "flip-id file; images both models got right (or both wrong) are counted, not listed."
)
#: The Flips grid of a streamed comparison without a flip-id file.
STREAMED_NO_FLIP_FILE = (
    "Streamed comparison without a flip-id file: only the first {cap} ids of each kind of flip "
    "are known, without their classes."
)

# --------------------------------------------------------------------------- formats
PCT_DIGITS = 2
NOT_AVAILABLE = "n/a"


def is_undefined(x: object) -> bool:
    """True for a value a face shows as "n/a": None, NaN or ±inf (``docs/metrics.md``)."""
    if x is None:
        return True
    try:
        return not math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def percent(x: float | None, digits: int = PCT_DIGITS) -> str:
    """A rate as a percentage: ``0.1234 -> '12.34 %'``; undefined -> ``'n/a'``."""
    return NOT_AVAILABLE if x is None or is_undefined(x) else f"{100 * float(x):.{digits}f} %"


def ratio(x: float | None, digits: int = 3) -> str:
    """A plain ratio with ``digits`` decimals (significant digits below 0.001); undefined -> ``'n/a'``."""
    if x is None or is_undefined(x):
        return NOT_AVAILABLE
    x = float(x)
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


#: The smallest p-value printed as a number; below it (an underflow to 0 included) ``'< 1e-300'``.
P_FLOOR = 1e-300


def p_value(p: float | None) -> str:
    """A p-value with three significant digits; undefined -> ``'n/a'``; below :data:`P_FLOOR` ``'< 1e-300'``.

    An exact test on thousands of flips underflows to 0.0 in floating point: "p = 0" would
    claim certainty, so such values print as the bound they are below.

    >>> p_value(0.0), p_value(3e-301), p_value(2.5e-12)
    ('< 1e-300', '< 1e-300', '2.5e-12')
    """
    if p is None or is_undefined(p):
        return NOT_AVAILABLE
    return f"< {P_FLOOR:.0e}" if float(p) < P_FLOOR else f"{float(p):.3g}"


def count(n: int | None) -> str:
    """A count for display, with a thousands separator: ``10000 -> '10,000'``; None -> ``'n/a'``.

    The one format of every count shown to a person (pages, text and HTML reports); files for
    programs (JSON, CSV) keep plain numbers.

    >>> count(10000), count(7), count(None)
    ('10,000', '7', 'n/a')
    """
    return NOT_AVAILABLE if n is None else f"{int(n):,}"


def interval(ci: tuple[float, float] | None) -> str:
    """A (low, high) pair of rates: ``'0.81 % – 3.13 %'``; None -> ``'n/a'``."""
    if ci is None:
        return NOT_AVAILABLE
    lo, hi = ci
    return f"{percent(lo)} – {percent(hi)}"


def points(delta: float | None) -> str:
    """A difference of two rates in percentage points: ``0.0123 -> '+1.23 pp'``."""
    return NOT_AVAILABLE if delta is None or is_undefined(delta) else f"{100 * float(delta):+.2f} pp"


def probability(p: float | None) -> str:
    """A model's probability for one class, two decimals: ``0.934 -> '0.93'``; undefined -> ``'n/a'``."""
    return NOT_AVAILABLE if p is None or is_undefined(p) else f"{float(p):.2f}"


def yes_no(x: bool | None) -> str:
    """``'yes'``, ``'no'``, or ``'n/a'`` for None."""
    return NOT_AVAILABLE if x is None else ("yes" if x else "no")


def images(n: int) -> str:
    """``'1 image'``, ``'3 images'``, ``'10,000 images'`` (:func:`count`)."""
    return f"{count(n)} image" if n == 1 else f"{count(n)} images"


def negative_flips(n: int) -> str:
    """``'1 negative flip'``, ``'3 negative flips'``, ``'1,024 negative flips'`` (:func:`count`)."""
    return f"{count(n)} negative flip" if n == 1 else f"{count(n)} negative flips"


def file_size(n: int) -> str:
    """A file's size in bytes, in the largest unit below 1024 of it (1 KB = 1024 bytes).

    >>> file_size(0), file_size(1), file_size(2048), file_size(5 * 1024**2 + 1), file_size(3 * 1024**3)
    ('0 bytes', '1 byte', '2.0 KB', '5.0 MB', '3.0 GB')
    """
    if n < 1024:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


Unit = Literal["rate", "ratio", "p", "count"]
_FORMATS: Mapping[str, Callable[[Any], str]] = {"rate": percent, "ratio": ratio, "p": p_value, "count": count}


# --------------------------------------------------------------------------- table columns
#: Columns that are never metadata: identity, labels, predictions, scores and embeddings
#: (compared case-insensitively; the wide forms ``logit_j``, ``prob_j``, ``score_j``,
#: ``emb_j`` too). One rule for the table readers and the slice finder (docs/formats.md).
RESERVED_COLUMNS = frozenset({"id", "path", "label", "pred", "logits", "probs", "scores", "embedding"})
_RESERVED_WIDE = re.compile(r"^(logit|prob|score|emb)_\d+$")


def is_reserved_column(name: str) -> bool:
    """True for a column that is never metadata (see :data:`RESERVED_COLUMNS`).

    >>> [is_reserved_column(c) for c in ("id", "Label", "logit_3", "site", "slice")]
    [True, True, True, False, False]
    """
    n = str(name).strip().lower()
    return n in RESERVED_COLUMNS or bool(_RESERVED_WIDE.match(n))


# --------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class Metric:
    """The words and format of one metric.

    Attributes
    ----------
    key : str
        The JSON report's key and the attribute of the result that holds the value.
    label : str
        Title of a card or a column (sentence case, abbreviation in brackets).
    name : str
        The metric's name inside a sentence (lower case), e.g. in the CLI summary.
    unit : {"rate", "ratio", "p", "count"}
        Fixes the format: a rate is a percentage, a ratio a plain number.
    help : str
        What it means and where it comes from, for tooltips and the report.
    caption : callable or None
        ``caption(summary) -> str``: the line under the value on a card (the counts
        behind it, its interval); None for metrics that are not part of a summary.
    """

    key: str
    label: str
    name: str
    unit: Unit
    help: str
    caption: Callable[[FlipSummary], str] | None = None

    def format(self, value: Any) -> str:
        """``value`` in this metric's format ("n/a" when undefined)."""
        return _FORMATS[self.unit](value)

    def value_of(self, summary: FlipSummary) -> Any:
        """This metric's value in a summary."""
        return getattr(summary, self.key)


def _m(
    key: str, label: str, name: str, unit: Unit, help: str, caption: Callable[[FlipSummary], str] | None = None
) -> tuple[str, Metric]:
    return key, Metric(key, label, name, unit, help, caption)


def _of_all(s: FlipSummary) -> str:
    return f"of all {count(s.n_samples)} images"


METRICS: Mapping[str, Metric] = dict(
    [
        _m(
            "old_accuracy",
            "Old accuracy",
            "old accuracy",
            "rate",
            "Share of images the old model classifies correctly.",
            _of_all,
        ),
        _m(
            "new_accuracy",
            "New accuracy",
            "new accuracy",
            "rate",
            "Share of images the new model classifies correctly. The delta is new − old in percentage points.",
            _of_all,
        ),
        _m(
            "old_error_rate",
            "Old error rate",
            "old error rate",
            "rate",
            "Share of images the old model gets wrong (1 − accuracy).",
            _of_all,
        ),
        _m(
            "new_error_rate",
            "New error rate",
            "new error rate",
            "rate",
            "Share of images the new model gets wrong (1 − accuracy).",
            _of_all,
        ),
        _m(
            "negative_flip_rate",
            "Negative flip rate (NFR)",
            "negative flip rate (NFR)",
            "rate",
            "Images the old model got right and the new one gets wrong, over all images (Yan et al., CVPR 2021). "
            "The interval is the Wilson 95 % score interval.",
            lambda s: (
                f"of all {count(s.n_samples)} images: {count(s.n_negative_flips)} go {FLIP_MARKS['negative flip']} · "
                f"95 % CI {interval(s.negative_flip_rate_ci95)}"
            ),
        ),
        _m(
            "positive_flip_rate",
            "Positive flip rate (PFR)",
            "positive flip rate (PFR)",
            "rate",
            "Images the old model got wrong and the new one gets right, over all images. "
            "New error rate − old error rate = NFR − PFR.",
            lambda s: (
                f"of all {count(s.n_samples)} images: {count(s.n_positive_flips)} go {FLIP_MARKS['positive flip']} · "
                f"95 % CI {interval(s.positive_flip_rate_ci95)}"
            ),
        ),
        _m(
            "relative_negative_flip_rate",
            "Relative NFR",
            "relative NFR",
            "ratio",
            "Positive-congruent training (Yan et al., CVPR 2021). n/a when the new model makes no error or the old "
            "model gets nothing right.",
            lambda s: (
                "NFR ÷ (old accuracy × new error rate); below 1 means fewer flips than independent errors would give"
            ),
        ),
        _m(
            "backward_trust_compatibility",
            "Backward trust (BTC)",
            "backward trust compatibility (BTC)",
            "rate",
            "Backward trust compatibility: Bansal et al. AAAI 2019; Srivastava et al. KDD 2020. Trust users built on "
            "the old model's right answers.",
            lambda s: (
                f"of the {count(s.n_old_correct)} images the old model got right, still right · 95 % CI "
                f"{interval(s.backward_trust_compatibility_ci95)}"
            ),
        ),
        _m(
            "backward_error_compatibility",
            "Backward error (BEC)",
            "backward error compatibility (BEC)",
            "rate",
            "Backward error compatibility: share of the new model's errors that are not new. n/a when the new model "
            "makes no error.",
            lambda s: "of the images the new model gets wrong, ones the old model got wrong too (= 1 − NFI)",
        ),
        _m(
            "mcnemar_p_value",
            "McNemar p-value",
            "McNemar p-value",
            "p",
            "Paired test: is the new model really better or worse on these images, or is the difference noise? "
            f"Significant below {ALPHA:g}.",
            lambda s: (
                f"exact two-sided test on {count(s.n_negative_flips)} negative vs {count(s.n_positive_flips)} positive flips"
            ),
        ),
        _m(
            "old_error_persistence",
            "Old-error persistence",
            "old-error persistence",
            "rate",
            "What Microsoft's BackwardCompatibilityML calls its error compatibility score. n/a when the old model "
            "makes no error.",
            lambda s: "of the images the old model got wrong, still wrong under the new model",
        ),
        _m(
            "negative_flip_impact",
            "Negative flip impact (NFI)",
            "negative flip impact (NFI)",
            "rate",
            "NFR ÷ new error rate.",
            lambda s: "of the images the new model gets wrong, regressions (old got them right)",
        ),
        _m(
            "negative_flips_near_boundary",
            "Negative flips near the boundary",
            "negative flips near the boundary",
            "count",
            "Flips where the old model was barely right or the new one barely wrong. n/a without class scores.",
            lambda s: f"of {count(s.n_negative_flips)} negative flips: p(true class) dropped by less than 0.1",
        ),
        _m(
            "negative_flips_confident",
            "Confident negative flips",
            "confident negative flips",
            "count",
            "Flips where the new model is confidently wrong where the old one was right. n/a without class scores.",
            lambda s: f"of {count(s.n_negative_flips)} negative flips: p(true class) dropped by 0.5 or more",
        ),
        _m(
            "n_negative_flips",
            "Negative flips",
            "negative flips",
            "count",
            f"Images that go {FLIP_MARKS['negative flip']}: the old model got them right, the new one gets them wrong.",
            _of_all,
        ),
        _m(
            "n_positive_flips",
            "Positive flips",
            "positive flips",
            "count",
            f"Images that go {FLIP_MARKS['positive flip']}: the old model got them wrong, the new one gets them right.",
            _of_all,
        ),
        # -- churn floor (docs/metrics.md, "Churn floor")
        _m(
            "churn_floor",
            "Churn floor",
            "churn floor",
            "rate",
            "NFR of a retrain of the old model alone (same architecture and data, another seed) against the old "
            "model: how many images retraining noise breaks anyway (Bansal et al. AAAI 2019; Yan et al. CVPR 2021). "
            "The interval is the Wilson 95 % score interval. The update regresses beyond it when an exact McNemar "
            f"test on the images only one of the two breaks is significant (p < {ALPHA:g}).",
        ),
        _m(
            "churn_excess",
            "NFR above the churn floor",
            "NFR above the churn floor",
            "rate",
            "The update's NFR minus the churn floor: (images only the update breaks − images only the retrain "
            "breaks) ÷ all images.",
        ),
        _m(
            "churn_p_value",
            "Churn p-value",
            "churn p-value",
            "p",
            "Update against retrain, paired on the same images: an exact two-sided McNemar test on the images the old "
            "model got right that only the update, or only the retrain, breaks. Is the update's NFR different from "
            "the retrain's on these images?",
        ),
        # -- prediction churn: needs no labels (docs/metrics.md, "Comparisons without labels")
        _m(
            "prediction_churn",
            "Prediction churn",
            "prediction churn",
            "rate",
            "Share of images whose predicted class changes between the old and the new model, right or wrong "
            "(Milani Fard et al., NeurIPS 2016). Needs no labels; it bounds NFR + PFR from above. The interval is "
            "the Wilson 95 % score interval.",
        ),
        # -- embeddings (BCT protocol; docs/metrics.md, "Embedding compatibility")
        _m(
            "embedding_overlap",
            "Overlap",
            "embedding overlap",
            "rate",
            "Share of images whose new embedding's nearest neighbour among all old embeddings is the same image. "
            "n/a when the embedding sizes differ.",
        ),
        _m(
            "hit_at_1",
            "top-1",
            "Hit@1",
            "rate",
            "Share of queries whose nearest other image (cosine similarity, leave-one-out) has the query's label.",
        ),
        _m(
            "hit_at_5",
            "top-5",
            "Hit@5",
            "rate",
            "Share of queries with an image of their label among their 5 nearest other images.",
        ),
        _m(
            "map",
            "mAP",
            "mean average precision",
            "rate",
            "Mean over queries of the average precision over the whole ranked gallery (same label = relevant).",
        ),
        _m(
            "cross_test_hit_at_1",
            "Cross-test Hit@1 (new→old)",
            "cross-test Hit@1",
            "rate",
            "New-model queries against the old model's gallery, top-1 (Shen et al., CVPR 2020); compatible when "
            "above old→old.",
        ),
        _m(
            "self_test_hit_at_1",
            "Self-test Hit@1",
            "self-test Hit@1",
            "rate",
            "Hit@1 of the model's own queries against its own gallery (leave-one-out).",
        ),
        _m(
            "update_gain",
            "Update gain",
            "update gain",
            "ratio",
            "(top-1 new→old − old→old) ÷ (top-1 new→new − old→old): the share of the full upgrade's gain you get "
            "without re-indexing. n/a without a cross-test or when new→new equals old→old.",
        ),
        _m(
            "retrieval_negative_flips",
            "Retrieval negative flips",
            "retrieval negative flips",
            "count",
            "Queries whose top-1 result had their label under old→old and not under new→old: images that would "
            "suddenly go missing from search.",
        ),
        _m(
            "retrieval_positive_flips",
            "Retrieval positive flips",
            "retrieval positive flips",
            "count",
            "Queries wrong at top-1 under old→old and right under new→old.",
        ),
        _m("accuracy", "Accuracy", "accuracy", "rate", "Share of all images the model classifies correctly."),
        # -- regression slices (docs/metrics.md, "Regression slices")
        _m("slice_size", "Images", "images", "count", "Images in the slice."),
        _m(
            "slice_negative_flip_rate",
            "Slice NFR",
            "slice NFR",
            "rate",
            "Negative flips of the slice over all its images; the interval is the Wilson 95 % score interval.",
        ),
        _m(
            "rest_negative_flip_rate",
            "Rest NFR",
            "NFR of the rest",
            "rate",
            "Negative flips over all images outside the slice.",
        ),
        _m(
            "slice_p_value",
            "p (Fisher)",
            "Fisher p",
            "p",
            "One-sided Fisher exact test: does the slice hold more negative flips than a random set of its size would?",
        ),
        _m(
            "slice_p_adjusted",
            "Adjusted p (BH)",
            "adjusted p",
            "p",
            f"The Fisher p adjusted by Benjamini–Hochberg over all slices tested for this comparison; the slice is "
            f"significantly worse than the rest below {ALPHA:g}.",
        ),
        # -- model sets (lineage v1 -> v2 -> ...)
        _m(
            "regressions_from_first",
            "Regressions from v1",
            "regressions from v1",
            "count",
            "Images the first model of the chain got right that this model gets wrong (the negative flips of "
            "v1 → this model).",
        ),
        _m(
            "ever_regressed_from_first",
            "Ever wrong since v1",
            "ever wrong since v1",
            "count",
            "Images the first model got right that at least one model of the chain up to this one got wrong: "
            "regressions users may have seen at some point, even if a later version fixed them.",
        ),
    ]
)

#: The Overview's cards, in order (first row, second row), and the HTML report's.
SUMMARY_CARDS = (
    "old_accuracy",
    "new_accuracy",
    "negative_flip_rate",
    "positive_flip_rate",
    "relative_negative_flip_rate",
    "backward_trust_compatibility",
    "backward_error_compatibility",
    "mcnemar_p_value",
)
#: The cards under "More metrics".
MORE_CARDS = (
    "old_error_persistence",
    "negative_flip_impact",
    "negative_flips_near_boundary",
    "negative_flips_confident",
)
#: The CLI summary's lines.
CLI_LINES = (
    "negative_flip_rate",
    "positive_flip_rate",
    "relative_negative_flip_rate",
    "backward_trust_compatibility",
    "backward_error_compatibility",
)

#: Columns of a per-class or per-slice table: column -> (label, unit).
GROUP_COLUMNS: Mapping[str, tuple[str, Unit | None]] = {
    "class": ("class", None),
    "slice": ("slice", None),
    "support": ("support", "count"),
    "negative_flips": ("negative flips", "count"),
    "positive_flips": ("positive flips", "count"),
    "negative_flip_rate": ("negative flip rate", "rate"),
    "positive_flip_rate": ("positive flip rate", "rate"),
    "old_accuracy": ("old accuracy", "rate"),
    "new_accuracy": ("new accuracy", "rate"),
}

#: Regression slices: the section's title, what it is, and the columns of its table
#: (JSON key -> metric of :data:`METRICS`, or a plain label).
SLICES_TITLE = "Regression slices"
SLICES_HELP = (
    "Groups of images (a value of a metadata column, or a cluster of the old model's embeddings) "
    "tested for more negative flips than the rest of the images: a one-sided Fisher exact test per "
    "slice, Benjamini–Hochberg adjusted over all slices of the comparison."
)
SLICE_KINDS: Mapping[str, str] = {"metadata": "metadata", "embedding": "embedding cluster"}
SLICE_COLUMNS: Mapping[str, str] = {
    "size": "slice_size",
    "negative_flips": "n_negative_flips",
    "negative_flip_rate": "slice_negative_flip_rate",
    "rest_negative_flip_rate": "rest_negative_flip_rate",
    "p_value": "slice_p_value",
    "p_adjusted": "slice_p_adjusted",
}

#: The retrieval pairs (query model → gallery model) and how the faces name them.
RETRIEVAL_PAIRS: Mapping[str, str] = {
    "old_old": "old → old (today)",
    "new_new": "new → new (after backfill)",
    "new_old": "new → old (cross-test)",
    "old_new": "old → new",
}
#: The retrieval scores of a cross-test: JSON key -> metric of :data:`METRICS`.
RETRIEVAL_SCORES: Mapping[str, str] = {"top1": "hit_at_1", "top5": "hit_at_5", "map": "map"}


def card(key: str, summary: FlipSummary) -> tuple[str, str, str, str]:
    """``(label, value, caption, help)`` of a summary metric's card."""
    m = METRICS[key]
    caption = m.caption(summary) if m.caption is not None else ""
    return m.label, m.format(m.value_of(summary)), caption, m.help


# --------------------------------------------------------------------------- label issues and flip verdicts
#: A reviewer's verdict on one flipped image (the review store keeps the latest per image).
FLIP_VERDICTS = ("real regression", "label wrong", "ambiguous", "acceptable")
#: Streamlit background colour of each verdict's badge.
FLIP_VERDICT_COLOURS: Mapping[str, str] = {
    "real regression": "red",
    "label wrong": "violet",
    "ambiguous": "orange",
    "acceptable": "gray",
}
#: Badge of a sample whose label looks wrong (the Flips grid, the Sample page).
LABEL_ISSUE_MARK = "label may be wrong"
#: Badge of a sample both models split between the same two classes.
AMBIGUOUS_MARK = "ambiguous image"
#: What "label may be wrong" means, in one sentence (help texts of the faces).
LABEL_ISSUE_HELP = (
    "Flagged by confident learning (Northcutt et al., JAIR 2021; the cleanlab library) on the mean "
    "of both models' class probabilities: both models put clearly more probability on another "
    "class than images of the given class usually get. Label quality = the mean probability of "
    "the given label (0 = the models are sure it is wrong)."
)
#: Why a streamed comparison has no label issues (the report's ``label_issues.reason``).
STREAMED_NO_LABEL_ISSUES = (
    "streamed comparison: confident learning sets each class's threshold from every "
    "sample's class probabilities, which a streamed comparison does not keep (it counts "
    "batch by batch); compare in memory (compare --stream never) for label issues"
)
#: Filters of the Flips grid by label quality.
LABEL_FILTERS = ("all images", "label may be wrong", "ambiguous", "label looks fine")
# --------------------------------------------------------------------------- what-if remedies
#: Title of the training-free remedies (Mitigate page section) and the label of their one line (Overview, HTML).
WHATIF_TITLE = "Remedies without training"
WHATIF_LINE_LABEL = "Remedy without training"

#: What the update gain's number counts: a multiple of the full upgrade's retrieval gain.
UPDATE_GAIN_UNIT = "× the gain of re-indexing with the new model (1 = all of it, 0 = none, below 0 = worse than today)"


def update_gain_value(value: float | None) -> str:
    """The update gain with its unit sign, e.g. ``"0.412 ×"`` ("n/a" when undefined).

    >>> update_gain_value(-17.9561), update_gain_value(None)
    ('-17.956 ×', 'n/a')
    """
    text = METRICS["update_gain"].format(value)
    return text if text == "n/a" else f"{text} ×"


#: Title of the training part of the Mitigate page (below the training-free remedies).
TRAINING_TITLE = "Remedies with training"
