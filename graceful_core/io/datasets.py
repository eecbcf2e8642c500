"""Labelled image sets: a folder of class subfolders, a zip of one, or a manifest (``docs/formats.md``).

:func:`load_dataset` lists the images and their labels without decoding any image;
pixels are decoded one at a time by :meth:`ImageDataset.load_image` (with the bomb
guard of :mod:`graceful_core.io.images`). A sample's id is its path relative to the
dataset's root with ``/`` separators (for a manifest: its ``id`` column).

Layouts
-------
- folder: ``root/<class>/<image>`` (deeper subfolders allowed; the first component is
  the class). Image suffixes: :data:`IMAGE_SUFFIXES`. Hidden files/folders and other
  files are ignored. An optional ``root/slices.csv`` (columns ``id``, ``slice``) assigns
  samples to slices; unlisted samples get the slice :data:`NO_SLICE`. An optional
  ``root/classes.json`` (:data:`CLASSES_FILE`), a JSON object ``{"<folder>": "<class
  name>", ...}``, gives class names that cannot be folder names (``"t-shirt-top":
  "T-shirt/top"``): every class folder must be listed, names must be unique and non-empty,
  and the classes follow the object's order (listed folders without images are left out).
  Ids stay paths (``t-shirt-top/00000.png``).
- zip: a ``.zip`` of such a folder (a single top-level folder holding the class
  folders is allowed). Checked by :func:`graceful_core.io.safezip.check_zip`, then
  extracted once to ``<cache>/datasets/<sha256 of the zip>`` (temp folder + atomic
  rename), so loading it again is free. Messages name ``<zip>/<member>``.
- manifest: ``.csv``/``.parquet`` with columns ``id``, ``path`` (relative to the
  manifest's folder, which it must not leave), ``label`` (class name) and an optional
  ``slice``. ``id``, ``path`` and ``label`` are read as strings; every other column
  (``slice`` included) is kept as typed per-sample metadata
  (:class:`~graceful_core.io.metadata.SampleMetadata`: a Parquet column keeps its type,
  a CSV column is numeric when every non-empty cell is a number).

Classes are sorted naturally (:func:`natural_key`): ``"2" < "10"``, numbers before words.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from graceful_core.cache import cache_dir
from graceful_core.errors import InputError
from graceful_core.io.hashing import file_sha256
from graceful_core.io.images import open_image
from graceful_core.io.metadata import SampleMetadata, typed_text_column
from graceful_core.io.safezip import safe_extract
from graceful_core.vocabulary import MANIFEST_SUFFIXES, ZIP_SUFFIXES

#: File suffixes taken as images (lower case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Optional slice file at a folder dataset's root.
SLICES_FILE = "slices.csv"
#: Optional class-name file at a folder dataset's root: ``{"<folder>": "<class name>"}``.
CLASSES_FILE = "classes.json"
#: Slice of samples a slice file or column does not assign.
NO_SLICE = "(none)"
#: Folders that archivers add and that are never class folders.
_JUNK_DIRS = frozenset({"__MACOSX"})
_HASH_FORMAT = b"graceful-dataset-content-v1"
_READ_BLOCK = 1 << 20

_DIGIT_RUNS = re.compile(r"([0-9]+)")


# --------------------------------------------------------------------------- names
def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by number: ``"2" < "10"``, ``"img2" < "img10"``.

    ``re.split`` on digit runs alternates text and digits, so position i of two keys
    always holds the same type; text compares case-insensitively, and the name itself
    breaks ties (``"7"`` vs ``"007"``). Names that start with a digit sort before words.
    """
    parts = _DIGIT_RUNS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def natural_sorted(names) -> list[str]:
    """``sorted(names, key=natural_key)`` as a list of str."""
    return sorted((str(n) for n in names), key=natural_key)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in _JUNK_DIRS


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


