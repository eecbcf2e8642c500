"""Write a bundled sample's record of its predictions tables (``predictions/manifest.json``).

    python scripts/prediction_manifest.py                   # sample_data/fashion, every model checked
    python scripts/prediction_manifest.py --no-verify       # right after the tables were written by predict

Each table ``predictions/<stem>.parquet`` of a model file ``models/<stem>.*`` gets a record of the
model's and the table's SHA-256 and the content hashes of the datasets it covers (the test folder
and the test manifest: the same images) -- :mod:`graceful_core.comparing.bundled_predictions`.
With ``--verify`` (default) every model is run on the test images (each image decoded once for all,
no cache) and a table is recorded only if it holds the same predictions and its logits and
embeddings differ by at most ``--tolerance`` (inference is not bit-reproducible across thread
counts: about 1e-6 here); the differences are recorded. ``scripts/build_sample_data.py`` writes the
record after a Fashion build without ``--verify``: its tables were written by ``predict`` from these
files moments before.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graceful_core.comparing.bundled_predictions import table_record, write_manifest  # noqa: E402
from graceful_core.inference import predict_together  # noqa: E402
from graceful_core.io.datasets import load_dataset  # noqa: E402
from graceful_core.io.samples import bundled_samples  # noqa: E402
from graceful_core.io.tables import load_predictions_table  # noqa: E402
from graceful_core.models.loader import load_model  # noqa: E402


def write_sample_manifest(
    sample_root: Path, name: str = "fashion", verify: bool = True, tolerance: float = 1e-4
) -> Path:
    """Record every table of sample ``name`` that has a model file of the same stem; returns the manifest."""
    sample = next((s for s in bundled_samples(sample_root) if s.name == name), None)
    if sample is None:
        raise SystemExit(f"error: no bundled sample {name!r} under {sample_root}")
    datasets = {sample.test_folder.name: load_dataset(sample.test_folder)}
    if sample.test_data != sample.test_folder:
        datasets[sample.test_data.name] = load_dataset(sample.test_data)
    folder_ds = datasets[sample.test_folder.name]
    models = {p.stem: p for p in sample.models()}
    pairs = [(t, models[t.stem]) for t in sample.tables() if t.stem in models]
    checks: dict[str, dict] = {p.name: {"verified": False} for _t, p in pairs}
    if verify:
        t0 = time.perf_counter()
        loaded = [load_model(str(p)) for _t, p in pairs]
        ran = predict_together(loaded, folder_ds, use_cache=False)
        for (table, path), out in zip(pairs, ran):
            rec = load_predictions_table(table, classes=list(out.classes))
            if rec.scores is None or out.scores is None:
                raise SystemExit(f"error: {table.name} or {path.name} gives no scores")
            row = {str(sid): k for k, sid in enumerate(rec.ids)}
            at = np.fromiter((row[str(sid)] for sid in out.ids), dtype=np.int64, count=len(out.ids))
            same = bool(np.array_equal(rec.pred[at], out.pred))
            d_logit = float(np.max(np.abs(rec.scores[at] - out.scores)))
            d_emb = (
                float(np.max(np.abs(rec.embedding[at] - out.embedding)))
                if rec.embedding is not None and out.embedding is not None
                else None
            )
            checks[path.name] = {
                "verified": True,
                "same_predictions": same,
                "max_abs_logit_diff": d_logit,
                "max_abs_embedding_diff": d_emb,
            }
            print(f"{table.name} vs {path.name} run now: same predictions {same}, max |logit diff| {d_logit:.2e}")
        print(f"ran {len(pairs)} models in {time.perf_counter() - t0:.1f} s")
    records = []
    for table, path in pairs:
        c = checks[path.name]
        if c["verified"] and not (
            c["same_predictions"]
            and c["max_abs_logit_diff"] <= tolerance
            and (c["max_abs_embedding_diff"] is None or c["max_abs_embedding_diff"] <= tolerance)
        ):
            print(f"NOT recorded: {table.name} does not hold what {path.name} gives now ({c})")
            continue
        records.append(table_record(table, path, datasets, check=c))
    out = write_manifest(sample.predictions_dir, records)
    print(f"{out.relative_to(sample_root)}: {len(records)} tables recorded")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data", help="the sample data folder")
    parser.add_argument("--sample", default="fashion", help="which bundled sample (default: fashion)")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="record without running the models")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest |difference| of logits/embeddings")
    args = parser.parse_args(argv)
    write_sample_manifest(args.out, args.sample, args.verify, args.tolerance)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
