"""What to compare: bundled sample pairs and uploaded files, as a :class:`Spec`.

A spec names three paths on the server (old, new, optional dataset) and has a short
``id`` that goes into the URL (``?cmp=...``), so a link reopens the same comparison.
Uploads are written once under ``<cache>/app-uploads/<id>/`` (content-addressed) with
their original file names; :func:`spec_from_uploads` is the whole upload path, free of
Streamlit, so tests can drive it with bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

from graceful_core.cache import atomic_write_bytes, cache_dir
from graceful_core.errors import InputError
from graceful_core.io.datasets import load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.safezip import safe_extract
from graceful_core.io.samples import BundledSample, bundled_samples, sample_of_path
from graceful_core.io.tables import load_predictions_table
from graceful_core.vocabulary import MANIFEST_SUFFIXES, MODEL_SUFFIXES, TABLE_SUFFIXES, ZIP_SUFFIXES


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
        return _suffix(self.name)

    @property
    def is_model(self) -> bool:
        """A model file (not a predictions table, dataset or zip)."""
        return self.suffix in MODEL_SUFFIXES


def sample_data_dir() -> Path:
    """The bundled sample data: ``$GRACEFUL_SAMPLE_DATA`` or ``<repo>/sample_data``."""
    env = os.environ.get("GRACEFUL_SAMPLE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "sample_data"


#: Set by ``graceful app OLD NEW --data DATA`` (:func:`graceful_core.cli.commands.app_environment`).
CLI_ENV_OLD, CLI_ENV_NEW, CLI_ENV_DATA = "GRACEFUL_APP_OLD", "GRACEFUL_APP_NEW", "GRACEFUL_APP_DATA"


def cli_spec() -> Spec | None:
    """The pair named on ``graceful app OLD NEW [--data DATA]`` (environment variables), or None."""
    old, new = os.environ.get(CLI_ENV_OLD), os.environ.get(CLI_ENV_NEW)
    if not old or not new:
        return None
    data = os.environ.get(CLI_ENV_DATA) or None
    token = hashlib.sha256("\x00".join([old, new, data or ""]).encode()).hexdigest()[:16]
    label = f"{Path(old).name} → {Path(new).name}" + (f" on {Path(data).name}" if data else "") + " (command line)"
    return Spec(id=f"cli:{token}", label=label, old=old, new=new, data=data)


def _id_prefixes(sample: BundledSample) -> tuple[str, str, str]:
    """The id prefixes of a sample's model pairs, table pairs and other model pairs.

    digits keeps the ids links and tests already use (``sample:new``, ``table:new``,
    ``pair:new:v3``); every other sample prefixes its name (``fashion:new``,
    ``fashion-table:new``, ``fashion-pair:new:v3``).
    """
    if sample.name == "digits":
        return "sample", "table", "pair"
    return sample.name, f"{sample.name}-table", f"{sample.name}-pair"


def _sample_label(sample: BundledSample) -> str:
    """``digits/test (bundled)``, ``fashion/test (Fashion-MNIST, bundled)``."""
    return (
        f"{sample.data_label} (bundled)"
        if sample.name == "digits"
        else f"{sample.data_label} ({sample.title}, bundled)"
    )


def bundled_specs(root: Path | None = None) -> list[Spec]:
    """Every bundled pair that exists on disk: Fashion-MNIST's first (old.pt → new.pt, the default), then digits'.

    Per sample (:func:`graceful_core.io.samples.bundled_samples`): its old model against each
    other model of its models folder, run on its test data (new first), then its old
    predictions table against the other tables. The pair given to ``graceful app OLD NEW``
    (:func:`cli_spec`), if any, comes before all of them.
    """
    out: list[Spec] = [c for c in [cli_spec()] if c is not None and root is None]
    root = root or sample_data_dir()
    for sample in bundled_samples(root):
        out.extend(_sample_specs(sample))
    return out


def _sample_specs(sample: BundledSample) -> list[Spec]:
    model_p, table_p, _ = _id_prefixes(sample)
    data, on = sample.test_data, _sample_label(sample)
    out: list[Spec] = []
    old = sample.old_model()
    if old is not None:
        for p in sample.models():
            if p != old:
                out.append(
                    Spec(
                        id=f"{model_p}:{p.stem}",
                        label=f"{old.name} → {p.name} on {on}",
                        old=str(old),
                        new=str(p),
                        data=str(data),
                    )
                )
    tables = sample.tables()
    for o in (t for t in tables if t.stem == sample.old):
        for p in tables:
            if p.stem != sample.old:
                out.append(
                    Spec(
                        id=f"{table_p}:{p.stem}",
                        label=f"tables {o.name} → {p.name} on {on}",
                        old=str(o),
                        new=str(p),
                        data=str(data),
                    )
                )
    return out


def bundled_sample(name: str, root: Path | None = None) -> BundledSample | None:
    """The bundled sample called ``name`` (``"fashion"``, ``"digits"``) if it is on disk, else None."""
    return next((s for s in bundled_samples(root or sample_data_dir()) if s.name == name), None)


def spec_sample(spec: Spec | None, root: Path | None = None) -> BundledSample | None:
    """The bundled sample a comparison belongs to (by its new, old or data path), or None (uploads)."""
    if spec is None:
        return None
    samples = bundled_samples(root or sample_data_dir())
    for path in (spec.new, spec.old, spec.data):
        s = None if path is None else sample_of_path(path, samples)
        if s is not None:
            return s
    return None


def pair_spec(old_stem: str, new_stem: str, root: Path | None = None, sample: str = "digits") -> Spec | None:
    """Any two models of a bundled sample (by file stem) on its test data; None if either is missing.

    The old model against another model is the bundled spec (``sample:<stem>`` on digits,
    ``fashion:<stem>`` on Fashion-MNIST); other pairs get the id ``pair:<old stem>:<new stem>``
    (``fashion-pair:...``; the Versions page opens them). Stems are matched against the
    files in the sample's models folder, never joined into a path.
    """
    s = bundled_sample(sample, root)
    if s is None:
        return None
    files = {p.stem: p for p in s.models()}
    if old_stem not in files or new_stem not in files:
        return None
    model_p, _, pair_p = _id_prefixes(s)
    if old_stem == s.old and new_stem != s.old:
        return next((x for x in _sample_specs(s) if x.id == f"{model_p}:{new_stem}"), None)
    o, n = files[old_stem], files[new_stem]
    return Spec(
        id=f"{pair_p}:{old_stem}:{new_stem}",
        label=f"{o.name} → {n.name} on {_sample_label(s)}",
        old=str(o),
        new=str(n),
        data=str(s.test_data),
    )


def _pair_of_id(spec_id: str) -> Spec | None:
    """``pair:a:b`` (digits) or ``<sample>-pair:a:b`` as a spec, or None."""
    head, _, rest = spec_id.partition(":")
    if rest.count(":") != 1:
        return None
    name = "digits" if head == "pair" else head[: -len("-pair")] if head.endswith("-pair") else None
    if name is None:
        return None
    return pair_spec(*rest.split(":"), sample=name)


def uploads_dir() -> Path:
    """Where uploads are kept: ``<cache>/app-uploads`` (created)."""
    d = cache_dir() / "app-uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolve_spec(spec_id: str | None) -> Spec | None:
    """The spec behind a URL id (bundled or an earlier upload), or None if unknown."""
    if not spec_id:
        return None
    if spec_id.endswith(RESEED_MARK):  # a bundled pair with its old model's reseed as reference
        base = resolve_spec(spec_id[: -len(RESEED_MARK)])
        ref = None if base is None else bundled_reference(base)
        return None if ref is None else with_reference(base, ref)
    for s in bundled_specs():
        if s.id == spec_id:
            return s
    if spec_id.startswith(TRAINED_PREFIX):
        return _trained_spec(spec_id[len(TRAINED_PREFIX) :])
    if spec_id.count(":") == 2:
        return _pair_of_id(spec_id)
    if spec_id.startswith("upload:"):
        token = spec_id.split(":", 1)[1]
        if not token.isalnum():
            return None
        f = uploads_dir() / token / "spec.json"
        if f.is_file():
            d = json.loads(f.read_text())
            d["names"] = tuple(tuple(x) for x in d["names"])
            return Spec(**d)
    return None


#: Appended to a spec's id when the old model's reseed is its reference (:func:`with_reference`).
RESEED_MARK = "+reseed"
#: The reference of an old model ``<stem>.<suffix>`` is ``<stem>-reseed.*`` next to it (the bundled samples).
RESEED_SUFFIX = "-reseed"


def bundled_reference(spec: Spec) -> str | None:
    """The retrain of ``spec``'s old model shipped next to it (``old-reseed.pt`` for ``old.pt``), or None.

    A file in the old model's folder whose stem is the old stem + ``-reseed``: a model file
    for a model, a predictions table for a table. Uploaded pairs have none (they upload
    their reference). Found by listing the folder, never by joining a path from the URL.
    """
    if spec.reference is not None or spec.id.startswith("upload:"):
        return None
    old = Path(spec.old)
    if not old.parent.is_dir():
        return None
    kinds = MODEL_SUFFIXES if old.suffix.lower() in MODEL_SUFFIXES else TABLE_SUFFIXES
    for p in sorted(old.parent.iterdir()):
        if p.stem == old.stem + RESEED_SUFFIX and p.suffix.lower() in kinds and p.is_file():
            return str(p)
    return None


def with_reference(spec: Spec, reference: str) -> Spec:
    """``spec`` with ``reference`` (a bundled reseed, :func:`bundled_reference`): id + :data:`RESEED_MARK`."""
    return replace(
        spec, id=spec.id + RESEED_MARK, label=f"{spec.label} · reference {Path(reference).name}", reference=reference
    )


TRAINED_PREFIX = "trained:"


def trained_models_dir() -> Path:
    """Where trained updates live: ``<cache>/models`` (content-addressed ``.pt`` files)."""
    return cache_dir() / "models"


def trained_spec(model: str | os.PathLike, old: str, data: str) -> Spec:
    """The spec comparing ``old`` with a trained model of :func:`trained_models_dir` on ``data``.

    Its id is ``trained:<file stem>``; the old model and dataset are remembered in
    ``<stem>.spec.json`` next to the model, so :func:`resolve_spec` finds them from a link.
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


