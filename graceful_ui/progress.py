"""A Streamlit progress bar driven by the core's ``progress(stage, done, total)`` callbacks.

Its own module so that the caches (:mod:`graceful_ui.store`) and the page widgets
(:mod:`graceful_ui.widgets`) can both draw it without importing each other.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import streamlit as st

from graceful_core.comparing.lineage import STAGE_PAIRS
from graceful_core.explore.projection import STAGE_LAYOUT
from graceful_core.vocabulary import StageProgress

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator


def progress_bar(label: str = "Running the models") -> tuple[DeltaGenerator, StageProgress]:
    """An ``st.progress`` bar and the ``progress(stage, done, total)`` callback that moves it.

    The bar is redrawn at most every 0.1 s and per whole percent, so a cached computation
    that draws it (Streamlit replays its elements on a cache hit) records few updates.
    """
    bar = st.progress(0.0, text=f"{label}...")
    last = {"t": 0.0, "pct": -1, "stage": None}

    def cb(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        pct = int(100 * done / total) if total else 0
        if stage == last["stage"] and done < total and (now - last["t"] < 0.1 or pct == last["pct"]):
            return
        last.update(t=now, pct=pct, stage=stage)
        if total == 0:  # a stage without counts
            bar.progress(0.0, text=f"{label}: {stage}")
            return
        units = "model pairs" if stage == STAGE_PAIRS else "epochs" if stage.endswith(STAGE_LAYOUT) else "images"
        bar.progress(min(1.0, done / total), text=f"{label}: {stage}, {done} / {total} {units}")

    return bar, cb
