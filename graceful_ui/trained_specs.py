"""Comparisons of a trained update with its old model: the ``trained:<stem>`` specs of the Mitigate page."""

from __future__ import annotations

import json
import os
from pathlib import Path

from graceful_core.cache import atomic_write_bytes, cache_dir
from graceful_ui.spec import Spec

__all__ = ["TRAINED_PREFIX", "trained_models_dir", "trained_spec", "trained_spec_of_stem"]

#: The id prefix of a trained model's comparison.
TRAINED_PREFIX = "trained:"


def trained_models_dir() -> Path:
    """Where trained updates live: ``<cache>/models`` (content-addressed ``.pt`` files)."""
    return cache_dir() / "models"


def trained_spec(model: str | os.PathLike, old: str, data: str) -> Spec:
    """The spec comparing ``old`` with a trained model of :func:`trained_models_dir` on ``data``.

    Its id is ``trained:<file stem>``; the old model and dataset are remembered in
    ``<stem>.spec.json`` next to the model, so :func:`graceful_ui.spec_ids.resolve_spec` finds them from a link.
    """
    model = Path(model)
    spec = Spec(
        id=f"{TRAINED_PREFIX}{model.stem}",
        label=f"{Path(old).name} → {model.name} on {Path(data).parent.name}/{Path(data).name} (trained)",
        old=str(old),
        new=str(model),
        data=str(data),
    )
    side = model.with_suffix(".spec.json")
    want = json.dumps({"old": spec.old, "data": spec.data, "label": spec.label}).encode()
    if not side.is_file() or side.read_bytes() != want:
        atomic_write_bytes(side, want)
    return spec


def trained_spec_of_stem(stem: str) -> Spec | None:
    """The spec of the trained model ``<stem>.pt`` (:func:`trained_spec` wrote its side file), or None."""
    if not stem or stem.startswith(".") or not all(c.isalnum() or c in "-_." for c in stem):
        return None
    model, side = trained_models_dir() / f"{stem}.pt", trained_models_dir() / f"{stem}.spec.json"
    if not (model.is_file() and side.is_file()):
        return None
    try:
        d = json.loads(side.read_text())
        return Spec(
            id=f"{TRAINED_PREFIX}{stem}", label=str(d["label"]), old=str(d["old"]), new=str(model), data=str(d["data"])
        )
    except (ValueError, KeyError, TypeError, OSError):
        return None
