"""One comparison's inputs as the app knows them: a :class:`Spec` (server paths, a label, a URL id).

A spec names three paths on the server (old, new, optional dataset) and has a short
``id`` that goes into the URL (``?cmp=...``), so a link reopens the same comparison
(:func:`graceful_ui.spec_ids.resolve_spec`). Where specs come from: the bundled samples and the
command line (:mod:`graceful_ui.bundled_specs`), trained models (:mod:`graceful_ui.trained_specs`)
and uploads (:mod:`graceful_ui.upload_specs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from graceful_core.errors import InputError

__all__ = ["Spec", "user_message"]


@dataclass(frozen=True)
class Spec:
    """One comparison's inputs: server paths plus a display label and a URL id."""

    id: str
    label: str
    old: str
    new: str
    data: str | None = None
    #: Server path -> the name the user knows (uploads), for error messages.
    names: tuple[tuple[str, str], ...] = ()
    #: A retrain of the old model (model file or table) whose flips give the churn floor, or None.
    reference: str | None = None

    @overload
    def display_name(self, path: str) -> str: ...
    @overload
    def display_name(self, path: None) -> None: ...
    def display_name(self, path: str | None) -> str | None:
        """The user-facing name of a server path (the uploaded file's name)."""
        if path is None:
            return None
        for server, shown in self.names:
            if path == server:
                return shown
            if path.startswith(server.rstrip("/") + "/"):
                return shown + path[len(server.rstrip("/")) :]
        return path


def user_message(err: InputError, spec: Spec | None) -> str:
    """``err.message`` with server paths replaced by the names the user uploaded."""
    if spec is None or err.path is None:
        return err.message
    return f"{spec.display_name(err.path)}: {err.problem}"