# --------------------------------------------------------------------------- dataset
@dataclass(eq=False)
class ImageDataset:
    """A labelled list of image files; pixels are decoded only by :meth:`load_image`.

    Attributes
    ----------
    name : str
        Short display name (folder, zip or manifest stem).
    ids : list of str
        Unique sample ids (path relative to the root with ``/`` separators, or the
        manifest's ``id``).
    labels : np.ndarray
        int64 indices into ``classes``.
    classes : list of str
        Class names.
    files : list of str
        Absolute paths of the image files, aligned with ``ids``.
    slices : np.ndarray or None
        Slice name per sample (object array of str), if the dataset defines slices.
    metadata : SampleMetadata or None
        Per-sample metadata aligned with ``ids``: a manifest's columns other than ``id``,
        ``path`` and ``label``, or ``slice`` from a folder's ``slices.csv``.
    source : str
        What the user named (folder, zip or manifest), for messages.
    display_root : (str, str) or None
        ``(root, shown)``: files under the absolute folder ``root`` are called
        ``shown/<rest>`` in messages (e.g. ``digits.zip/0/12.png`` for an extracted zip).
    """

    name: str
    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    files: list[str]
    slices: np.ndarray | None = None
    source: str = ""
    metadata: SampleMetadata | None = field(default=None, repr=False)
    display_root: tuple[str, str] | None = field(default=None, repr=False)
    _content_hash: str | None = field(default=None, init=False, repr=False)
    _rows: dict[str, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.classes = [str(c) for c in self.classes]
        self.files = [os.fspath(f) for f in self.files]
        n = len(self.ids)
        if self.labels.shape[0] != n or len(self.files) != n:
            raise ValueError(
                f"ids ({n}), labels ({self.labels.shape[0]}) and files ({len(self.files)}) differ in length"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError("labels must index into classes")
        if self.slices is not None:
            self.slices = np.asarray(self.slices, dtype=object).reshape(-1)
            if self.slices.shape[0] != n:
                raise ValueError(f"slices ({self.slices.shape[0]}) and ids ({n}) differ in length")
        if self.metadata is not None and len(self.metadata) != n:
            raise ValueError(f"metadata ({len(self.metadata)} rows) and ids ({n}) differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    def shown_path(self, i: int) -> str:
        """What messages call the file of sample ``i`` (see ``display_root``)."""
        return _shown(self.files[i], self.display_root)

    def load_image(self, i: int) -> Image.Image:
        """Decode sample ``i`` ("L" or "RGB"); InputError naming its file if it is bad."""
        return open_image(self.files[i], name=self.shown_path(i))

    def row_of(self, sample_id: str) -> int | None:
        """The index of the sample with this id, or None (the id index is built once)."""
        if self._rows is None:
            self._rows = {sid: i for i, sid in enumerate(self.ids)}
        return self._rows.get(str(sample_id))

    def content_hash(self) -> str:
        """SHA-256 (hex) over every sample's id, label name and image bytes; memoised.

        Formula: ``sha256(F || for i in argsort(ids): u(id_i) || u(classes[y_i]) ||
        u64(size_i) || bytes_i  [|| "slices" || u(slice_i) for i in the same order])``,
        where ``u(s)`` is the UTF-8 bytes of ``s`` prefixed by their length (8 bytes,
        little-endian) and ``F`` a format tag. Each file is streamed once into the one
        hash. It changes when any image byte, label, id or slice changes, and not with
        the order of samples or of the class list.
        """
        if self._content_hash is None:
            self._content_hash = _content_hash(self)
        return self._content_hash


def _u(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return len(b).to_bytes(8, "little") + b


def _shown(path: str, display_root: tuple[str, str] | None) -> str:
    if display_root is None:
        return path
    root, shown = display_root
    if path == root:
        return shown
    if path.startswith(root.rstrip(os.sep) + os.sep):
        rest = path[len(root.rstrip(os.sep)) + 1 :].replace(os.sep, "/")
        return f"{shown.rstrip('/')}/{rest}" if shown else rest
    return path


def _content_hash(ds: ImageDataset) -> str:
    h = hashlib.sha256(_HASH_FORMAT)
    order = sorted(range(len(ds.ids)), key=ds.ids.__getitem__)
    for i in order:
        h.update(_u(ds.ids[i]))
        h.update(_u(ds.classes[int(ds.labels[i])]))
        try:
            with open(ds.files[i], "rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(size.to_bytes(8, "little"))
                while block := f.read(_READ_BLOCK):
                    h.update(block)
        except FileNotFoundError:
            raise InputError(ds.shown_path(i), "no such file") from None
        except OSError as e:
            raise InputError(ds.shown_path(i), f"cannot be read ({e.strerror or type(e).__name__})") from None
    if ds.slices is not None:
        h.update(b"slices")
        for i in order:
            h.update(_u(str(ds.slices[i])))
    return h.hexdigest()


def _from_samples(
    name: str,
    samples: list[tuple[str, str, str]],
    source: str,
    display_root: tuple[str, str] | None,
    slices: list[str] | None = None,
    metadata: SampleMetadata | None = None,
    class_order: list[str] | None = None,
) -> ImageDataset:
    """Build a dataset from ``(id, class name, absolute file)`` triples.

    Classes are sorted naturally, or follow ``class_order`` (which must hold every class).
    """
    present = {c for _, c, _ in samples}
    classes = natural_sorted(present) if class_order is None else [c for c in class_order if c in present]
    pos = {c: k for k, c in enumerate(classes)}
    return ImageDataset(
        name=name,
        ids=[s[0] for s in samples],
        labels=np.fromiter((pos[s[1]] for s in samples), dtype=np.int64, count=len(samples)),
        classes=classes,
        files=[s[2] for s in samples],
        slices=None if slices is None else np.asarray(slices, dtype=object),
        source=source,
        metadata=metadata,
        display_root=display_root,
    )


# --------------------------------------------------------------------------- folder
def scan_class_folders(root: str) -> list[tuple[str, str, str]]:
    """``(id, class, absolute file)`` of every image under ``root/<class>/``, sorted.

    Order: classes naturally, then ids within a class. Hidden entries and non-image
    files are skipped; files directly in ``root`` are not samples.
    """
    root = os.path.abspath(root)
    out: list[tuple[str, str, str]] = []
    with os.scandir(root) as it:
        class_dirs = [e.name for e in it if not _is_hidden(e.name) and e.is_dir()]
    for cls in natural_sorted(class_dirs):
        found: list[tuple[str, str, str]] = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, cls)):
            dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
            for f in filenames:
                if _is_image_name(f):
                    full = os.path.join(dirpath, f)
                    found.append((os.path.relpath(full, root).replace(os.sep, "/"), cls, full))
        found.sort(key=lambda s: natural_key(s[0]))
        out.extend(found)
    return out


def _read_slices_file(path: str, shown: str, ids: list[str]) -> list[str]:
    """Slice per id from a ``slices.csv`` (``id``, ``slice``); unlisted ids get :data:`NO_SLICE`."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputError(
            shown, f"not a readable CSV file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    missing = [c for c in ("id", "slice") if c not in df.columns]
    if missing:
        raise InputError(shown, f"missing column(s) {missing}: a slice file needs 'id' and 'slice'")
    sid = df["id"].astype(str)
    dup = sid.loc[sid.duplicated()]
    if len(dup):
        raise InputError(shown, f"id {dup.iloc[0]!r} appears more than once")
    known = set(ids)
    unknown = [i for i in sid if i not in known]
    if unknown:
        raise InputError(shown, f"id {unknown[0]!r} is not an image of the dataset")
    mapping = dict(zip(sid, df["slice"].astype(str)))
    return [mapping.get(i) or NO_SLICE for i in ids]


def _read_classes_file(path: str, shown: str, folders: set[str]) -> dict[str, str]:
    """``{folder: class name}`` from a ``classes.json``, in the file's order, validated.

    Raises
    ------
    InputError
        Not UTF-8 JSON, not an object of non-empty strings, a repeated class name, or a
        class folder of the dataset that the file does not list (all name ``shown``).
    """
    import json

    class _Pairs(list):  # a JSON object's (key, value) pairs in file order (a JSON array stays a list)
        pass

    try:
        with open(path, encoding="utf-8") as f:
            mapping = json.load(f, object_pairs_hook=_Pairs)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(
            shown, f"not a readable JSON file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if not isinstance(mapping, _Pairs):
        raise InputError(shown, 'expected a JSON object {"<class folder>": "<class name>", ...}')
    out: dict[str, str] = {}
    for folder, cls in mapping:
        if not isinstance(cls, str) or not cls.strip():
            raise InputError(shown, f"class folder {folder!r}: the class name must be a non-empty string, got {cls!r}")
        if folder in out:
            raise InputError(shown, f"class folder {folder!r} is listed more than once")
        out[folder] = cls
    seen: dict[str, str] = {}
    for folder, cls in out.items():
        if cls in seen:
            raise InputError(shown, f"class name {cls!r} is given to both {seen[cls]!r} and {folder!r}")
        seen[cls] = folder
    missing = natural_sorted(folders - out.keys())
    if missing:
        raise InputError(shown, f"class folder {missing[0]!r} is not listed (every class folder needs a name)")
    return out


def load_folder(
    root: str | os.PathLike,
    source: str | None = None,
    display_root: tuple[str, str] | None = None,
    name: str | None = None,
) -> ImageDataset:
    """A dataset from a folder in the class-per-subfolder layout (see module docs).

    ``source`` (default: ``root``) is the path errors name; ``display_root`` maps files
    to shown names.
    """
    root_s = os.path.abspath(os.fspath(root))
    source = os.fspath(root) if source is None else source
    if display_root is None:
        display_root = (root_s, os.fspath(root))
    samples = scan_class_folders(root_s)
    if not samples:
        raise InputError(source, "no images found (expected class subfolders: <folder>/<class>/<image>)")
    class_order = None
    cfile = os.path.join(root_s, CLASSES_FILE)
    if os.path.isfile(cfile):
        names = _read_classes_file(cfile, _shown(cfile, display_root), {s[1] for s in samples})
        samples = [(i, names[c], f) for i, c, f in samples]
        class_order = list(names.values())
    slices = None
    sfile = os.path.join(root_s, SLICES_FILE)
    if os.path.isfile(sfile):
        slices = _read_slices_file(sfile, _shown(sfile, display_root), [s[0] for s in samples])
    stem = name or os.path.basename(os.path.normpath(os.fspath(root))) or "dataset"
    metadata = None if slices is None else SampleMetadata(("slice",), (np.asarray(slices, dtype=object),))
    return _from_samples(stem, samples, source, display_root, slices, metadata, class_order)


# --------------------------------------------------------------------------- zip
def _single_top_folder(folder: str) -> str | None:
    """The only visible entry of ``folder`` if it is a folder that holds subfolders.

    ``digits/<class>/<image>`` is stripped to ``<class>/<image>``; a zip of one class
    folder (``0/<image>``, no subfolders) is not.
    """
    with os.scandir(folder) as it:
        entries = [e for e in it if not _is_hidden(e.name)]
    if len(entries) != 1 or not entries[0].is_dir():
        return None
    with os.scandir(entries[0].path) as it:
        inner = [e for e in it if not _is_hidden(e.name)]
    if not any(e.is_dir() for e in inner):
        return None
    return entries[0].name


def extract_zip_to_cache(path: str | os.PathLike) -> str:
    """Extract a zip once into ``<cache>/datasets/<sha256 of the zip>``; return that folder.

    The archive is checked (:func:`graceful_core.io.safezip.check_zip`) and extracted into
    a temporary folder next to the target, which is then renamed into place atomically;
    an existing target (same bytes seen before) is reused without reading the zip again.
    """
    digest = file_sha256(path)
    base = cache_dir() / "datasets"
    base.mkdir(parents=True, exist_ok=True)
    final = base / digest
    if final.is_dir():
        return str(final)
    tmp = tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=base)
    try:
        safe_extract(path, tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(final)


def load_zip(path: str | os.PathLike) -> ImageDataset:
    """A dataset from a ``.zip`` of a class-per-subfolder folder (see module docs)."""
    source = os.fspath(path)
    folder = extract_zip_to_cache(path)
    top = _single_top_folder(folder)
    root = os.path.join(folder, top) if top else folder
    shown = f"{source}/{top}" if top else source
    return load_folder(root, source=source, display_root=(os.path.abspath(root), shown), name=Path(source).stem)


# --------------------------------------------------------------------------- manifest
def _read_manifest_frame(path: str):
    """The manifest as a DataFrame of str columns (empty cells are ""), and its metadata.

    The metadata are the columns other than ``id``, ``path`` and ``label``, typed: a
    Parquet column keeps its type, a CSV column is typed by :func:`typed_text_column`.
    """
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            df.columns = [str(c).strip() for c in df.columns]
            extra = [c for c in df.columns if c not in _MANIFEST_COLUMNS]
            meta = (
                SampleMetadata(tuple(extra), tuple(typed_text_column(df[c].tolist()) for c in extra))
                if extra and not df.columns.duplicated().any()
                else None
            )
            return df, meta
        import pyarrow.parquet as pq

        df = pq.read_table(path).to_pandas()
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except Exception as e:  # noqa: BLE001 - any parser failure means "not a readable table"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(path, f"not a readable {suffix.lstrip('.')} table ({msg})") from None
    df.columns = pd.Index([str(c).strip() for c in df.columns])
    extra = [c for c in df.columns if c not in _MANIFEST_COLUMNS]
    meta = (
        SampleMetadata.from_frame(df[extra], skip_reserved=False)
        if extra and not df.columns.duplicated().any()
        else None
    )
    for c in df.columns:
        df[c] = df[c].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return df, meta


#: A manifest's own columns; every other column is per-sample metadata.
_MANIFEST_COLUMNS = ("id", "path", "label")


def load_manifest(path: str | os.PathLike) -> ImageDataset:
    """A dataset from a CSV/Parquet manifest with ``id``, ``path``, ``label`` [, ``slice``]."""
    source = os.fspath(path)
    df, metadata = _read_manifest_frame(source)
    if df.columns.duplicated().any():
        raise InputError(source, f"the column {df.columns[df.columns.duplicated()][0]!r} appears more than once")
    missing = [c for c in ("id", "path", "label") if c not in df.columns]
    if missing:
        raise InputError(source, f"missing column(s) {missing}: a manifest needs 'id', 'path' and 'label'")
    if len(df) == 0:
        raise InputError(source, "no images found (the manifest has no rows)")
    ids = df["id"].astype(str).tolist()
    rel = df["path"].astype(str).tolist()
    labels = df["label"].astype(str).tolist()
    for col, values in (("id", ids), ("path", rel), ("label", labels)):
        empty = [k for k, v in enumerate(values) if not v.strip()]
        if empty:
            raise InputError(source, f"row {empty[0] + 2}: empty '{col}'")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise InputError(source, f"duplicate id {i!r}")
        seen.add(i)
    base = os.path.abspath(os.path.dirname(source) or ".")
    files: list[str] = []
    for i, p in zip(ids, rel):
        full = os.path.normpath(os.path.join(base, p))
        if os.path.commonpath([base, full]) != base:
            raise InputError(source, f"id {i!r}: path {p!r} leaves the manifest's folder")
        if not os.path.isfile(full):
            raise InputError(source, f"id {i!r}: image file {p!r} does not exist")
        files.append(full)
    slices = None
    if "slice" in df.columns:
        slices = [s if s.strip() else NO_SLICE for s in df["slice"].astype(str)]
    display_root = (base, os.path.dirname(source))
    return _from_samples(Path(source).stem, list(zip(ids, labels, files)), source, display_root, slices, metadata)


# --------------------------------------------------------------------------- entry points
def load_dataset(path: str | os.PathLike) -> ImageDataset:
    """Load a labelled image set: folder, ``.zip`` of one, or CSV/Parquet manifest.

    Parameters
    ----------
    path : str or os.PathLike
        The dataset as the user named it.

    Returns
    -------
    ImageDataset
        Images listed, not decoded.

    Raises
    ------
    InputError
        Missing path; not a folder, zip or manifest; no images; unsafe or broken zip;
        manifest without ``id``/``path``/``label``, with a duplicate id, a path leaving
        its folder or a missing image file; a bad ``slices.csv`` or ``classes.json``.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(p, "no such file or folder")
    if os.path.isdir(p):
        return load_folder(p)
    suffix = Path(p).suffix.lower()
    if suffix in ZIP_SUFFIXES:
        return load_zip(p)
    if suffix in MANIFEST_SUFFIXES:
        return load_manifest(p)
    raise InputError(
        p, "not a dataset: expected a folder of class subfolders, a .zip of one, or a .csv/.parquet manifest"
    )


def align_classes(dataset: ImageDataset, model_classes: list[str]) -> ImageDataset:
    """Re-index ``dataset``'s labels onto ``model_classes`` (a model's class list).

    Returns ``dataset`` itself when the lists are equal, else a new dataset with
    ``classes = model_classes`` and ``labels[i] = model_classes.index(old name)``
    (the content hash carries over: it depends on label names, not indices).

    Raises
    ------
    InputError
        A class of the dataset is not among ``model_classes`` (names ``dataset.source``).
    """
    model_classes = [str(c) for c in model_classes]
    if list(dataset.classes) == model_classes:
        return dataset
    pos = {c: k for k, c in enumerate(model_classes)}
    missing = [c for c in dataset.classes if c not in pos]
    if missing:
        shown = model_classes if len(model_classes) <= 20 else model_classes[:20] + ["..."]
        raise InputError(
            dataset.source or dataset.name,
            f"class names differ from the model's: dataset has {missing[:10]} not in the model's classes {shown}",
        )
    perm = np.array([pos[c] for c in dataset.classes], dtype=np.int64)
    out = ImageDataset(
        name=dataset.name,
        ids=dataset.ids,
        labels=perm[dataset.labels] if len(dataset) else dataset.labels,
        classes=model_classes,
        files=dataset.files,
        slices=dataset.slices,
        source=dataset.source,
        metadata=dataset.metadata,
        display_root=dataset.display_root,
    )
    out._content_hash = dataset._content_hash
    return out
