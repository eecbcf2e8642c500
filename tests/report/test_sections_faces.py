"""Every face draws every section: the CLI summary, the HTML report and the app's Overview show each
section of :func:`graceful_core.report.sections.build_sections` that applies, and a face given one section
fewer is caught missing exactly that one.

What a face must show of a section (:func:`evidence`): its lead (the verdict with its number, else its
first sentence) or, for metric cards, every short card's value. The comparisons are
the bundled digits pair, from its predictions tables with a third table as the churn floor's
reference (all nine sections) and from its models (the app's ``sample:new``, which has no reference).
"""

from __future__ import annotations

import contextlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import graceful_core
from graceful_core.cli.commands import main
from graceful_core.report.html import render_html_report, render_unlabelled_html_report, write_html_report
from graceful_core.report.sections import (
    SECTION_KEYS,
    UNLABELLED_KEYS,
    Section,
    build_sections,
    build_unlabelled_sections,
)
from graceful_core.report.text import text_summary, unlabelled_summary
from tests.apptest import run_app

ROOT = Path(__file__).resolve().parents[2]
PRED = ROOT / "sample_data" / "predictions"
MODELS = ROOT / "sample_data" / "models"
DIGITS = ROOT / "sample_data" / "digits" / "test"
OLD, NEW, REF = PRED / "old.csv", PRED / "new.csv", PRED / "new-pc.csv"

pytestmark = pytest.mark.skipif(
    not all(p.exists() for p in (OLD, NEW, REF, MODELS / "old.pt", DIGITS)), reason="bundled sample data is missing"
)


def evidence(sec: Section) -> list[str]:
    """The strings a face drawing ``sec`` must contain (a sentence's final full stop aside)."""
    if not sec.sentences and sec.verdict is None:  # the cards: their numbers, however a face words them
        return [r.value for r in sec.rows if r.brief]
    return [sec.lead.rstrip(".")]


def missing(sections: tuple[Section, ...], face: str) -> list[str]:
    """Keys of the sections whose evidence ``face`` (its text) lacks."""
    return [s.key for s in sections if not all(e in face for e in evidence(s))]


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def html_text(doc: str) -> str:
    """The visible text of an HTML document (entities decoded)."""
    p = _Text()
    p.feed(doc)
    return "".join(p.parts)


@pytest.fixture(scope="module")
def comp():
    """The digits tables with a churn-floor reference: every section applies."""
    return graceful_core.compare(OLD, NEW, reference=REF)


@pytest.fixture(scope="module")
def cli_stdout() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", str(OLD), str(NEW), "--reference", str(REF)]) == 0
    return out.getvalue()


def test_every_section_applies_to_the_fixture_and_keeps_the_fixed_order(comp):
    assert tuple(s.key for s in build_sections(comp)) == SECTION_KEYS


def test_the_cli_summary_carries_every_section(comp, cli_stdout):
    sections = build_sections(comp)
    assert missing(sections, cli_stdout) == []
    lines = cli_stdout.splitlines()
    # in the one order every face follows
    firsts = [next(i for i, line in enumerate(lines) if evidence(s)[0] in line) for s in sections]
    order = [k for _, k in sorted(zip(firsts, (s.key for s in sections)))]
    assert order == list(SECTION_KEYS)


def test_the_html_report_carries_every_section_in_order(comp):
    sections = build_sections(comp)
    text = html_text(render_html_report(comp, max_flips=3, generated_at=0))
    assert missing(sections, text) == []
    at = [text.index(evidence(s)[0]) for s in sections]
    assert at == sorted(at), "the HTML report draws the sections in their fixed order"


@pytest.mark.parametrize("key", SECTION_KEYS)
def test_a_section_left_out_of_a_face_is_caught(comp, key):
    sections = build_sections(comp)
    fewer = tuple(s for s in sections if s.key != key)
    assert missing(sections, text_summary(comp, fewer)) == [key]
    assert missing(sections, html_text(render_html_report(comp, max_flips=3, generated_at=0, sections=fewer))) == [key]


def _elements(node):
    """The page's elements in the order they are drawn (blocks: columns, containers, expanders, walked in order)."""
    children = getattr(node, "children", None)
    if children:
        for child in children.values():
            yield from _elements(child)
    else:
        yield node


def app_text(at) -> str:
    """What the Overview shows as text, in page order: headers, Markdown (escapes removed), captions, metrics
    (label and value), buttons."""
    parts = []
    for e in _elements(at.main):
        if e.type in ("title", "subheader", "markdown", "caption", "metric", "button"):
            parts.extend(str(getattr(e, a)) for a in ("label", "value") if isinstance(getattr(e, a, None), str))
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


@pytest.fixture(scope="module")
def app_sections():
    """The sections of the app's ``sample:new`` comparison (the digits models), built here independently."""
    return build_sections(graceful_core.compare(MODELS / "old.pt", MODELS / "new.pt", data=DIGITS))


