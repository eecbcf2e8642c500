"""The record of which model file made each bundled predictions table, and its use for a model set.

A table replaces running its model only under a record matching the model file, the dataset and
the table itself; every refusal is paired with a control where the same setup is used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from graceful_core.comparing.bundled_predictions import (
    MANIFEST_NAME,
    find_table,
    read_manifest,
    recorded_sources,
    table_record,
    write_manifest,
)
from graceful_core.comparing.lineage import model_matrix_report
from graceful_core.errors import InputError
from graceful_core.inference import cached_predictions, predict
from graceful_core.io.datasets import ImageDataset, load_dataset
from graceful_core.io.hashing import file_sha256
from graceful_core.io.tables import load_predictions_table
from graceful_core.models.loader import load_model

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT / "sample_data" / "digits" / "test"
MODELS = ROOT / "sample_data" / "models"
TABLES = ROOT / "sample_data" / "predictions"
NAMES = ("old", "new", "v3")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def sample(tmp_path):
    """A copy of three digits models and their tables, with a record written for them."""
    models, tables = tmp_path / "models", tmp_path / "predictions"
    models.mkdir()
    tables.mkdir()
    for n in NAMES:
        shutil.copy(MODELS / f"{n}.pt", models)
        shutil.copy(TABLES / f"{n}.csv", tables)
    ds = load_dataset(TEST)
    write_manifest(tables, [table_record(tables / f"{n}.csv", models / f"{n}.pt", {"test": ds}) for n in NAMES])
    return models, tables, ds


def _paths(models: Path) -> list[str]:
    return [str(models / f"{n}.pt") for n in NAMES]


def test_a_recorded_model_is_read_from_its_table_and_the_model_set_equals_running_the_models(sample, cache):
    models, tables, ds = sample
    sources, report = recorded_sources(_paths(models), ds, [tables])
    assert sources == [str(tables / f"{n}.csv") for n in NAMES]
    assert report.used == [f"{n}.pt" for n in NAMES] and report.stale == {}
    from_tables = model_matrix_report(sources, dataset=ds, names=list(NAMES))
    run = model_matrix_report(_paths(models), dataset=ds, names=list(NAMES), use_cache=False)
    # independent: the models run now (no cache); predictions agree exactly, so every count does
    for key in ("negative_flip_rate", "backward_trust_compatibility", "cross_top1"):
        np.testing.assert_allclose(
            np.asarray(getattr(from_tables, key), dtype=float), np.asarray(getattr(run, key), dtype=float), atol=1e-12
        )
    assert from_tables.accuracy == run.accuracy


def test_the_table_goes_into_the_cache_under_the_models_own_key(sample, cache):
    models, tables, ds = sample
    recorded_sources(_paths(models), ds, [tables])
    model = load_model(models / "v3.pt")
    hit = cached_predictions(file_sha256(model.path), list(model.info.classes), ds)
    assert hit is not None
    table = load_predictions_table(tables / "v3.csv", classes=list(model.info.classes))
    assert table.scores is not None
    row = {str(s): k for k, s in enumerate(table.ids)}
    at = [row[s] for s in ds.ids]
    np.testing.assert_array_equal(hit[0], table.scores[at])
    # and predict() now returns the table's outputs without running (a cache hit under its own key)
    np.testing.assert_array_equal(predict(model, ds).scores, table.scores[at])


def test_a_run_already_in_the_cache_is_kept(sample, cache):
    models, tables, ds = sample
    ran = predict(load_model(models / "old.pt"), ds)  # a run here, cached
    sources, report = recorded_sources(_paths(models), ds, [tables])
    assert sources[0] == str(models / "old.pt") and "old.pt" not in report.used
    assert sources[1:] == [str(tables / "new.csv"), str(tables / "v3.csv")]
    model = load_model(models / "old.pt")
    hit = cached_predictions(file_sha256(model.path), list(model.info.classes), ds)
    assert hit is not None
    np.testing.assert_array_equal(hit[0], ran.scores)


def test_a_table_changed_since_its_record_is_refused_loudly(sample, cache):
    models, tables, ds = sample
    with open(tables / "new.csv", "a") as f:
        f.write("\n")  # same rows, other bytes: not the table on record
    sources, report = recorded_sources(_paths(models), ds, [tables])
    assert sources[1] == str(models / "new.pt")
    assert "new.csv changed since" in report.stale["new.pt"]
    assert sources[0] == str(tables / "old.csv") and sources[2] == str(tables / "v3.csv")  # control


def test_a_model_file_changed_since_the_record_is_refused_loudly(sample, cache):
    models, tables, ds = sample
    shutil.copy(MODELS / "edge.pt", models / "v3.pt")  # another model under the recorded name
    sources, report = recorded_sources(_paths(models), ds, [tables])
    assert sources[2] == str(models / "v3.pt")
    assert "made by another v3.pt" in report.stale["v3.pt"]
    assert sources[:2] == [str(tables / "old.csv"), str(tables / "new.csv")]  # control


def test_other_images_never_get_the_table(sample, cache):
    models, tables, ds = sample
    fewer = ImageDataset("fewer", ds.ids[:-1], ds.labels[:-1], ds.classes, ds.files[:-1], source=ds.source)
    sources, report = recorded_sources(_paths(models), fewer, [tables])
    assert sources == _paths(models) and report.used == [] and report.stale == {}
    assert find_table(models / "old.pt", ds, [tables]).table == tables / "old.csv"  # control


def test_a_record_is_refused_for_a_table_that_does_not_cover_the_dataset(sample, tmp_path):
    models, tables, ds = sample
    fewer = ImageDataset("fewer", ds.ids[:-1], ds.labels[:-1], ds.classes, ds.files[:-1], source=ds.source)
    with pytest.raises(InputError, match="not the ids of dataset 'fewer'"):
        table_record(tables / "old.csv", models / "old.pt", {"fewer": fewer})
    assert table_record(tables / "old.csv", models / "old.pt", {"test": ds})["rows"] == len(ds)  # control


def test_a_manifest_in_another_format_is_not_read(sample):
    _models, tables, _ds = sample
    assert len(read_manifest(tables)) == len(NAMES)  # control
    doc = json.loads((tables / MANIFEST_NAME).read_text())
    doc["format"] = 99
    (tables / MANIFEST_NAME).write_text(json.dumps(doc))
    assert read_manifest(tables) == []


@pytest.mark.parametrize("sample_dir", ["fashion/predictions", "predictions"])
def test_the_committed_records_match_the_committed_files(sample_dir):
    """A rebuild that changes a model or a table without rewriting the record is caught here (the app would
    only run the model instead, slower)."""
    folder = ROOT / "sample_data" / sample_dir
    models = folder.parent / "models"
    records = read_manifest(folder)
    assert {r["table"] for r in records} == {p.name for p in folder.iterdir() if p.name != MANIFEST_NAME}
    for r in records:
        assert file_sha256(folder / r["table"]) == r["table_sha256"], r["table"]
        assert file_sha256(models / r["model"]) == r["model_sha256"], r["model"]
        assert r["check"]["verified"] and r["check"]["same_predictions"], r["table"]
