"""The joint and side-by-side embedding maps draw the flip kinds in the same order: negative flips on top."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graceful_core.explore.projection import ProjectionResult
from graceful_core.report.figures import joint_embedding_figure, side_by_side_embedding_figure


def _inputs():
    rng = np.random.default_rng(0)
    # rows in an order where negative flips come first: plotly express alone would draw them first (underneath)
    flips = ["negative flip", "both correct", "positive flip", "both wrong"] * 5
    samples = pd.DataFrame({"id": [f"s{i}" for i in range(20)], "label": [i % 3 for i in range(20)], "flip": flips})
    xy = rng.normal(size=(20, 2)).astype(np.float32)
    proj = ProjectionResult(old_xy=xy, new_xy=xy + 1, indices=np.arange(20), subsampled=False)
    return proj, samples


def _drawn(fig, col=None):
    """Flip kinds of the marker traces in drawing order (later = on top), one entry per kind."""
    out = []
    for t in fig.data:
        if t.mode != "markers" or (col is not None and t.xaxis != col):
            continue
        kind = t.legendgroup.split(",")[0] if t.legendgroup else t.name.split(",")[0]
        if kind not in out:
            out.append(kind)
    return out


def test_negative_flips_are_drawn_last_in_both_maps():
    proj, samples = _inputs()
    joint = _drawn(joint_embedding_figure(proj, samples, "flip status", lines=False))
    side_old = _drawn(side_by_side_embedding_figure(proj, samples, "flip status"), "x")
    side_new = _drawn(side_by_side_embedding_figure(proj, samples, "flip status"), "x2")
    assert joint == side_old == side_new
    assert joint[-1] == "negative flip" and joint[-2] == "positive flip"
    assert sorted(joint) == ["both correct", "both wrong", "negative flip", "positive flip"]