def test_the_overview_carries_every_section_in_order(app_sections):
    assert [s.key for s in app_sections] == [k for k in SECTION_KEYS if k != "churn_floor"]
    text = app_text(run_app(page="overview_page.py"))
    assert missing(app_sections, text) == []
    at = [text.index(evidence(s)[0]) for s in app_sections if s.key != "cards"]
    assert at == sorted(at), "the Overview draws the sections in their fixed order"


def test_a_section_left_out_of_the_overview_is_caught(app_sections, monkeypatch):
    import graceful_core.report.sections as sections_module

    build = sections_module.build_sections
    monkeypatch.setattr(
        sections_module, "build_sections", lambda c: tuple(s for s in build(c) if s.key != "significance")
    )
    assert missing(app_sections, app_text(run_app(page="overview_page.py"))) == ["significance"]


# ---------------------------------------------------------------- without labels
@pytest.fixture()
def unlabelled_tables(tmp_path):
    """The digits tables (and the third one as the churn floor's reference) without their label column."""
    import pandas as pd

    paths = {}
    for name, src in (("old", OLD), ("new", NEW), ("ref", REF)):
        paths[name] = tmp_path / f"{name}.csv"
        pd.read_csv(src, dtype={"id": str}).drop(columns=["label"]).to_csv(paths[name], index=False)
    return paths


def test_every_face_of_a_comparison_without_labels_carries_every_section(unlabelled_tables, monkeypatch):
    p = unlabelled_tables
    with_ref = build_unlabelled_sections(graceful_core.compare(p["old"], p["new"], reference=p["ref"]))
    assert tuple(s.key for s in with_ref) == UNLABELLED_KEYS
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", str(p["old"]), str(p["new"]), "--reference", str(p["ref"])]) == 0
    assert missing(with_ref, out.getvalue()) == []
    at = [out.getvalue().index(evidence(s)[0]) for s in with_ref]
    assert at == sorted(at), "the CLI summary draws the sections in their fixed order"
    u = graceful_core.compare(p["old"], p["new"])
    for key in UNLABELLED_KEYS:
        sections = build_unlabelled_sections(
            u if key != "churn_floor" else graceful_core.compare(p["old"], p["new"], reference=p["ref"])
        )
        if any(s.key == key for s in sections):
            fewer = tuple(s for s in sections if s.key != key)
            assert missing(sections, unlabelled_summary(u, fewer)) == [key]

    # the app opens the pair without a reference: every section but the churn floor
    monkeypatch.setenv("GRACEFUL_APP_OLD", str(p["old"]))
    monkeypatch.setenv("GRACEFUL_APP_NEW", str(p["new"]))
    sections = build_unlabelled_sections(u)
    assert [s.key for s in sections] == [k for k in UNLABELLED_KEYS if k != "churn_floor"]
    text = app_text(run_app(sample=None))
    assert missing(sections, text) == []
    at = [text.index(evidence(s)[0]) for s in sections]
    assert at == sorted(at), "the Overview draws the sections in their fixed order"


# ---------------------------------------------------------------- the HTML report without labels
def test_compare_html_without_labels_writes_the_label_free_report_in_section_order(unlabelled_tables, tmp_path):
    """``graceful compare --html`` on tables without labels renders every label-free section, in order."""
    p = unlabelled_tables
    html, js = tmp_path / "r.html", tmp_path / "r.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["compare", str(p["old"]), str(p["new"]), "--reference", str(p["ref"]), "--html", str(html)])
    assert code == 0
    text = html_text(html.read_text(encoding="utf-8"))
    sections = build_unlabelled_sections(graceful_core.compare(p["old"], p["new"], reference=p["ref"]))
    assert tuple(s.key for s in sections) == UNLABELLED_KEYS
    assert missing(sections, text) == []
    at = [text.index(evidence(s)[0]) for s in sections]
    assert at == sorted(at), "the label-free HTML report draws the sections in their fixed order"
    # the churn it states, against an independent count of the two tables
    old = pd.read_csv(p["old"], dtype={"id": str}).set_index("id")["pred"]
    new = pd.read_csv(p["new"], dtype={"id": str}).set_index("id")["pred"].reindex(old.index)
    assert f"{int((old != new).sum())} of {len(old)} images change their predicted class" in text
    assert "without labels" in text and not js.exists()


@pytest.mark.parametrize("key", UNLABELLED_KEYS)
def test_a_section_left_out_of_the_label_free_html_report_is_caught(unlabelled_tables, key):
    p = unlabelled_tables
    u = graceful_core.compare(p["old"], p["new"], reference=p["ref"])
    sections = build_unlabelled_sections(u)
    fewer = tuple(s for s in sections if s.key != key)
    assert missing(sections, html_text(render_unlabelled_html_report(u, generated_at=0, sections=fewer))) == [key]


def test_write_html_report_takes_a_comparison_without_labels(unlabelled_tables, tmp_path):
    p = unlabelled_tables
    u = graceful_core.compare(p["old"], p["new"])
    write_html_report(u, tmp_path / "u.html", generated_at=0)
    text = html_text((tmp_path / "u.html").read_text(encoding="utf-8"))
    assert "samples without labels" in text and "generated 1970-01-01 00:00 UTC" in text
