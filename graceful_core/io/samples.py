"""The bundled samples: which comparisons ship with graceful, and where their files are.

Two samples live under ``sample_data/`` (see ``sample_data/README.md``):

- **Fashion-MNIST** (``sample_data/fashion``): 10,000 official test photos of clothing,
  a 2,000-photo training subset for in-app training, and models trained on the full
  training split, where the update ``old.pt → new.pt`` breaks hundreds of photos. The
  default comparison. Its test set is read through the manifest ``test.csv``, so the
  photos' metadata (``ink_coverage``, ``brightness``) reaches the regression slices.
- **digits** (scikit-learn's 8×8 digits: ``sample_data/digits``, ``sample_data/models``,
  ``sample_data/predictions``): small and fast; the second sample and the tests' sample.

This module only names paths (no Streamlit, no model loading), so the app, the CLI and
the benchmarks agree on one list.

Examples
--------
>>> from pathlib import Path
>>> [s.name for s in bundled_samples(Path("/nonexistent"))]
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graceful_core.vocabulary import MODEL_SUFFIXES, TABLE_SUFFIXES


@dataclass(frozen=True)
class BundledSample:
    """One bundled sample: a test set, a training set, a folder of models and one of predictions tables.

    Paths are absolute (resolved against the sample-data root); a part that is not on disk
    is still named (check with :attr:`present`, :meth:`models`, :meth:`tables`).
    """

    name: str
    """Short name, also the prefix of the app's comparison ids (``"fashion"``, ``"digits"``)."""
    title: str
    """What people call it ("Fashion-MNIST", "digits")."""
    test_data: Path
    """The evaluation data: a folder of class folders or a manifest (``.csv``) of its images."""
    train_data: Path
    """A folder of class folders to train updates on (the Mitigate page)."""
    models_dir: Path
    predictions_dir: Path
    old: str = "old"
    """File stem of the deployed (old) model and of its predictions table."""
    new: str = "new"
    """File stem of the default update."""
    test_label: str = ""
    """How the test data is named to people, e.g. ``fashion/test`` (default: its parent and name)."""
    train_arch: str = "large-cnn"
    """The architecture an update of the old model is trained with (that of the bundled new model)."""
    train_epochs: int = 30
    """Default epochs of an update trained on :attr:`train_data` (the Mitigate page)."""
    lambda_note: str = ""
    """How the bundled focal-distillation update (``new-pc``) chose its λ, in one sentence."""
    warm_start: str | None = None
    """File stem of the model a default update on :attr:`train_data` starts from (a warm start), or None
    (from scratch): where the training photos are too few to train a model as good as the old one."""
    warm_start_epochs: int = 2
    """Default epochs of a warm-started update."""
    training_note: str = ""
    """What the Mitigate page's default training was measured to do on this sample (shown under its form)."""
    experiment: Path | None = None
    """The mitigation experiment's results on this sample (``results/<name>.json``, with ``.md`` and ``.png``
    beside it; scripts/experiment_field.py), or None."""

    @property
    def present(self) -> bool:
        """The test data and the old model or the old predictions table are on disk."""
        return self.test_data.exists() and (self.old_model() is not None or self.old_table() is not None)

    @property
    def data_label(self) -> str:
        """The test data's short name for labels, naming what is read (``fashion/test.csv``: the manifest with
        its metadata columns, not the folder; ``digits/test``)."""
        return self.test_label or f"{self.test_data.parent.name}/{self.test_data.stem}"

    @property
    def test_folder(self) -> Path:
        """The folder of the test images (the manifest's folder's ``test``, or the test data itself)."""
        return self.test_data if self.test_data.is_dir() else self.test_data.parent / "test"

    def class_names(self) -> frozenset[str]:
        """The class names of the test images: ``classes.json``'s display names, else the class folders' names."""
        import json

        folder = self.test_folder
        names = folder / "classes.json"
        if names.is_file():
            try:
                return frozenset(str(v) for v in json.loads(names.read_text()).values())
            except (ValueError, AttributeError, OSError):
                pass
        return frozenset(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else frozenset()

    def models(self) -> list[Path]:
        """Model files, sorted by name: the old one first, then the default new one, then the rest."""
        if not self.models_dir.is_dir():
            return []
        files = [p for p in self.models_dir.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file()]
        return sorted(files, key=lambda p: (p.stem != self.old, p.stem != self.new, p.name))

    def tables(self) -> list[Path]:
        """Predictions tables, sorted like :meth:`models`."""
        if not self.predictions_dir.is_dir():
            return []
        files = [p for p in self.predictions_dir.iterdir() if p.suffix in TABLE_SUFFIXES and p.is_file()]
        return sorted(files, key=lambda p: (p.stem != self.old, p.stem != self.new, p.name))

    def old_model(self) -> Path | None:
        """The old model's file, or None."""
        return next((p for p in self.models() if p.stem == self.old), None)

    def old_table(self) -> Path | None:
        """The old model's predictions table, or None."""
        return next((p for p in self.tables() if p.stem == self.old), None)


#: Default epochs of a Fashion-MNIST update on the 2,000 training photos of ``fashion/train`` (the Mitigate page):
#: the mitigation experiment's budget on that subset; one training takes about 107 s of CPU time (one to two
#: minutes on 2 cores; benchmarks/bench_mitigate.py).
FASHION_TRAIN_EPOCHS = 8
#: Default epochs of a Fashion-MNIST update started from the bundled new model (trained on all 60,000 photos):
#: from scratch, 2,000 photos give a model worse than old; two epochs at the warm-start learning rate refine
#: new instead (sample_data/README.md has the measured numbers).
FASHION_WARM_START_EPOCHS = 2


#: Measured by scripts/check_warm_start.py (results/warm-start-fashion.json): the page's default run on the test photos.
FASHION_TRAINING_NOTE = (
    "Measured with this form's defaults (warm start from new.pt, 2 epochs on the 2,000 photos; "
    "scripts/check_warm_start.py): the plain warm start breaks 209 test photos at 8.01 % error (new.pt: 205 at "
    "7.88 %); every remedy tried breaks more: focal distillation λ 1 (T 1) 279, at T 100 λ 0.01 232, LDI λ 0.1 246. "
    "A choice by 2-fold cross-fitting picks plain. With 2,000 photos, training does not cure this update: the "
    "what-if remedies above do, at no training cost."
)
#: The committed experiment results (``results/``, next to ``sample_data/`` in the repository).
RESULTS = Path(__file__).resolve().parents[2] / "results"


def fashion_sample(root: Path) -> BundledSample:
    """The Fashion-MNIST sample under ``root`` (``root/fashion/...``)."""
    base = root / "fashion"
    return BundledSample(
        name="fashion",
        title="Fashion-MNIST",
        test_data=base / "test.csv",
        train_data=base / "train",
        models_dir=base / "models",
        predictions_dir=base / "predictions",
        test_label="fashion/test.csv",
        train_arch="large-cnn-28",
        train_epochs=FASHION_TRAIN_EPOCHS,
        warm_start="new",
        warm_start_epochs=FASHION_WARM_START_EPOCHS,
        lambda_note="The bundled new-pc (focal distillation at T 100, α = 1, β = 5, λ = 0.01, trained "
        "from scratch on 60,000 photos) is the remedy experiment's choice on a validation "
        "split (results/mitigation-fashion.md); λ's scale depends on T.",
        training_note=FASHION_TRAINING_NOTE,
        experiment=RESULTS / "mitigation-fashion.json",
    )


def digits_sample(root: Path) -> BundledSample:
    """The 8×8 digits sample under ``root`` (``root/digits/test``, ``root/models``, ``root/predictions``)."""
    return BundledSample(
        name="digits",
        title="digits",
        test_data=root / "digits" / "test",
        train_data=root / "digits" / "train",
        models_dir=root / "models",
        predictions_dir=root / "predictions",
        test_label="digits/test",
        lambda_note="On digits, focal distillation with λ = 1 costs accuracy; the bundled new-pc uses λ = 0.5.",
        experiment=RESULTS / "mitigation.json",
    )


def bundled_samples(root: Path) -> list[BundledSample]:
    """The bundled samples present under ``root``: Fashion-MNIST first (the default), digits second.

    Parameters
    ----------
    root : Path
        The sample-data folder (``sample_data/`` of the repository, or ``$GRACEFUL_SAMPLE_DATA``).

    Returns
    -------
    list of BundledSample
        Only those whose test data and old model (or old predictions table) exist.
    """
    root = Path(root)
    return [s for s in (fashion_sample(root), digits_sample(root)) if s.present]


def sample_of_classes(classes, samples: list[BundledSample]) -> BundledSample | None:
    """The first sample whose test images have exactly these class names (e.g. for an uploaded comparison), or None."""
    want = frozenset(str(c) for c in classes)
    return next((s for s in samples if s.class_names() == want), None)


def sample_of_path(path: str | Path, samples: list[BundledSample]) -> BundledSample | None:
    """The sample a file or folder belongs to (its models, predictions or data), or None."""
    p = Path(path).resolve()
    for s in samples:
        for d in (s.models_dir, s.predictions_dir, s.test_data, s.test_folder, s.train_data):
            d = d.resolve()
            if p == d or p.is_relative_to(d):
                return s
    return None
