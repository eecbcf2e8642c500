"""Several models over one dataset, each image decoded once: the same outputs as one model at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graceful_core import cache
from graceful_core.errors import InputError
from graceful_core.inference import predict, predict_together, prediction_cache_key
from graceful_core.io.datasets import load_dataset
from graceful_core.models.loader import load_model

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT / "sample_data" / "digits" / "test"
MODELS = ROOT / "sample_data" / "models"


def _same(a, b):
    assert list(a.ids) == list(b.ids) and a.classes == b.classes
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    if a.embedding is None:
        assert b.embedding is None
    else:
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-5, atol=1e-5)


def test_two_models_decode_each_image_once_and_match_predict(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    ds = load_dataset(TEST)
    old, new = load_model(MODELS / "old.pt"), load_model(MODELS / "new.pt")
    decoded = []
    real = ds.load_image

    def counting(i):
        decoded.append(i)
        return real(i)

    monkeypatch.setattr(ds, "load_image", counting)
    seen = {0: [], 1: []}
    got = predict_together(
        [old, new],
        ds,
        batch_size=97,
        progress=[lambda d, t: seen[0].append((d, t)), lambda d, t: seen[1].append((d, t))],
    )
    assert sorted(decoded) == list(range(len(ds)))  # every image exactly once, for both models
    assert seen[0][-1] == seen[1][-1] == (len(ds), len(ds))
    monkeypatch.setattr(ds, "load_image", real)
    _same(got[0], predict(old, ds, use_cache=False))
    _same(got[1], predict(new, ds, use_cache=False))
    # both results went to the cache under predict's own keys: a second call decodes nothing
    decoded.clear()
    monkeypatch.setattr(ds, "load_image", counting)
    again = predict_together([old, new], ds)
    assert decoded == []
    _same(again[0], got[0])
    _same(again[1], got[1])
    assert cache.load_arrays("predictions", prediction_cache_key(new, ds)) is not None


def test_a_bad_image_is_named_as_with_one_model(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    src = sorted(TEST.glob("0/*.png"))[:3] + sorted(TEST.glob("1/*.png"))[:3]
    for p in src:
        (tmp_path / "d" / p.parent.name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / p.parent.name / p.name).write_bytes(p.read_bytes())
    (tmp_path / "d" / "1" / src[-1].name).write_bytes(b"not a png")
    ds = load_dataset(tmp_path / "d")
    models = [load_model(MODELS / "old.pt"), load_model(MODELS / "new.pt")]
    with pytest.raises(InputError, match=src[-1].name):
        predict_together(models, ds)
    with pytest.raises(InputError, match=src[-1].name):  # control: one model at a time says the same
        predict(models[0], ds, use_cache=False)
