"""Uploaded files: checked as they arrive, kept content-addressed on the server, described in words.

An upload is written once under ``<cache>/app-uploads/files/<sha256[:20]>/<name>`` with its
original name (:func:`store_file`) and opened with the core's loaders (:func:`check_upload`),
so a wrong file is refused at once, naming the file the user knows. Free of Streamlit: tests
drive it with bytes.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from graceful_core.cache import atomic_write_bytes, cache_dir
from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.safezip import safe_extract
from graceful_core.io.tables import load_predictions_table
from graceful_core.vocabulary import MANIFEST_SUFFIXES, MODEL_SUFFIXES, TABLE_SUFFIXES, ZIP_SUFFIXES

__all__ = [
    "MODEL_FORMATS",
    "ROLE_SUFFIXES",
    "ROLE_WHAT",
    "StoredFile",
    "Upload",
    "check_set",
    "check_upload",
    "extract_zip",
    "file_suffix",
    "safe_name",
    "server_file",
    "store_file",
    "uploads_dir",
]


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its original name and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file kept on the server for a session: where it is and what the user knows of it.

    Uploads are stored content-addressed (``<cache>/app-uploads/files/<sha256[:20]>/<name>``),
    so the same bytes under the same name are one file however often they are uploaded.
    """

    #: The name the user uploaded (or the file's own name).
    name: str
    #: Server path.
    path: str
    sha256: str
    size: int
    #: What it is, in words ("TorchScript model, 10 classes", "zip of class folders: 540 images, 10 classes").
    kind: str = ""

    @property
    def suffix(self) -> str:
        return file_suffix(self.name)

    @property
    def is_model(self) -> bool:
        """A model file (not a predictions table, dataset or zip)."""
        return self.suffix in MODEL_SUFFIXES


def uploads_dir() -> Path:
    """Where uploads are kept: ``<cache>/app-uploads`` (created)."""
    d = cache_dir() / "app-uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def file_suffix(name: str) -> str:
    """A file name's suffix, lower case (``"model.PT"`` -> ``".pt"``)."""
    return PurePosixPath(name).suffix.lower()


