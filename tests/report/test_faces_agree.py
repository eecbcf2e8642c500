"""The faces say it in the same words: the CLI summary, the HTML report and the app word the class the
update hurts most and the embeddings' compatibility identically; the embedding maps' colourings
come from one table.

The expected worst class and counts are brute-force NumPy over the bundled digits predictions tables
(``sample_data/predictions/old.csv``, ``new.csv``), the expected compatibility sentence is rebuilt
from the JSON report's numbers, not from the core's words; the three faces run on the bundled digits
models (``sample:new`` in the app).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.apptest import run_app
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
OLD, NEW = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt"
TEST_DATA = SAMPLE / "digits" / "test"
OLD_CSV, NEW_CSV = SAMPLE / "predictions" / "old.csv", SAMPLE / "predictions" / "new.csv"

pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in (OLD, NEW, TEST_DATA, OLD_CSV, NEW_CSV)), reason="bundled sample data is missing"
)


@pytest.fixture(scope="module")
def expected() -> dict:
    """The worst class by brute force: most negative flips, ties to the higher NFR, then the name."""
    o, n = pd.read_csv(OLD_CSV, dtype={"id": str}), pd.read_csv(NEW_CSV, dtype={"id": str})
    m = o.merge(n, on="id", suffixes=("_o", "_n"))
    y, op, np_ = (m[c].astype(str).to_numpy() for c in ("label_o", "pred_o", "pred_n"))
    neg = (op == y) & (np_ != y)
    rows = [(str(c), int(np.sum(neg & (y == c))), int(np.sum(y == c))) for c in sorted(set(y))]
    rows = sorted((r for r in rows if r[1] > 0), key=lambda r: (-r[1], -r[1] / r[2], r[0]))
    assert rows, "the bundled pair breaks no image: the sentence would be absent"
    return {"worst": rows[0], "next": rows[1:4], "total": int(neg.sum())}


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict:
    """The CLI's stdout and its HTML report, from one ``graceful compare`` run."""
    out = tmp_path_factory.mktemp("faces")
    html, report = out / "report.html", out / "report.json"
    r = run_cli("compare", OLD, NEW, "--data", TEST_DATA, "--html", html, "--json", report, cache=out / "cache")
    assert r.returncode == 0, r.stderr
    return {
        "cli": r.stdout,
        "html": html.read_text(encoding="utf-8"),
        "json": json.loads(report.read_text(encoding="utf-8")),
    }


class _Paragraphs(HTMLParser):
    """The text of every element with the class ``wanted`` (``worst-class`` by default)."""

    def __init__(self, wanted: str = "worst-class") -> None:
        super().__init__()
        self.wanted = wanted
        self.found: list[str] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        self._open = self.wanted in (dict(attrs).get("class") or "").split()
        if self._open:
            self.found.append("")

    def handle_endtag(self, tag):
        self._open = False

    def handle_data(self, data):
        if self._open:
            self.found[-1] += data


def _cli_sentence(stdout: str) -> str:
    lines = [s for s in stdout.splitlines() if s.startswith("The update hurts ")]
    assert len(lines) == 1, stdout
    return lines[0]


def test_the_sentence_names_the_brute_force_worst_class(faces, expected):
    name, nf, support = expected["worst"]
    sentence = _cli_sentence(faces["cli"])
    assert sentence.startswith(f"The update hurts {name} most: {nf:,} of its {support:,} images break")
    assert f"{100 * nf / expected['total']:.0f} % of all negative flips" in sentence
    if expected["next"]:
        assert sentence.endswith(" Next: " + ", ".join(f"{c} ({k})" for c, k, _ in expected["next"]) + ".")


def test_the_html_report_leads_with_the_cli_sentence(faces):
    parser = _Paragraphs()
    parser.feed(faces["html"])
    assert parser.found == [_cli_sentence(faces["cli"])]
    html = faces["html"]
    # right under the headline, before the significance verdict: where the CLI puts it
    assert html.index('class="headline"') < html.index('class="worst-class') < html.index('class="verdict')


def test_the_app_overview_words_it_as_the_cli(faces):
    at = run_app()  # the digits pair, on the Overview
    assert at.title[0].value == "Overview"
    lead = [m.value for m in at.markdown if "The update hurts " in m.value]
    assert len(lead) == 1, [m.value for m in at.markdown]
    # the page shows the sentence on a red background, Markdown-escaped
    assert lead[0].replace("\\", "") == f":red-background[{_cli_sentence(faces['cli'])}]"


