"""Comparisons of uploaded files: the ``upload:<token>`` specs, saved so a link reopens them.

The token hashes the files' contents and names, so the same files give the same id in every
session; the spec is written to ``<cache>/app-uploads/<token>/spec.json`` and read back by
:func:`uploaded_spec`. :func:`spec_from_uploads` is the whole upload path, free of Streamlit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from graceful_core.cache import atomic_write_bytes
from graceful_core.vocabulary import MANIFEST_SUFFIXES
from graceful_ui.spec import Spec
from graceful_ui.uploaded_files import (
    StoredFile,
    Upload,
    check_set,
    extract_zip,
    file_suffix,
    safe_name,
    store_file,
    uploads_dir,
)

__all__ = ["UPLOAD_PREFIX", "pair_spec_of_files", "spec_from_files", "spec_from_uploads", "uploaded_spec"]

#: The id prefix of a comparison of uploaded files.
UPLOAD_PREFIX = "upload:"


def spec_from_uploads(
    old: Upload,
    new: Upload,
    dataset: Upload | None = None,
    images: Upload | None = None,
    reference: Upload | None = None,
) -> Spec:
    """Store uploaded files and return the :class:`Spec` that compares them.

    Parameters
    ----------
    old, new : Upload
        Two model files (``.pt2``/``.pt``/``.onnx``) or predictions tables (``.csv``/``.parquet``).
    dataset : Upload, optional
        A ``.zip`` of class folders, or a manifest (``.csv``/``.parquet`` with ``id``,
        ``path``, ``label``) that comes with ``images``.
    images : Upload, optional
        A ``.zip`` of the images a manifest refers to (paths relative to the manifest).
    reference : Upload, optional
        A retrain of the old model (model file or table, as ``old``): the churn floor.

    Raises
    ------
    InputError
        A wrong kind of file, an empty file, a model without a dataset, a manifest
        without its images, or an unsafe/bad zip. The path is the uploaded file's name.
    """
    check_set(old, new, dataset, images, reference)
    return spec_from_files(
        store_file(old),
        store_file(new),
        None if dataset is None else store_file(dataset),
        None if images is None else store_file(images),
        None if reference is None else store_file(reference),
    )


def spec_from_files(
    old: StoredFile,
    new: StoredFile,
    dataset: StoredFile | None = None,
    images: StoredFile | None = None,
    reference: StoredFile | None = None,
) -> Spec:
    """The :class:`Spec` comparing stored files (:func:`store_file`), saved so its id resolves.

    The id is ``upload:<token>``, the token a hash of the four files' contents and names:
    the same files give the same id (and link) in every session. A manifest and the
    zip of its images are put together in the spec's own folder
    (``<cache>/app-uploads/<token>/data/``, the zip checked member by member first).
    A ``reference`` (a retrain of the old model: the churn floor) joins the token and the
    spec; without one, the token is that of the four files alone.

    Raises
    ------
    InputError
        As :func:`spec_from_uploads`.
    """
    check_set(old, new, dataset, images, reference)
    h = hashlib.sha256()
    for f in (old, new, dataset, images):
        h.update(b"\x00" if f is None else bytes.fromhex(f.sha256) + safe_name(f.name).encode())
    if reference is not None:
        h.update(b"reference\x00" + bytes.fromhex(reference.sha256) + safe_name(reference.name).encode())
    token = h.hexdigest()[:20]
    root = uploads_dir() / token
    spec_file = root / "spec.json"
    names: list[tuple[str, str]] = [(old.path, old.name), (new.path, new.name)]
    data_p = None if dataset is None else dataset.path
    if dataset is not None:
        names.append((dataset.path, dataset.name))
    if dataset is not None and images is not None and file_suffix(dataset.name) in MANIFEST_SUFFIXES:
        # a manifest and the zip of its images, side by side in the spec's folder
        manifest = root / "data" / safe_name(dataset.name)
        if not manifest.is_file():
            atomic_write_bytes(manifest, Path(dataset.path).read_bytes())
        marker = root / "data" / ".extracted"
        if not marker.is_file():
            extract_zip(images, Path(images.path), root / "data")
            marker.write_text("ok")
        data_p = str(manifest)
        names[-1] = (data_p, dataset.name)
        names.append((str(root / "data"), images.name))
    if reference is not None:
        names.append((reference.path, reference.name))
    spec = Spec(
        id=f"{UPLOAD_PREFIX}{token}",
        label=f"{old.name} → {new.name}"
        + (f" on {dataset.name}" if dataset else "")
        + (f" · reference {reference.name}" if reference is not None else ""),
        old=old.path,
        new=new.path,
        data=data_p,
        names=tuple(names),
        reference=None if reference is None else reference.path,
    )
    if not spec_file.is_file():
        atomic_write_bytes(spec_file, json.dumps(asdict(spec)).encode())
    return spec


def pair_spec_of_files(
    old: StoredFile,
    new: StoredFile,
    data: str | None,
    data_name: str | None = None,
    data_names: tuple[tuple[str, str], ...] = (),
) -> Spec:
    """The :class:`Spec` comparing two model files already on the server on a dataset path, saved so it resolves.

    For pairs that are not two bundled models on the bundled data (the Versions page opens
    them): e.g. an uploaded model against a bundled one on an uploaded zip. ``data`` is a
    dataset path the server already checked (a bundled folder, a stored zip, a manifest of
    an upload), ``data_name`` what the user calls it, ``data_names`` its server path ->
    name pairs (:attr:`Spec.names`). The id is ``upload:<token>``, the token a hash of both
    files' contents and names and of the dataset path.
    """
    h = hashlib.sha256(b"pair\x00")
    for f in (old, new):
        h.update(bytes.fromhex(f.sha256) + safe_name(f.name).encode() + b"\x00")
    h.update((data or "").encode())
    token = h.hexdigest()[:20]
    label = f"{old.name} → {new.name}" + (f" on {data_name or Path(data).name}" if data else "")
    spec = Spec(
        id=f"{UPLOAD_PREFIX}{token}",
        label=label,
        old=old.path,
        new=new.path,
        data=data,
        names=((old.path, old.name), (new.path, new.name), *data_names),
    )
    spec_file = uploads_dir() / token / "spec.json"
    if not spec_file.is_file():
        atomic_write_bytes(spec_file, json.dumps(asdict(spec)).encode())
    return spec


def uploaded_spec(token: str) -> Spec | None:
    """The spec saved under ``token`` by :func:`spec_from_files` or :func:`pair_spec_of_files`, or None."""
    if not token.isalnum():
        return None
    f = uploads_dir() / token / "spec.json"
    if not f.is_file():
        return None
    d = json.loads(f.read_text())
    d["names"] = tuple(tuple(x) for x in d["names"])
    return Spec(**d)
