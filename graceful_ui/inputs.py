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
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from graceful_core.cache import atomic_write_bytes, cache_dir
from graceful_core.errors import InputError
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

    def display_name(self, path: str | None) -> str | None:
        """The user-facing name of a server path (the uploaded file's name)."""
        if path is None:
            return None
        for server, shown in self.names:
            if path == server:
                return shown
            if path.startswith(server.rstrip("/") + "/"):
                return shown + path[len(server.rstrip("/")):]
        return path


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its original name and its bytes."""

    name: str
    data: bytes


def sample_data_dir() -> Path:
    """The bundled sample data: ``$GRACEFUL_SAMPLE_DATA`` or ``<repo>/sample_data``."""
    env = os.environ.get("GRACEFUL_SAMPLE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "sample_data"


#: Set by ``graceful app OLD NEW --data DATA`` (:func:`graceful_core.cli.app_environment`).
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


def bundled_specs(root: Path | None = None) -> list[Spec]:
    """Every bundled pair that exists on disk, the default (old vs new) first.

    Model pairs: ``models/old.pt`` against each other model in ``models/``, run on
    ``digits/test``. Table pairs: ``predictions/old.*`` against the other tables. The pair
    given to ``graceful app OLD NEW`` (:func:`cli_spec`), if any, comes before all of them.
    """
    out: list[Spec] = [c for c in [cli_spec()] if c is not None and root is None]
    root = root or sample_data_dir()
    data = root / "digits" / "test"
    models = root / "models"
    old = models / "old.pt"
    if old.is_file() and data.is_dir():
        others = sorted(p for p in models.iterdir() if p.suffix in MODEL_SUFFIXES and p.name != "old.pt")
        others.sort(key=lambda p: (p.name != "new.pt", p.name))
        for p in others:
            out.append(Spec(id=f"sample:{p.stem}", label=f"old.pt → {p.name} on digits/test (bundled)",
                            old=str(old), new=str(p), data=str(data)))
    preds = root / "predictions"
    if preds.is_dir():
        tables = sorted(p for p in preds.iterdir() if p.suffix in TABLE_SUFFIXES)
        olds = [p for p in tables if p.stem == "old"]
        for o in olds:
            for p in tables:
                if p.stem != "old":
                    out.append(Spec(id=f"table:{p.stem}", label=f"tables {o.name} → {p.name} (bundled)",
                                    old=str(o), new=str(p), data=str(data) if data.is_dir() else None))
    return out


PAIR_PREFIX = "pair:"


def pair_spec(old_stem: str, new_stem: str, root: Path | None = None) -> Spec | None:
    """Any two bundled models (by file stem) on ``digits/test``; None if either is missing.

    ``old.pt`` against another model is the bundled spec (``sample:<stem>``); other pairs
    get the id ``pair:<old stem>:<new stem>`` (the Versions page opens them). Stems are
    matched against the files in ``models/``, never joined into a path.
    """
    root = root or sample_data_dir()
    data, models = root / "digits" / "test", root / "models"
    if not (data.is_dir() and models.is_dir()):
        return None
    files = {p.stem: p for p in sorted(models.iterdir()) if p.suffix in MODEL_SUFFIXES and p.is_file()}
    if old_stem not in files or new_stem not in files:
        return None
    if old_stem == "old" and new_stem != "old":
        return next((s for s in bundled_specs(root) if s.id == f"sample:{new_stem}"), None)
    o, n = files[old_stem], files[new_stem]
    return Spec(id=f"{PAIR_PREFIX}{old_stem}:{new_stem}", label=f"{o.name} → {n.name} on digits/test (bundled)",
                old=str(o), new=str(n), data=str(data))


def uploads_dir() -> Path:
    """Where uploads are kept: ``<cache>/app-uploads`` (created)."""
    d = cache_dir() / "app-uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def resolve_spec(spec_id: str | None) -> Spec | None:
    """The spec behind a URL id (bundled or an earlier upload), or None if unknown."""
    if not spec_id:
        return None
    for s in bundled_specs():
        if s.id == spec_id:
            return s
    if spec_id.startswith(TRAINED_PREFIX):
        return _trained_spec(spec_id[len(TRAINED_PREFIX):])
    if spec_id.startswith(PAIR_PREFIX) and spec_id.count(":") == 2:
        return pair_spec(*spec_id[len(PAIR_PREFIX):].split(":"))
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
    spec = Spec(id=f"{TRAINED_PREFIX}{model.stem}", label=f"{Path(old).name} → {model.name} on "
                f"{Path(data).parent.name}/{Path(data).name} (trained)", old=str(old), new=str(model), data=str(data))
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
        return Spec(id=f"{TRAINED_PREFIX}{stem}", label=str(d["label"]), old=str(d["old"]), new=str(model),
                    data=str(d["data"]))
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _safe_name(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name
    return base if base not in ("", ".", "..") else "upload"


def _check_suffix(up: Upload, allowed: tuple[str, ...], what: str) -> None:
    if _suffix(up.name) not in allowed:
        raise InputError(up.name, f"expected {what} ({', '.join(allowed)}), got a '{_suffix(up.name) or 'no suffix'}' file")
    if not up.data:
        raise InputError(up.name, "the file is empty")


def _extract_zip(up: Upload, zpath: Path, dest: Path) -> None:
    """Extract an uploaded zip with the core's checks (:func:`graceful_core.io.safezip.safe_extract`:
    every member checked first, no absolute paths, '..' or links, bounded count and real
    size); errors name the uploaded file."""
    from graceful_core.io.safezip import safe_extract

    try:
        safe_extract(zpath, dest)
    except InputError as e:
        raise InputError(up.name, e.problem) from None


def spec_from_uploads(old: Upload, new: Upload, dataset: Upload | None = None,
                      images: Upload | None = None) -> Spec:
    """Store uploaded files and return the :class:`Spec` that compares them.

    Parameters
    ----------
    old, new : Upload
        Two model files (``.pt``/``.onnx``) or predictions tables (``.csv``/``.parquet``).
    dataset : Upload, optional
        A ``.zip`` of class folders, or a manifest (``.csv``/``.parquet`` with ``id``,
        ``path``, ``label``) that comes with ``images``.
    images : Upload, optional
        A ``.zip`` of the images a manifest refers to (paths relative to the manifest).

    Raises
    ------
    InputError
        A wrong kind of file, an empty file, a model without a dataset, a manifest
        without its images, or an unsafe/bad zip. The path is the uploaded file's name.
    """
    for up in (old, new):
        _check_suffix(up, MODEL_SUFFIXES + TABLE_SUFFIXES, "a model file or a predictions table")
    needs_data = any(_suffix(u.name) in MODEL_SUFFIXES for u in (old, new))
    if dataset is None and needs_data:
        name = old.name if _suffix(old.name) in MODEL_SUFFIXES else new.name
        raise InputError(name, "a model file needs a dataset to run on: upload a .zip of class folders")
    if dataset is not None:
        _check_suffix(dataset, ZIP_SUFFIXES + MANIFEST_SUFFIXES, "a .zip of class folders or a manifest")
        if _suffix(dataset.name) in MANIFEST_SUFFIXES and images is None:
            raise InputError(dataset.name, "a manifest needs the zip of its images: upload it as well")
    if images is not None:
        _check_suffix(images, ZIP_SUFFIXES, "a .zip of images")

    h = hashlib.sha256()
    for up in (old, new, dataset, images):
        h.update(b"\x00" if up is None else hashlib.sha256(up.data).digest() + _safe_name(up.name).encode())
    token = h.hexdigest()[:20]
    root = uploads_dir() / token
    spec_file = root / "spec.json"
    names: list[tuple[str, str]] = []

    def put(up: Upload, sub: str) -> Path:
        p = root / sub / _safe_name(up.name)
        if not p.is_file():
            atomic_write_bytes(p, up.data)
        names.append((str(p), up.name))
        return p

    old_p, new_p = put(old, "old"), put(new, "new")
    data_p = None if dataset is None else put(dataset, "data")
    if dataset is not None and _suffix(dataset.name) in MANIFEST_SUFFIXES:  # a manifest and the zip of its images
        zpath = put(images, "images-zip")
        marker = root / "data" / ".extracted"
        if not marker.is_file():
            _extract_zip(images, zpath, root / "data")
            marker.write_text("ok")
        names.append((str(root / "data"), images.name))
    spec = Spec(id=f"upload:{token}", label=f"{old.name} → {new.name}" + (f" on {dataset.name}" if dataset else ""),
                old=str(old_p), new=str(new_p), data=None if data_p is None else str(data_p), names=tuple(names))
    if not spec_file.is_file():
        atomic_write_bytes(spec_file, json.dumps(asdict(spec)).encode())
    return spec


def user_message(err: InputError, spec: Spec | None) -> str:
    """``err.message`` with server paths replaced by the names the user uploaded."""
    if spec is None or err.path is None:
        return err.message
    return f"{spec.display_name(err.path)}: {err.problem}"


def check_upload(up: Upload, role: str) -> None:
    """Validate one uploaded file on its own, as soon as it arrives.

    ``role`` is ``"model"`` (a model file or predictions table), ``"dataset"`` (a zip of
    class folders or a manifest) or ``"images"`` (the zip a manifest refers to). The
    file is written to a content-addressed folder and opened with the core's loader.

    Raises
    ------
    InputError
        What is wrong, naming the uploaded file.
    ValueError
        ``role`` is not one of the three.
    """
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import load_predictions_table
    from graceful_core.models.loader import load_model

    allowed = {"model": MODEL_SUFFIXES + TABLE_SUFFIXES, "dataset": ZIP_SUFFIXES + MANIFEST_SUFFIXES,
               "images": ZIP_SUFFIXES}
    if role not in allowed:
        raise ValueError(f"role must be one of {sorted(allowed)}, got {role!r}")
    what = {"model": "a model file or a predictions table", "dataset": "a .zip of class folders or a manifest",
            "images": "a .zip of images"}[role]
    _check_suffix(up, allowed[role], what)
    if role == "dataset" and _suffix(up.name) in MANIFEST_SUFFIXES:
        return  # a manifest is checked together with its images (spec_from_uploads)
    folder = uploads_dir() / "checked" / hashlib.sha256(up.data).hexdigest()[:20]
    path = folder / _safe_name(up.name)
    if not path.is_file():
        atomic_write_bytes(path, up.data)
    try:
        if role == "model" and _suffix(up.name) in MODEL_SUFFIXES:
            load_model(path)
        elif role == "model":
            load_predictions_table(path)
        elif role == "dataset":
            load_dataset(path)
        else:
            try:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
            except zipfile.BadZipFile:
                raise InputError(up.name, "not a valid zip archive") from None
            if bad is not None:
                raise InputError(up.name, f"corrupt member {bad!r} in the zip")
    except InputError as e:
        if e.path is not None and os.path.abspath(e.path).startswith(str(folder)):
            rest = os.path.relpath(e.path, path) if os.path.abspath(e.path) != str(path) else ""
            shown = up.name if rest in ("", ".") else f"{up.name}/{rest}"
            raise InputError(shown, e.problem) from None
        raise
