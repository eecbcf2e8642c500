"""The joint embedding map: every point still shows its colour value, model, id, true class and flip kind
on hover, at its projected position, however its facts are split between traces and points."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import pytest

from graceful_core.explore.projection import ProjectionResult
from graceful_core.report import figures
from graceful_core.report.figures import COLOUR_BY, joint_embedding_figure, selected_ids

FLIPS = ["both correct", "both wrong", "positive flip", "negative flip"]


def _inputs(n: int = 60):
    rng = np.random.default_rng(1)
    samples = pd.DataFrame(
        {
            "id": [f"c{i % 3}/{i:05d}.png" for i in range(n)],
            "label": [f"class {i % 3}" for i in range(n)],
            "flip": [FLIPS[(i * 7) % 4] for i in range(n)],
            "cluster": [i % 5 for i in range(n)],
        }
    )
    old, new = rng.normal(size=(n, 2)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)
    proj = ProjectionResult(old_xy=old, new_xy=new, indices=np.arange(n), subsampled=False)
    return proj, samples, {c: f"cluster {c} (k {c})" for c in range(5)}


def _markers(fig: Any) -> list[Any]:
    """The figure's marker traces (as plotly objects: ``fig.data`` is untyped)."""
    return [t for t in fig.data if t.mode == "markers"]


def _hovered(fig: Any) -> dict[tuple[str, str], tuple[dict[str, str], float, float]]:
    """(id, model) -> (the facts of the hover text as Plotly fills it in, x, y) of every marker point."""
    out = {}
    for t in _markers(fig):
        for cd, x, y in zip(t.customdata, t.x, t.y):
            text = re.sub(r"%\{customdata\[(\d+)\]\}", lambda m, cd=cd: str(cd[int(m.group(1))]), t.hovertemplate)
            assert "%{" not in text
            facts = dict(line.split("=", 1) for line in text.removesuffix("<extra></extra>").split("<br>"))
            out[(facts["id"], facts["model"])] = (facts, float(x), float(y))
    return out


@pytest.mark.parametrize("cap", [figures.MAX_MAP_TRACES, 4])
@pytest.mark.parametrize("colour_by", list(COLOUR_BY))
def test_every_point_hovers_its_facts_at_its_position(monkeypatch, colour_by, cap):
    monkeypatch.setattr(figures, "MAX_MAP_TRACES", cap)  # 4: too few traces to split by class or flip
    proj, samples, names = _inputs()
    fig = joint_embedding_figure(proj, samples, colour_by, lines=False, cluster_names=names)
    got = _hovered(fig)
    assert len(got) == 2 * len(samples)
    column = COLOUR_BY[colour_by]
    rows: list[dict[str, Any]] = samples.to_dict("records")
    for i, row in enumerate(rows):
        for model, xy in (("old", proj.old_xy), ("new", proj.new_xy)):
            facts, x, y = got[(str(row["id"]), model)]
            want = {"model": model, "id": row["id"], "true class": row["label"], "flip": row["flip"]}
            if column == "cluster":
                want["cluster"] = names[int(row["cluster"])]
            assert facts == want
            assert (x, y) == (float(xy[i, 0]), float(xy[i, 1]))
            assert list(facts)[0] == column  # the colouring's value comes first, as in the legend


def test_facts_shared_by_a_trace_are_not_repeated_per_point():
    proj, samples, names = _inputs()
    fig = joint_embedding_figure(proj, samples, "flip status", lines=False, cluster_names=names)
    markers = _markers(fig)
    # the flip kind and the model are the trace's: written in its template, not per point
    assert all(np.asarray(t.customdata).shape[1] <= 2 for t in markers)
    assert all("flip=" in t.hovertemplate and "model=" in t.hovertemplate for t in markers)
    assert not any(re.search(r"(flip|model)=%\{", t.hovertemplate) for t in markers)
    # one legend entry per flip kind and model, as before the split
    shown = [t.name for t in markers if t.showlegend]
    assert sorted(shown) == sorted(f"{f}, {m}" for f in FLIPS for m in ("old", "new"))
    assert {t.legendgroup for t in markers} == set(shown)


def test_a_selection_gives_the_ids_of_the_points():
    proj, samples, names = _inputs()
    fig = joint_embedding_figure(proj, samples, "class", lines=True, cluster_names=names)
    points = [{"customdata": list(cd)} for t in _markers(fig) for cd in t.customdata]
    assert sorted(selected_ids(points)) == sorted(samples["id"])


def _relative_luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of a CSS colour name or ``#rrggbb``."""
    hex_colour = {"white": "#ffffff", "black": "#000000"}.get(colour, colour)
    r, g, b = (c / 255 for c in plotly.colors.hex_to_rgb(hex_colour))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def test_hover_labels_of_both_maps_are_readable():
    """The label text against its background reaches WCAG's 4.5:1 for normal text (Plotly's default
    fills a label with its translucent point's colour, which left light grey on near white)."""
    proj, samples, names = _inputs()
    for fig in (
        joint_embedding_figure(proj, samples, "flip status", lines=False, cluster_names=names),
        figures.side_by_side_embedding_figure(proj, samples, "flip status", cluster_names=names),
    ):
        label = fig.layout.hoverlabel
        lighter, darker = sorted((_relative_luminance(label.bgcolor), _relative_luminance(label.font.color)))[::-1]
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5
