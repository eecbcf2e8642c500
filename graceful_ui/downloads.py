"""File names of the app's downloads: named after the comparison, so several saved reports stay apart."""

from __future__ import annotations

import re
from pathlib import PurePath

#: Longest stem kept from a model name (file systems allow 255 bytes for the whole name).
_MAX_PART = 60


def _part(name: str) -> str:
    """A model name as a file-name part: its stem, letters, digits, ``.``, ``_`` and ``-`` only."""
    stem = PurePath(str(name)).name
    for suffix in (".pt2", ".pt", ".pth", ".onnx", ".csv", ".parquet", ".tsv", ".jsonl", ".json"):
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")
    return stem[:_MAX_PART] or "model"


def download_name(old_name: str, new_name: str, what: str, ext: str) -> str:
    """``graceful-OLD-vs-NEW-WHAT.EXT`` from the two models' display names.

    Examples
    --------
    >>> download_name("old.pt", "new.pt", "report", "json")
    'graceful-old-vs-new-report.json'
    >>> download_name("runs/v1 (final).onnx", "v2.parquet", "samples", "csv")
    'graceful-v1-final-vs-v2-samples.csv'
    """
    return f"graceful-{_part(old_name)}-vs-{_part(new_name)}-{what}.{ext}"
