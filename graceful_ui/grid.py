"""The paginated image grid of the Flips page (and neighbour strips on the Sample page)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from graceful_core.results.comparison import Comparison
from graceful_core.vocabulary import FLIP_MARKS, GRID_THUMB_PX, is_undefined, probability
from graceful_ui import store
from graceful_ui.fmt import code, md

#: Grid image side in px (the vocabulary's size of the app's grid).
THUMB_PX = GRID_THUMB_PX
COLUMNS = 6

#: Streamlit's background colour of each flip type's badge (the closest to the vocabulary's colours).
_BADGE_COLOURS = {"negative flip": "red", "positive flip": "green", "both correct": "gray", "both wrong": "orange"}
FLIP_BADGES = {t: f":{c}-background[{FLIP_MARKS[t]}]" for t, c in _BADGE_COLOURS.items()}


def _conf(x: float) -> str:
    """The model's probability for its own prediction, e.g. " · p 0.93"."""
    return "" if is_undefined(x) else f" · p {probability(x)}"


def card_markdown(row: dict) -> str:
    """The text of one grid card: id, true label, both predictions (✓/✗, confidence), flip badge.

    Short lines, mark next to the class: a card is a sixth of the page wide.
    """
    old_mark = "✓" if row["old_pred"] == row["label"] else "✗"
    new_mark = "✓" if row["new_pred"] == row["label"] else "✗"
    return (
        f"{code(row['id'])}  \n"
        f"true **{md(row['label'])}**  \n"
        f"old {md(row['old_pred'])} {old_mark}{_conf(row['old_conf'])}  \n"
        f"new {md(row['new_pred'])} {new_mark}{_conf(row['new_conf'])}  \n"
        f"{FLIP_BADGES.get(row['flip'], row['flip'])}"
    )


def image_grid(
    comp: Comparison,
    rows: pd.DataFrame,
    *,
    on_inspect=None,
    key: str = "grid",
    size: int = THUMB_PX,
    columns: int = COLUMNS,
    card_extra=None,
) -> None:
    """Draw ``rows`` of the per-sample table as cards, ``columns`` per line.

    Images are upscaled with nearest-neighbour to ``size`` px (no smoothing).
    ``on_inspect(sample_id)`` is the callback of each card's "Inspect" button;
    ``card_extra(row)``, when given, draws more into each card (label badges, a verdict).
    """
    records = rows.to_dict("records")
    for start in range(0, len(records), columns):
        cols = st.columns(columns)
        for col, row in zip(cols, records[start : start + columns]):
            with col.container(border=True):
                png = store.image_png(comp, row["id"], size)
                if png is not None:
                    st.image(png, width=size)
                st.markdown(card_markdown(row))
                if card_extra is not None:
                    card_extra(row)
                if on_inspect is not None:
                    st.button(
                        "Inspect", key=f"{key}-{row['id']}", on_click=on_inspect, args=(row["id"],), width="stretch"
                    )