def _trained_spec(stem: str) -> Spec | None:
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


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else "upload"


def _check_suffix(up: Upload | StoredFile, allowed: tuple[str, ...], what: str) -> None:
    if _suffix(up.name) not in allowed:
        hint = ""
        if _suffix(up.name) in MODEL_SUFFIXES + TABLE_SUFFIXES and not set(allowed) & set(MODEL_SUFFIXES):
            hint = ": a model file or predictions table goes in the Old or New slot"
        elif _suffix(up.name) in ZIP_SUFFIXES + MANIFEST_SUFFIXES:
            hint = ": a dataset goes in the Dataset slot"
        raise InputError(
            up.name, f"expected {what} ({', '.join(allowed)}), got a '{_suffix(up.name) or 'no suffix'}' file{hint}"
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
    path = uploads_dir() / "files" / sha[:20] / _safe_name(up.name)
    if not path.is_file():
        atomic_write_bytes(path, up.data)
    return StoredFile(name=up.name, path=str(path), sha256=sha, size=len(up.data))


def server_file(path: str | os.PathLike, name: str | None = None) -> StoredFile:
    """A file already on the server (a bundled or trained model) as a :class:`StoredFile`."""
    p = Path(path)
    return StoredFile(name=name or p.name, path=str(p), sha256=file_sha256(p), size=p.stat().st_size)


def _extract_zip(up: Upload | StoredFile, zpath: Path, dest: Path) -> None:
    """Extract an uploaded zip with the core's checks (:func:`graceful_core.io.safezip.safe_extract`:
    every member checked first, no absolute paths, '..' or links, bounded count and real
    size); errors name the uploaded file."""
    try:
        safe_extract(zpath, dest)
    except InputError as e:
        raise InputError(up.name, e.problem) from None


def _check_set(
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
    needs_data = any(_suffix(u.name) in MODEL_SUFFIXES for u in sides)
    if dataset is None and needs_data:
        name = next(u.name for u in sides if _suffix(u.name) in MODEL_SUFFIXES)
        raise InputError(name, "a model file needs a dataset to run on: upload a .zip of class folders")
    if dataset is not None:
        _check_suffix(dataset, ROLE_SUFFIXES["dataset"], ROLE_WHAT["dataset"])
        if _suffix(dataset.name) in MANIFEST_SUFFIXES and images is None:
            raise InputError(dataset.name, "a manifest needs the zip of its images: upload it as well")
    if images is not None:
        _check_suffix(images, ROLE_SUFFIXES["images"], ROLE_WHAT["images"])


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
    _check_set(old, new, dataset, images, reference)
    stored = [None if up is None else store_file(up) for up in (old, new, dataset, images, reference)]
    return spec_from_files(*stored)


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
    _check_set(old, new, dataset, images, reference)
    h = hashlib.sha256()
    for f in (old, new, dataset, images):
        h.update(b"\x00" if f is None else bytes.fromhex(f.sha256) + _safe_name(f.name).encode())
    if reference is not None:
        h.update(b"reference\x00" + bytes.fromhex(reference.sha256) + _safe_name(reference.name).encode())
    token = h.hexdigest()[:20]
    root = uploads_dir() / token
    spec_file = root / "spec.json"
    names: list[tuple[str, str]] = [(old.path, old.name), (new.path, new.name)]
    data_p = None if dataset is None else dataset.path
    if dataset is not None:
        names.append((dataset.path, dataset.name))
    if dataset is not None and images is not None and _suffix(dataset.name) in MANIFEST_SUFFIXES:
        # a manifest and the zip of its images, side by side in the spec's folder
        manifest = root / "data" / _safe_name(dataset.name)
        if not manifest.is_file():
            atomic_write_bytes(manifest, Path(dataset.path).read_bytes())
        marker = root / "data" / ".extracted"
        if not marker.is_file():
            _extract_zip(images, Path(images.path), root / "data")
            marker.write_text("ok")
        data_p = str(manifest)
        names[-1] = (data_p, dataset.name)
        names.append((str(root / "data"), images.name))
    if reference is not None:
        names.append((reference.path, reference.name))
    spec = Spec(
        id=f"upload:{token}",
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
        h.update(bytes.fromhex(f.sha256) + _safe_name(f.name).encode() + b"\x00")
    h.update((data or "").encode())
    token = h.hexdigest()[:20]
    label = f"{old.name} → {new.name}" + (f" on {data_name or Path(data).name}" if data else "")
    spec = Spec(
        id=f"upload:{token}",
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


def user_message(err: InputError, spec: Spec | None) -> str:
    """``err.message`` with server paths replaced by the names the user uploaded."""
    if spec is None or err.path is None:
        return err.message
    return f"{spec.display_name(err.path)}: {err.problem}"


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
    from graceful_core.models.loader import load_model

    if role not in ROLE_SUFFIXES:
        raise ValueError(f"role must be one of {sorted(ROLE_SUFFIXES)}, got {role!r}")
    _check_suffix(up, ROLE_SUFFIXES[role], ROLE_WHAT[role])
    stored = store_file(up)
    path = Path(stored.path)
    folder = path.parent
    suffix = _suffix(up.name)
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
