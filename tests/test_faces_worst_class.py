"""Every face leads with the same worst-class sentence: the CLI summary, the HTML report and the
app's Overview word the class the update hurts most identically.

The expected class and counts are brute-force NumPy over the bundled digits predictions tables
(``sample_data/predictions/old.csv``, ``new.csv``), not the core's output; the three faces run on
the bundled digits models (``sample:new`` in the app).
"""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.apptest import run_app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
OLD, NEW = SAMPLE / "models" / "old.pt", SAMPLE / "models" / "new.pt"
TEST_DATA = SAMPLE / "digits" / "test"
OLD_CSV, NEW_CSV = SAMPLE / "predictions" / "old.csv", SAMPLE / "predictions" / "new.csv"

pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in (OLD, NEW, TEST_DATA, OLD_CSV, NEW_CSV)), reason="bundled sample data is missing")


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
    env = dict(os.environ, GRACEFUL_CACHE_DIR=str(out / "cache"))
    html = out / "report.html"
    r = subprocess.run([sys.executable, "-m", "graceful_core", "compare", str(OLD), str(NEW), "--data",
                        str(TEST_DATA), "--html", str(html)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return {"cli": r.stdout, "html": html.read_text(encoding="utf-8")}


class _Paragraphs(HTMLParser):
    """The text of every element with class ``worst-class``."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        self._open = "worst-class" in (dict(attrs).get("class") or "").split()
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
    assert sentence.startswith(f"The update hurts {name} most: {nf} of its {support} images break")
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
