"""The command line's output files: checked before any work is done, then written all or none."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from graceful_core.cache import atomic_write_bytes
from graceful_core.errors import InputError

__all__ = ["check_output_folders", "check_outputs", "json_bytes", "write_json", "write_outputs"]


def check_output_folders(paths: Iterable[str]) -> None:
    """Refuse output paths whose folder does not exist (nothing creates folders on the user's behalf)."""
    for path in paths:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise InputError(
                path, f"its folder {parent} does not exist: create it first, or give a path in an existing folder"
            )


def check_outputs(paths: Iterable[str]) -> None:
    """Refuse output paths that cannot be written, before any work is done."""
    for path in paths:
        if os.path.isdir(path):
            raise InputError(path, "is a folder: give a file name for the output")
        check_output_folders([path])
        parent = os.path.dirname(os.path.abspath(path))
        if not os.access(parent, os.W_OK):
            raise InputError(path, "its folder is not writable")


def write_outputs(outputs: Mapping[str, bytes]) -> None:
    """Write every output file or none: destinations are checked first, then all are written."""
    check_outputs(outputs)
    for path, data in outputs.items():
        atomic_write_bytes(path, data)


def json_bytes(obj: Any) -> bytes:
    """A report as the CLI writes it: indented JSON, no NaN (``allow_nan=False``), one final newline."""
    return (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_bytes(path, json_bytes(obj))
