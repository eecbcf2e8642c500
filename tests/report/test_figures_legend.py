"""The side-by-side embedding map's legend names every colour once, whichever panel holds its points."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from graceful_core.explore.projection import ProjectionResult
from graceful_core.report.figures import side_by_side_embedding_figure


def _inputs():
    flips = ["negative flip", "both correct", "positive flip", "both wrong"] * 5
    samples = pd.DataFrame({"id": [f"s{i}" for i in range(20)], "label": [i % 3 for i in range(20)], "flip": flips})
    xy = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    return ProjectionResult(old_xy=xy, new_xy=xy + 1, indices=np.arange(20), subsampled=False), samples


def _traces(fig: Any) -> list[dict]:
    return [{"name": t.name, "showlegend": t.showlegend, "xaxis": t.xaxis, "x": t.x} for t in fig.data]


def _legend(fig):
    return [t["name"] for t in _traces(fig) if t["showlegend"] is not False]


def test_coloured_by_model_the_legend_has_old_and_new():
    proj, samples = _inputs()
    fig = side_by_side_embedding_figure(proj, samples, "model")
    assert sorted(_legend(fig)) == ["new", "old"]
    # each entry is the trace that holds the points: old in the left panel, new in the right one
    shown = {t["name"]: (t["xaxis"], len(t["x"])) for t in _traces(fig) if t["showlegend"] is not False}
    assert shown == {"old": ("x", 20), "new": ("x2", 20)}


@pytest.mark.parametrize("colour_by", ["flip status", "class"])
def test_a_colour_present_in_both_panels_is_named_once(colour_by):
    proj, samples = _inputs()
    names = _legend(side_by_side_embedding_figure(proj, samples, colour_by))
    assert len(names) == len(set(names)) and len(names) >= 3
