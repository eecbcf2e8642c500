"""Inference: the on-disk cache never hands one sample another's outputs; bad model outputs are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from graceful_core.errors import InputError
from graceful_core.inference import predict
from graceful_core.io.datasets import load_dataset
from graceful_core.models.loader import load_model
from graceful_core.training.export import save_torchscript
from graceful_core.types import ModelInfo

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT / "sample_data" / "digits" / "test"
OLD = ROOT / "sample_data" / "models" / "old.pt"


def test_reordered_manifest_gets_its_own_rows_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    files = sorted(TEST.glob("0/*.png"))[:3] + sorted(TEST.glob("1/*.png"))[:3]
    rows = [(f"{p.parent.name}/{p.name}", p.parent.name) for p in files]
    # manifest paths are relative to the manifest: copy the images next to it
    for rid, _ in rows:
        (tmp_path / rid).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rid).write_bytes((TEST / rid).read_bytes())
    a = pd.DataFrame({"id": [r[0] for r in rows], "path": [r[0] for r in rows], "label": [r[1] for r in rows]})
    a.to_csv(tmp_path / "a.csv", index=False)
    a.iloc[::-1].to_csv(tmp_path / "b.csv", index=False)
    model = load_model(OLD)
    da, db = load_dataset(tmp_path / "a.csv"), load_dataset(tmp_path / "b.csv")
    pa_ = predict(model, da)  # fills the cache
    pb = predict(model, db)  # same images and content hash, other row order
    fresh = predict(model, db, use_cache=False)
    assert list(pb.ids) == list(fresh.ids) == list(reversed(list(pa_.ids)))
    np.testing.assert_allclose(pb.scores, fresh.scores, rtol=1e-5, atol=1e-5)  # batch order: float noise only
    by_id = dict(zip(pa_.ids, pa_.scores))
    for sid, row in zip(pb.ids, pb.scores):
        np.testing.assert_allclose(row, by_id[sid], rtol=1e-5, atol=1e-5)


class _Broken(torch.nn.Module):
    def __init__(self, logits: float, emb: float) -> None:
        super().__init__()
        self.logits, self.emb = logits, emb

    @torch.jit.export
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 4), self.emb)

    @torch.jit.export
    def head(self, e: torch.Tensor) -> torch.Tensor:
        return torch.full((e.shape[0], 10), self.logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@pytest.mark.parametrize(
    "logits, emb, words",
    [(float("nan"), 0.0, "NaN or infinite logits"), (0.0, float("inf"), "NaN or infinite embedding")],
)
def test_nan_or_inf_outputs_are_an_input_error_naming_the_model(tmp_path, monkeypatch, logits, emb, words):
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    info = ModelInfo(
        name="broken", input_size=(1, 8, 8), mean=(0.0,), std=(1.0,), classes=tuple(str(k) for k in range(10))
    )
    path = tmp_path / "broken.pt"
    save_torchscript(_Broken(logits, emb), path, info)
    with pytest.raises(InputError) as e:
        predict(load_model(path), load_dataset(TEST))
    assert "broken.pt" in e.value.message and words in e.value.message
