"""The session's uploaded files, kept in session state so they outlive the file uploaders.

Streamlit forgets a widget's value when its page is not drawn, so a file uploader is
empty again after any page switch. An upload is therefore stored on the server as soon
as it arrives (content-addressed, :func:`graceful_ui.uploaded_files.check_upload`) and the
session keeps its :class:`~graceful_ui.uploaded_files.StoredFile` under a plain key: what is
loaded for the old model, the new model, the dataset and a manifest's images, and
every model file uploaded in this session (the Versions page offers them).
"""

from __future__ import annotations

import streamlit as st

from graceful_ui.uploaded_files import StoredFile

#: The upload slots, in the order of the page: old model or table, new model or table,
#: dataset (zip of class folders or manifest), the zip of a manifest's images, and the
#: optional reference (the old model retrained with another seed: the churn floor).
ROLES = ("model_old", "model_new", "dataset", "images", "reference")
_FILES = "uploaded_files"
_MODELS = "uploaded_models"


def session_files() -> dict[str, StoredFile]:
    """What is loaded in this session, by role (a slot without a file is absent)."""
    return st.session_state.setdefault(_FILES, {})


def set_file(role: str, f: StoredFile) -> None:
    """Load ``f`` into the slot ``role`` (replacing what was there); remember model files."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    session_files()[role] = f
    if f.is_model:
        models = st.session_state.setdefault(_MODELS, [])
        if all((m.sha256, m.name) != (f.sha256, f.name) for m in models):
            models.append(f)


def clear_file(role: str) -> None:
    """Empty the slot ``role`` (the file stays among the session's models)."""
    session_files().pop(role, None)


def session_models() -> list[StoredFile]:
    """Every model file uploaded in this session, first upload first (one entry per name and content)."""
    return list(st.session_state.get(_MODELS, []))
