"""The core's lazy results (probabilities, projections, neighbours), against independent computations,
and their disk cache under the comparison's content key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
PRED = ROOT / "sample_data" / "predictions"
DATA = ROOT / "sample_data" / "digits" / "test"


@pytest.fixture(scope="module")
def comp():
    if not (PRED / "old.csv").is_file() or not DATA.is_dir():
        pytest.skip("bundled sample tables are missing")
    from graceful_core.comparing.sources import compare_sources

    return compare_sources(PRED / "old.csv", PRED / "new.csv", DATA)


def _softmax_of_table(path: Path, ids: list[str], classes: tuple[str, ...]) -> np.ndarray:
    """Softmax of the table's logit columns, rows by id, columns by class name (classes are "0".."9")."""
    t = pd.read_csv(path, dtype={"id": str}).set_index("id").loc[ids]
    z = t[[f"logit_{int(c)}" for c in classes]].to_numpy(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_class_probabilities_are_the_tables_softmax_in_the_comparisons_order(comp):
    from graceful_core.explore import on_demand as lazy

    old, new = lazy.class_probabilities(comp)
    ids = [str(i) for i in comp.arrays.ids]
    np.testing.assert_allclose(old, _softmax_of_table(PRED / "old.csv", ids, comp.classes), atol=1e-6)
    np.testing.assert_allclose(new, _softmax_of_table(PRED / "new.csv", ids, comp.classes), atol=1e-6)
    # the probability of each model's own prediction is what the comparison keeps per sample
    rows = np.arange(len(ids))
    np.testing.assert_allclose(old[rows, comp.arrays.old_pred], comp.arrays.old_conf, atol=1e-6)


def test_lazy_results_are_cached_on_disk_under_the_content_key(comp, monkeypatch, tmp_path):
    from graceful_core.explore import on_demand as lazy
    from graceful_core.explore import projection

    calls = []

    def pca2(x, seed, n_neighbors, *_progress):  # a fast stand-in for UMAP
        calls.append(x.shape)
        x = x - x.mean(0)
        return (x @ np.linalg.svd(x, full_matrices=False)[2][:2].T).astype(np.float32)

    monkeypatch.setattr(projection, "_umap", pca2)
    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path))  # an empty cache of its own
    first = lazy.projection(comp, "joint")
    again = lazy.projection(comp, "joint")
    assert len(calls) == 1  # the second came from the disk cache
    np.testing.assert_array_equal(first.old_xy, again.old_xy)
    assert first.old_xy.shape == (comp.n_samples, 2) and not first.subsampled
    assert list((tmp_path / "projection-joint").glob("*.npz"))  # kept under the comparison's key
    with pytest.raises(ValueError, match="kind"):
        lazy.projection(comp, "sideways")


def test_neighbours_are_the_nearest_of_the_class(comp):
    from graceful_core.explore import on_demand as lazy

    a = comp.arrays
    row = int(np.flatnonzero(a.negative_flip_mask)[0])
    nb = lazy.neighbours(comp, row, k=5)
    same = np.flatnonzero(a.labels == a.labels[row])
    e = a.old_embedding.astype(np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    sims = e[same] @ e[row]
    order = [int(same[i]) for i in np.lexsort((same, -sims)) if same[i] != row][:5]
    assert nb.indices.tolist() == order and nb.searched == len(same) and not nb.subsampled
    assert all(a.labels[i] == a.labels[row] for i in nb.indices)


def test_pixel_neighbours_without_embeddings(comp):
    """Without embeddings the neighbours are the class's images nearest in 16x16 grey pixels."""
    import dataclasses

    from PIL import Image

    from graceful_core.explore import on_demand as lazy

    a = comp.arrays
    no_emb = dataclasses.replace(comp, arrays=dataclasses.replace(a, old_embedding=None, new_embedding=None), key="")
    row = 0
    nb = lazy.neighbours(no_emb, row, k=4)
    same = np.flatnonzero(a.labels == a.labels[row])

    def pixels(i):
        img = comp.dataset.load_image(comp.dataset.row_of(str(a.ids[i]))).convert("L")
        return np.asarray(img.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float64).ravel() / 255.0

    d = np.array([np.linalg.norm(pixels(i) - pixels(row)) for i in same])
    order = [int(same[i]) for i in np.lexsort((same, d)) if same[i] != row][:4]
    assert nb.indices.tolist() == order and "pixel" in nb.how
