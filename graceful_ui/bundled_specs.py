"""The comparisons the app offers without an upload: the bundled samples' pairs and the command line's pair.

Every pair of a bundled sample (:mod:`graceful_core.io.samples`) that exists on disk is a
:class:`~graceful_ui.spec.Spec` with a stable id (``fashion:new``, ``sample:new``, ``table:new``,
``pair:new:v3`` …), as is the pair given to ``graceful app OLD NEW`` and a pair with its old
model's bundled reseed as the churn floor's reference (id + :data:`RESEED_MARK`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from graceful_core.io.samples import BundledSample, bundled_samples, sample_of_path
from graceful_core.vocabulary import MODEL_SUFFIXES, TABLE_SUFFIXES
from graceful_ui.spec import Spec

__all__ = [
    "CLI_ENV_DATA",
    "CLI_ENV_NEW",
    "CLI_ENV_OLD",
    "RESEED_MARK",
    "RESEED_SUFFIX",
    "bundled_reference",
    "bundled_sample",
    "bundled_specs",
    "cli_spec",
    "pair_spec",
    "pair_spec_of_id",
    "sample_data_dir",
    "spec_sample",
    "with_reference",
]


def sample_data_dir() -> Path:
    """The bundled sample data: ``$GRACEFUL_SAMPLE_DATA`` or ``<repo>/sample_data``."""
    env = os.environ.get("GRACEFUL_SAMPLE_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "sample_data"


#: Set by ``graceful app OLD NEW --data DATA`` (:func:`graceful_core.cli.app.app_environment`).
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


def pair_spec_of_id(spec_id: str) -> Spec | None:
    """``pair:a:b`` (digits) or ``<sample>-pair:a:b`` as a spec, or None."""
    head, _, rest = spec_id.partition(":")
    if rest.count(":") != 1:
        return None
    name = "digits" if head == "pair" else head[: -len("-pair")] if head.endswith("-pair") else None
    if name is None:
        return None
    old_stem, new_stem = rest.split(":")
    return pair_spec(old_stem, new_stem, sample=name)


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