def safe_name(name: str) -> str:
    """An uploaded name as one safe file name: its last part, never ``""``, ``.`` or ``..``."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else "upload"


def _check_suffix(up: Upload | StoredFile, allowed: tuple[str, ...], what: str) -> None:
    if file_suffix(up.name) not in allowed:
        hint = ""
        if file_suffix(up.name) in MODEL_SUFFIXES + TABLE_SUFFIXES and not set(allowed) & set(MODEL_SUFFIXES):
            hint = ": a model file or predictions table goes in the Old or New slot"
        elif file_suffix(up.name) in ZIP_SUFFIXES + MANIFEST_SUFFIXES:
            hint = ": a dataset goes in the Dataset slot"
        raise InputError(
            up.name, f"expected {what} ({', '.join(allowed)}), got a '{file_suffix(up.name) or 'no suffix'}' file{hint}"
        )
    if (up.size if isinstance(up, StoredFile) else len(up.data)) == 0:
        raise InputError(up.name, "the file is empty")


#: What each kind of upload may be, in words (errors and the upload page's labels).
ROLE_WHAT = {
    "model": "a model file or a predictions table",
    "dataset": "a .zip of class folders or a manifest",
    "images": "a .zip of images",
}


#: The suffixes each kind of upload accepts.
ROLE_SUFFIXES = {
    "model": MODEL_SUFFIXES + TABLE_SUFFIXES,
    "dataset": ZIP_SUFFIXES + MANIFEST_SUFFIXES,
    "images": ZIP_SUFFIXES,
}


#: A loaded model's format in words, by the core's model class.
MODEL_FORMATS = {"TorchScriptModel": "TorchScript model", "Pt2Model": "torch.export model", "OnnxModel": "ONNX model"}


def store_file(up: Upload) -> StoredFile:
    """Write an upload content-addressed under ``<cache>/app-uploads/files/`` (once) and describe it."""
    sha = hashlib.sha256(up.data).hexdigest()
    path = uploads_dir() / "files" / sha[:20] / safe_name(up.name)
    if not path.is_file():
        atomic_write_bytes(path, up.data)
    return StoredFile(name=up.name, path=str(path), sha256=sha, size=len(up.data))


def server_file(path: str | os.PathLike, name: str | None = None) -> StoredFile:
    """A file already on the server (a bundled or trained model) as a :class:`StoredFile`."""
    p = Path(path)
    return StoredFile(name=name or p.name, path=str(p), sha256=file_sha256(p), size=p.stat().st_size)


def extract_zip(up: Upload | StoredFile, zpath: Path, dest: Path) -> None:
    """Extract an uploaded zip with the core's checks (:func:`graceful_core.io.safezip.safe_extract`:
    every member checked first, no absolute paths, '..' or links, bounded count and real
    size); errors name the uploaded file."""
    try:
        safe_extract(zpath, dest)
    except InputError as e:
        raise InputError(up.name, e.problem) from None


def check_set(
    old: Upload | StoredFile,
    new: Upload | StoredFile,
    dataset: Upload | StoredFile | None,
    images: Upload | StoredFile | None,
    reference: Upload | StoredFile | None = None,
) -> None:
    """The checks of a set of inputs that need no file opened (kinds, emptiness, what goes with what)."""
    sides = [u for u in (old, new, reference) if u is not None]
    for up in sides:
        _check_suffix(up, ROLE_SUFFIXES["model"], ROLE_WHAT["model"])
    needs_data = any(file_suffix(u.name) in MODEL_SUFFIXES for u in sides)
    if dataset is None and needs_data:
        name = next(u.name for u in sides if file_suffix(u.name) in MODEL_SUFFIXES)
        raise InputError(name, "a model file needs a dataset to run on: upload a .zip of class folders")
    if dataset is not None:
        _check_suffix(dataset, ROLE_SUFFIXES["dataset"], ROLE_WHAT["dataset"])
        if file_suffix(dataset.name) in MANIFEST_SUFFIXES and images is None:
            raise InputError(dataset.name, "a manifest needs the zip of its images: upload it as well")
    if images is not None:
        _check_suffix(images, ROLE_SUFFIXES["images"], ROLE_WHAT["images"])


def check_upload(up: Upload, role: str) -> StoredFile:
    """Validate one uploaded file on its own, as soon as it arrives, and keep it.

    ``role`` is ``"model"`` (a model file or predictions table), ``"dataset"`` (a zip of
    class folders or a manifest) or ``"images"`` (the zip a manifest refers to). The
    file is written content-addressed (:func:`store_file`) and opened with the core's
    loader (a manifest is checked together with its images, when compared).

    Returns
    -------
    StoredFile
        Where the file is kept, with what it is in words (``kind``).

    Raises
    ------
    InputError
        What is wrong, naming the uploaded file.
    ValueError
        ``role`` is not one of the three.
    """
    from graceful_core.models.loader import load_model  # imports torch: only when a model file is checked

    if role not in ROLE_SUFFIXES:
        raise ValueError(f"role must be one of {sorted(ROLE_SUFFIXES)}, got {role!r}")
    _check_suffix(up, ROLE_SUFFIXES[role], ROLE_WHAT[role])
    stored = store_file(up)
    path = Path(stored.path)
    folder = path.parent
    suffix = file_suffix(up.name)
    if role == "dataset" and suffix in MANIFEST_SUFFIXES:  # checked together with its images (spec_from_files)
        return replace(stored, kind="manifest (checked with its images when you compare)")
    try:
        if role == "model" and suffix in MODEL_SUFFIXES:
            model = load_model(path)
            fmt = MODEL_FORMATS.get(type(model).__name__, "model")
            kind = f"{fmt}, {len(model.info.classes)} classes" + (", with embeddings" if model.has_embedding else "")
        elif role == "model":
            preds = load_predictions_table(path)
            kind = f"predictions table, {len(preds.ids)} rows, {len(preds.classes)} classes" + (
                ", with labels" if preds.labels is not None else ", no labels"
            )
        elif role == "dataset":
            ds = load_dataset(path)
            kind = f"zip of class folders: {len(ds)} images, {len(ds.classes)} classes"
        else:
            try:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
                    n = sum(1 for i in z.infolist() if not i.is_dir())
            except zipfile.BadZipFile:
                raise InputError(up.name, "not a valid zip archive") from None
            if bad is not None:
                raise InputError(up.name, f"corrupt member {bad!r} in the zip")
            kind = f"zip of {n} files"
    except InputError as e:
        if e.path is not None and os.path.abspath(e.path).startswith(str(folder)):
            rest = os.path.relpath(e.path, path) if os.path.abspath(e.path) != str(path) else ""
            shown = up.name if rest in ("", ".") else f"{up.name}/{rest}"
            raise InputError(shown, e.problem) from None
        raise
    return replace(stored, kind=kind)
