"""Precompute the 2-D embedding maps of a bundled sample's default pair (the app's Embeddings page).

    python scripts/sample_maps.py                 # sample_data/fashion: old.pt -> new.pt on test.csv
    python scripts/build_sample_data.py --only maps

The pair is compared exactly as the app compares it (``compare_sources`` on the model files
and the test manifest), and each map the Embeddings page asks for first (joint and side by
side, the fixed-seed sample of :data:`graceful_core.explore.projection_store.SAMPLED_POINTS` points
and all images) is fitted with the projection's defaults and written to
``sample_data/<sample>/maps/`` (:func:`graceful_core.explore.projection_store.write_map`). Maps of
embeddings that are no longer the sample's are removed. The app finds them by content
(:func:`graceful_core.explore.projection_store.find_map`); without them it fits UMAP as for any pair.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graceful_core.comparing.sources import compare_sources  # noqa: E402
from graceful_core.explore.projection import joint_umap, separate_umap  # noqa: E402
from graceful_core.explore.projection_store import MAPS_DIR, SAMPLED_POINTS, projection_settings, write_map  # noqa: E402
from graceful_core.io.samples import bundled_samples  # noqa: E402


def write_sample_maps(sample_root: Path, name: str = "fashion") -> list[Path]:
    """Fit and write the maps of sample ``name``'s old -> new pair; returns the files written."""
    sample = next((s for s in bundled_samples(sample_root) if s.name == name), None)
    if sample is None or sample.old_model() is None:
        raise SystemExit(f"error: no bundled sample {name!r} with models under {sample_root}")
    new = next((p for p in sample.models() if p.stem == sample.new), None)
    if new is None:
        raise SystemExit(f"error: sample {name!r} has no model {sample.new!r}")
    old = sample.old_model()
    comp = compare_sources(
        str(old), str(new), str(sample.test_data), old_name=old.name, new_name=new.name, allow_missing=True
    )
    a = comp.require_arrays()
    if a.old_embedding is None or a.new_embedding is None:
        raise SystemExit(f"error: {old.name} or {new.name} has no embeddings")
    out = sample.test_data.parent / MAPS_DIR
    out.mkdir(exist_ok=True)
    written = []
    for kind, fn in (("joint", joint_umap), ("separate", separate_umap)):
        for cap in (SAMPLED_POINTS, None):
            t0 = time.perf_counter()
            res = fn(a.old_embedding, a.new_embedding, **({} if cap is None else {"max_points": cap}))
            settings = projection_settings(kind, a.old_embedding, a.new_embedding, cap)
            written.append(write_map(out, settings, a.old_embedding, a.new_embedding, res))
            print(
                f"{written[-1].relative_to(sample_root)}: {len(res.indices)} images, {time.perf_counter() - t0:.1f} s"
            )
    for stale in set(out.glob("*.npz")) - set(written):
        stale.unlink()
        print(f"removed {stale.relative_to(sample_root)} (embeddings no longer the sample's)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data", help="the sample data folder")
    parser.add_argument("--sample", default="fashion", help="which bundled sample (default: fashion)")
    args = parser.parse_args(argv)
    write_sample_maps(args.out, args.sample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
