"""``predict --engine ray``: Ray Data inference equals the single-process ``predict``.

One test starts Ray (local, 2 CPUs; about 30-60 s); the others check the CLI wiring and
the input checks without starting it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from graceful_core.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "sample_data" / "models" / "new.pt"
OLD_CSV = ROOT / "sample_data" / "predictions" / "old.csv"
DATA = ROOT / "sample_data" / "digits" / "test"


def _children() -> list[str]:
    """Command names of this process's live child processes (from /proc)."""
    me, out = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                with open(f"/proc/{pid}/comm") as f:
                    out.append(f.read().strip())
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.mark.skipif(not MODEL.exists(), reason="bundled sample model missing")
def test_ray_predict_equals_local_predict_and_compare_reads_the_shards(tmp_path):
    import ray

    from graceful_core.distributed import predict_ray
    from graceful_core.inference import predict
    from graceful_core.io.datasets import load_dataset
    from graceful_core.io.tables import load_predictions_table
    from graceful_core.models.loader import load_model
    from graceful_core.streaming import compare_tables_streamed

    out = tmp_path / "preds"
    r = predict_ray(MODEL, DATA, out, num_cpus=2, rows_per_shard=200)
    assert not ray.is_initialized()
    assert not [c for c in _children() if c in ("raylet", "gcs_server") or c.startswith("ray::")]
    assert r.n_rows == 540 and len(r.files) >= 2 and r.address is None and r.actors == 2
    assert sorted(os.listdir(out)) == [os.path.basename(f) for f in r.files]  # nothing else left there
    assert not [f for f in os.listdir(tmp_path) if f != "preds"]  # no temporary folder left

    got = load_predictions_table(out)
    ref = predict(load_model(MODEL), load_dataset(DATA), use_cache=False)
    assert list(got.ids) == list(ref.ids) and got.classes == list(ref.classes)
    assert np.array_equal(got.labels, ref.labels) and np.array_equal(got.pred, ref.pred)
    np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.embedding, ref.embedding, rtol=1e-5, atol=1e-5)

    s = compare_tables_streamed(OLD_CSV, out, batch_rows=100)  # the folder is one table, aligned row by row
    assert s.n_samples == 540 and s.aligned_rows == 540 and s.counts.negative_flips == 3


def test_cli_predict_engine_ray_calls_the_ray_engine(tmp_path, monkeypatch, capsys):
    import graceful_core.distributed as dist
    from graceful_core.cli.commands import main

    seen = {}

    def fake(model, data, out, *, device="cpu", actors=None, batch_size=256):
        seen.update(model=model, data=data, out=out, device=device, actors=actors, batch_size=batch_size)
        return dist.RayPredictResult(
            out_dir=out, files=(f"{out}/part-000000.parquet",), n_rows=540, actors=3, address=None
        )

    monkeypatch.setattr(dist, "predict_ray", fake)
    out = str(tmp_path / "dir")
    assert main(["predict", str(MODEL), "--data", str(DATA), "--out", out, "--engine", "ray", "--workers", "3"]) == 0
    assert seen == {"model": str(MODEL), "data": str(DATA), "out": out, "device": "cpu", "actors": 3, "batch_size": 256}
    assert "wrote 540 predictions of new.pt" in capsys.readouterr().out
    # The device is the Ray workers': asking for CUDA is passed on, not checked on this (GPU-less) machine.
    assert (
        main(
            [
                "predict",
                str(MODEL),
                "--data",
                str(DATA),
                "--out",
                out,
                "--engine",
                "ray",
                "--device",
                "cuda",
                "--batch-size",
                "64",
            ]
        )
        == 0
    )
    assert seen["device"] == "cuda" and seen["batch_size"] == 64
    assert main(["predict", str(MODEL), "--data", str(DATA), "--out", out, "--engine", "ray", "--workers", "0"]) == 2


def test_output_folder_checks_before_ray_starts(tmp_path):
    from graceful_core.distributed import predict_ray

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.parquet").write_text("")
    with pytest.raises(InputError, match="exists and is not empty"):
        predict_ray(MODEL, DATA, busy)
    with pytest.raises(InputError, match="not a .csv file"):
        predict_ray(MODEL, DATA, tmp_path / "out.csv")
    with pytest.raises(InputError, match="parent folder does not exist"):
        predict_ray(MODEL, DATA, tmp_path / "no" / "such")
