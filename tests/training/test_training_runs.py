"""The Mitigate page's pieces without Streamlit: run index, sweep/baseline parameters, trained specs, cache keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graceful_core.training.update import TrainParams
from graceful_ui import training as tr

ROOT = Path(__file__).resolve().parents[2]
OLD = ROOT / "sample_data" / "models" / "old.pt"


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))
    return tmp_path


def _record(cache: Path, stem: str, eval_data: str = "/data/test", nfr: float = 0.01) -> dict:
    model = cache / "models" / f"{stem}.pt"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"PK")
    return {
        "spec_id": f"trained:{stem}",
        "model": str(model),
        "old": "/m/old.pt",
        "eval_data": eval_data,
        "params": {"method": "plain"},
        "metrics": {"negative_flip_rate": nfr},
    }


def test_run_index_replaces_a_run_of_the_same_model_and_data(cache):
    tr.record_run(_record(cache, "a", nfr=0.1))
    tr.record_run(_record(cache, "b"))
    tr.record_run(_record(cache, "a", nfr=0.2))  # re-evaluated: replaces, moves to the end
    tr.record_run(_record(cache, "a", eval_data="/data/other"))
    runs = tr.load_runs()
    assert [(Path(r["model"]).stem, r["eval_data"]) for r in runs] == [
        ("b", "/data/test"),
        ("a", "/data/test"),
        ("a", "/data/other"),
    ]
    assert runs[1]["metrics"]["negative_flip_rate"] == 0.2
    assert len(tr.runs_for(runs, "/m/old.pt", "/data/test")) == 2
    assert tr.runs_for(runs, "/m/other.pt", "/data/test") == []


def test_run_index_skips_deleted_models_and_survives_a_broken_file(cache):
    tr.record_run(_record(cache, "a"))
    tr.record_run(_record(cache, "b"))
    (cache / "models" / "a.pt").unlink()
    assert [Path(r["model"]).stem for r in tr.load_runs()] == ["b"]
    tr.runs_path().write_text("{not json")
    assert tr.load_runs() == []
    tr.runs_path().write_text(json.dumps({"a": 1}))
    assert tr.load_runs() == []


def test_sweep_and_baseline_parameters():
    base = tr.TrainRequest("o.pt", "train", "test", TrainParams(method="bct", lam=1.0, epochs=7, seed=3))
    reqs = tr.sweep_requests(base, (0.1, 2.0))
    assert [r.params.lam for r in reqs] == [0.1, 2.0]
    assert all(r.params.method == "bct" and r.params.epochs == 7 and r.params.seed == 3 for r in reqs)
    plain = tr.baseline_params(TrainParams(method="focal-distillation", lam=0.3, beta=9, epochs=7, seed=3))
    assert plain == TrainParams(method="plain", epochs=7, seed=3)


def test_canonical_params_ignore_what_the_method_ignores():
    assert TrainParams(method="plain", lam=0.3, beta=2).canonical() == TrainParams(method="plain")
    assert TrainParams(method="distill", lam=0.3, beta=2).canonical() == TrainParams(method="distill", lam=0.3)
    assert TrainParams(method="bct", lam=0.3, alpha=4).canonical() == TrainParams(method="bct", lam=0.3)
    fd = TrainParams(method="focal-distillation", lam=0.3, alpha=2, beta=9)
    assert fd.canonical() == fd
    assert TrainParams(
        method="ldi", lam=0.3, alpha=2, temperature=100, margin=0.2, n_references=5
    ).canonical() == TrainParams(method="ldi", lam=0.3, margin=0.2)
    assert TrainParams(method="elodi", beta=0, p=1.0, n_references=4).canonical() == TrainParams(
        method="elodi", p=1.0, n_references=4
    )
    assert TrainParams(method="focal-distillation", margin=3.0, p=1.0).canonical() == TrainParams(
        method="focal-distillation"
    )
    # the other methods' cache keys do not see the LDI fields (their files keep their names)
    assert "margin" not in TrainParams(method="bct").key_fields() and "margin" in TrainParams(method="ldi").key_fields()
    with pytest.raises(ValueError, match="margin"):
        TrainParams(method="ldi", margin=-1).validate()
    with pytest.raises(ValueError, match="reference models"):
        TrainParams(method="elodi", n_references=2).validate()


@pytest.mark.skipif(not OLD.is_file(), reason="bundled sample model missing")
def test_cache_path_is_shared_by_equivalent_params_only(cache, tmp_path):
    from graceful_core.io.datasets import load_dataset
    from graceful_core.training.update import trained_model_path

    d = tmp_path / "data" / "0"
    d.mkdir(parents=True)
    from PIL import Image

    Image.new("L", (8, 8), 7).save(d / "a.png")
    ds = load_dataset(tmp_path / "data")
    p1 = trained_model_path(OLD, ds, TrainParams(method="plain", lam=0.2))
    p2 = trained_model_path(OLD, ds, TrainParams(method="plain", lam=3.0))
    p3 = trained_model_path(OLD, ds, TrainParams(method="plain", seed=1))
    assert p1 == p2 != p3
    assert p1.parent == cache / "models" and p1.name.startswith("plain-") and p1.suffix == ".pt"


def test_trained_spec_round_trips_through_resolve_spec_and_rejects_odd_ids(cache):
    from graceful_ui.spec_ids import resolve_spec
    from graceful_ui.trained_specs import trained_spec

    model = cache / "models" / "focal-distillation-0123456789abcdef.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"PK")
    spec = trained_spec(model, "/m/old.pt", "/d/digits/test")
    assert spec.id == "trained:focal-distillation-0123456789abcdef"
    back = resolve_spec(spec.id)
    assert (back.old, back.new, back.data) == ("/m/old.pt", str(model), "/d/digits/test")
    for bad in ("trained:", "trained:../x", "trained:a/b", "trained:.hidden", "trained:missing-stem"):
        assert resolve_spec(bad) is None, bad


def test_describe_names_the_parameters():
    assert tr.describe(TrainParams(method="plain", epochs=5, seed=2)) == "plain (5 epochs, seed 2)"
    assert (
        tr.describe(TrainParams(method="focal-distillation", lam=0.5, alpha=1, beta=5, epochs=30))
        == "focal-distillation λ 0.5, α 1, β 5 (30 epochs, seed 0)"
    )
    assert tr.describe(TrainParams(method="bct", lam=2)) == "bct λ 2 (30 epochs, seed 0)"


def test_a_job_needs_requests():
    with pytest.raises(ValueError):
        tr.TrainingJob([])


def test_run_index_drops_records_it_cannot_draw(cache):
    """A record from another version (unknown parameter, no metrics) is skipped, not a crash."""
    tr.record_run(_record(cache, "a"))
    odd = _record(cache, "b")
    odd["params"] = {"method": "plain", "weight_decay": 0.1}
    tr.record_run(odd)
    nometrics = _record(cache, "c")
    del nometrics["metrics"]
    tr.record_run(nometrics)
    assert [Path(r["model"]).stem for r in tr.load_runs()] == ["a"]
