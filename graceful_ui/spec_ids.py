"""A URL's comparison id (``?cmp=...``) back to its :class:`~graceful_ui.spec.Spec`.

Ids: a bundled pair (``fashion:new``, ``sample:new``, ``table:new``), any two models of a
sample (``pair:new:v3``), a pair with its bundled reference (id + ``+reseed``), a trained model
(``trained:<stem>``), the command line's pair (``cli:<token>``) and uploads (``upload:<token>``).
An unknown id resolves to None; no id is ever joined into a path.
"""

from __future__ import annotations

from graceful_ui.bundled_specs import RESEED_MARK, bundled_reference, bundled_specs, pair_spec_of_id, with_reference
from graceful_ui.spec import Spec
from graceful_ui.trained_specs import TRAINED_PREFIX, trained_spec_of_stem
from graceful_ui.upload_specs import UPLOAD_PREFIX, uploaded_spec

__all__ = ["resolve_spec"]


def resolve_spec(spec_id: str | None) -> Spec | None:
    """The spec behind a URL id (bundled, trained or an earlier upload), or None if unknown."""
    if not spec_id:
        return None
    if spec_id.endswith(RESEED_MARK):  # a bundled pair with its old model's reseed as reference
        base = resolve_spec(spec_id[: -len(RESEED_MARK)])
        ref = None if base is None else bundled_reference(base)
        return None if base is None or ref is None else with_reference(base, ref)
    for s in bundled_specs():
        if s.id == spec_id:
            return s
    if spec_id.startswith(TRAINED_PREFIX):
        return trained_spec_of_stem(spec_id[len(TRAINED_PREFIX) :])
    if spec_id.count(":") == 2:
        return pair_spec_of_id(spec_id)
    if spec_id.startswith(UPLOAD_PREFIX):
        return uploaded_spec(spec_id[len(UPLOAD_PREFIX) :])
    return None