# ------------------------------------------------------------------ compatibility
def _compatibility_from_json(report: dict) -> str:
    """The verdict sentence rebuilt from the JSON report's ``compatibility`` numbers."""
    c = report["compatibility"]
    t = c["top1"]
    words, rel = ("compatible", ">") if c["compatible"] else ("not compatible", "<=")
    return (
        f"{words}: new queries on the old gallery reach top-1 {100 * t['new_old']:.1f}% {rel} "
        f"old→old {100 * t['old_old']:.1f}%"
    )


def test_cli_and_html_word_the_compatibility_verdict_alike(faces):
    if faces["json"].get("compatibility") is None:
        pytest.skip("the bundled models have no embeddings")
    sentence = _compatibility_from_json(faces["json"])
    embeddings = [s for s in faces["cli"].splitlines() if s.startswith("embeddings ")]
    assert [s.removeprefix("embeddings").strip() for s in embeddings] == [sentence]
    parser = _Paragraphs("verdict")
    parser.feed(faces["html"])
    assert sentence in parser.found, parser.found


def test_the_app_retrieval_page_words_it_as_the_cli(faces):
    if faces["json"].get("compatibility") is None:
        pytest.skip("the bundled models have no embeddings")
    at = run_app({"page": "retrieval"})
    assert at.title[0].value == "Retrieval"
    boxes = at.success if faces["json"]["compatibility"]["compatible"] else at.error
    verdicts = [b.value.replace("\\", "") for b in boxes if "new queries on the old gallery" in b.value]
    assert len(verdicts) == 1, [b.value for b in boxes]
    assert verdicts[0].startswith(f"**{_compatibility_from_json(faces['json'])}.** ")


def test_the_metrics_alias_says_the_words_layers_sentence():
    from types import SimpleNamespace

    from graceful_core.metrics.retrieval import cross_test
    from graceful_core.report.sentences import compatibility_verdict
    from graceful_core.vocabulary import NO_VALID_QUERIES, compatibility_sentence

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    old = rng.normal(size=(4, 8))[labels] + rng.normal(scale=0.8, size=(40, 8))
    for new, compatible in ((old + rng.normal(scale=0.1, size=old.shape), None), (rng.normal(size=(40, 8)), False)):
        ct = cross_test(old, new, labels)
        if compatible is not None:
            assert ct.compatible is compatible
        t = ct.scores["top1"]
        words, rel = ("compatible", ">") if ct.compatible else ("not compatible", "<=")
        expected = (
            f"{words}: new queries on the old gallery reach top-1 {100 * t['new_old']:.1f}% {rel} "
            f"old→old {100 * t['old_old']:.1f}%"
        )
        assert compatibility_sentence(ct) == compatibility_verdict(ct).words == expected
    undefined = SimpleNamespace(
        reason=None, compatible=False, scores={"top1": {"new_old": float("nan"), "old_old": 0.5}}
    )
    assert compatibility_sentence(undefined) == NO_VALID_QUERIES
    assert compatibility_sentence(SimpleNamespace(reason="embedding sizes differ")) == "embedding sizes differ"


# ------------------------------------------------------------------ embedding colourings
def test_one_table_of_embedding_colourings_feeds_the_figures_and_the_links():
    from graceful_core.explore.projection import ProjectionResult
    from graceful_core.report.figures import COLOUR_BY, embedding_points
    from graceful_core.vocabulary import EMBEDDING_COLOURINGS
    from graceful_ui.state import EMB_COLOURS

    assert list(COLOUR_BY) == list(EMB_COLOURS.values()) == [c.label for c in EMBEDDING_COLOURINGS]
    assert [EMB_COLOURS[c.code] for c in EMBEDDING_COLOURINGS] == [c.label for c in EMBEDDING_COLOURINGS]
    samples = pd.DataFrame(
        {"id": ["a", "b"], "label": ["cat", "dog"], "flip": ["negative flip", "both correct"], "cluster": [0, 1]}
    )
    xy = np.zeros((2, 2), dtype=np.float32)
    proj = ProjectionResult(old_xy=xy, new_xy=xy, indices=np.arange(2), subsampled=False, aligned=False)
    columns = set(embedding_points(proj, samples).columns)
    assert {COLOUR_BY[c.label] for c in EMBEDDING_COLOURINGS} <= columns
