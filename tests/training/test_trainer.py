"""Reference trainer: determinism, cancellation, progress, BCT constraints, dataset tensors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from graceful_core.training.architectures import INPUT_SIZES, architecture_names, build_model
from graceful_core.training.trainer import TrainingCancelled, tensors_from_dataset, train_model
from graceful_core.types import ModelInfo


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    X = torch.tensor((d.images[:120] / 16.0 - 0.3) / 0.37, dtype=torch.float32)[:, None]
    return X, torch.tensor(d.target[:120], dtype=torch.int64)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch", architecture_names())
def test_architectures_forward_is_head_of_embed(arch):
    torch.manual_seed(0)
    m = build_model(arch, embedding_dim=16).eval()
    x = torch.randn(3, 1, *INPUT_SIZES[arch])
    with torch.no_grad():
        e = m.embed(x)
        assert e.shape == (3, 16)
        assert torch.equal(m(x), m.head(e))
    s = torch.jit.script(m)
    assert torch.equal(s.head(s.embed(x)), s(x))


def test_plain_training_is_deterministic_for_a_seed(data):
    X, y = data
    a = train_model("small-cnn", X, y, epochs=2, seed=7)
    b = train_model("small-cnn", X, y, epochs=2, seed=7)
    c = train_model("small-cnn", X, y, epochs=2, seed=8)
    assert _same(a, b)
    assert not _same(a, c)


def test_training_does_not_touch_the_global_rng(data):
    X, y = data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_model("edge-cnn", X, y, epochs=1, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_training_learns(data):
    X, y = data
    m = train_model("small-cnn", X, y, epochs=15, seed=0)
    with torch.no_grad():
        acc = float((m(X).argmax(1) == y).float().mean())
    assert acc > 0.9  # training accuracy on 120 digits; chance is 0.1


def test_focal_distillation_deterministic_and_old_logits_equivalent(data):
    X, y = data
    old = train_model("edge-cnn", X, y, epochs=1, seed=1)
    with torch.no_grad():
        table = old(X)
    a = train_model("small-cnn", X, y, method="focal-distillation", old_model=old, epochs=2, seed=3)
    b = train_model("small-cnn", X, y, method="focal-distillation", old_logits=table, epochs=2, seed=3)
    assert _same(a, b)
    # "distill" is focal distillation with beta = 0, whatever beta is passed
    c = train_model("small-cnn", X, y, method="distill", old_logits=table, beta=5.0, epochs=1, seed=3)
    d = train_model("small-cnn", X, y, method="focal-distillation", old_logits=table, beta=0.0, epochs=1, seed=3)
    assert _same(c, d)


def test_bct_keeps_old_model_and_needs_equal_dims(data):
    X, y = data
    old = torch.jit.script(train_model("edge-cnn", X, y, epochs=1, seed=1, embedding_dim=32))
    before = {k: v.clone() for k, v in old.state_dict().items()}
    a = train_model("small-cnn", X, y, method="bct", old_model=old, epochs=2, seed=2)
    b = train_model("small-cnn", X, y, method="bct", old_model=old, epochs=2, seed=2)
    assert _same(a, b)
    assert a.embed(X[:2]).shape == (2, 32)  # embedding size taken from the old head
    assert all(torch.equal(v, before[k]) for k, v in old.state_dict().items())
    with pytest.raises(ValueError, match="embedding_dim 64 differs"):
        train_model("small-cnn", X, y, method="bct", old_model=old, embedding_dim=64, epochs=1)


def test_methods_need_an_old_model(data):
    X, y = data
    with pytest.raises(ValueError, match="needs old_model"):
        train_model("small-cnn", X, y, method="distill", epochs=1)
    with pytest.raises(ValueError, match="bct"):
        train_model("small-cnn", X, y, method="bct", epochs=1)
    with pytest.raises(ValueError, match="method must be"):
        train_model("small-cnn", X, y, method="magic", epochs=1)
    with pytest.raises(ValueError, match="unknown architecture"):
        train_model("resnet-9000", X, y, epochs=1)


def test_cancellation_and_progress(data):
    X, y = data
    calls = []
    polls = iter(range(10_000))
    with pytest.raises(TrainingCancelled):
        # 120 samples / batch 64 = 2 batches per epoch: stop at the 5th poll (epoch 3)
        train_model(
            "small-cnn",
            X,
            y,
            epochs=10,
            seed=0,
            progress=lambda done, total, info: calls.append((done, total, info)),
            should_stop=lambda: next(polls) >= 4,
        )
    assert [(c[0], c[1]) for c in calls] == [(1, 10), (2, 10)]
    assert all(np.isfinite(c[2]["loss"]) and 0 <= c[2]["train_accuracy"] <= 1 for c in calls)


class _FakeDataset:
    def __init__(self, arrays: list[np.ndarray], labels: list[int]) -> None:
        self.arrays, self.labels = arrays, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.arrays)

    def load_image(self, i: int) -> Image.Image:
        return Image.fromarray(self.arrays[i], mode="L")


def test_tensors_from_dataset_matches_numpy_normalisation():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(5)]
    info = ModelInfo("t", (1, 8, 8), (0.25,), (0.5,), tuple("0123456789"))
    X, y = tensors_from_dataset(_FakeDataset(arrays, [3, 1, 4, 1, 5]), info)
    expected = (np.stack(arrays)[:, None].astype(np.float64) / 255.0 - 0.25) / 0.5
    assert X.dtype == torch.float32 and X.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(X.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert y.tolist() == [3, 1, 4, 1, 5] and y.dtype == torch.int64


def test_a_second_training_waits_for_the_first_says_so_and_gets_the_same_weights(data):
    """Trainings of one process run one at a time; a queued one reports it and is unaffected."""
    import threading

    from graceful_core.training import trainer

    X, y = data
    alone = train_model("small-cnn", X, y, epochs=1, seed=3)
    events, result = [], {}
    trainer._TRAIN_LOCK.acquire()  # as if another session were training
    try:
        worker = threading.Thread(
            target=lambda: result.update(
                model=train_model(
                    "small-cnn",
                    X,
                    y,
                    epochs=1,
                    seed=3,
                    on_wait=events.append,
                    progress=lambda *a: events.append("epoch"),
                )
            )
        )
        worker.start()
        deadline = time.monotonic() + 300  # ends when the event comes; the limit only stops a hang
        while not events and time.monotonic() < deadline:
            worker.join(0.05)
        assert events == [True] and worker.is_alive()  # queued, not training
    finally:
        trainer._TRAIN_LOCK.release()
    worker.join(60)
    assert events == [True, False, "epoch"]
    assert _same(result["model"], alone)


def test_cancel_while_queued_stops_without_training(data):
    from graceful_core.training import trainer

    X, y = data
    epochs = []
    trainer._TRAIN_LOCK.acquire()
    try:
        with pytest.raises(TrainingCancelled, match="waiting for another training"):
            train_model(
                "small-cnn", X, y, epochs=1, seed=0, should_stop=lambda: True, progress=lambda *a: epochs.append(a)
            )
    finally:
        trainer._TRAIN_LOCK.release()
    assert epochs == []
    assert trainer._TRAIN_LOCK.acquire(blocking=False)  # nothing left holding it
    trainer._TRAIN_LOCK.release()
    assert train_model("small-cnn", X, y, epochs=1, seed=0, on_wait=lambda w: pytest.fail("no wait")) is not None


def test_a_warm_start_begins_at_the_given_weights_and_leaves_them_alone(data):
    """``init_from``: one step of a vanishing learning rate stays at the given weights (a scripted model or a
    state dict); the control without it starts from the seed's random weights instead."""
    X, y = data
    base = train_model("small-cnn", X, y, epochs=1, seed=1, embedding_dim=16)
    scripted = torch.jit.script(base)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    kw = {"epochs": 1, "seed": 2, "embedding_dim": 16, "lr": 1e-30, "weight_decay": 0.0}
    for init in (scripted, base.state_dict()):
        warm = train_model("small-cnn", X, y, init_from=init, **kw)
        assert all(torch.allclose(warm.state_dict()[k], before[k], atol=1e-12) for k in before)
    assert _same(base, train_model("small-cnn", X, y, epochs=1, seed=1, embedding_dim=16))  # untouched
    cold = train_model("small-cnn", X, y, **kw)
    assert not all(torch.allclose(cold.state_dict()[k], before[k], atol=1e-3) for k in before)
    # a real warm start moves the weights, deterministically
    a = train_model("small-cnn", X, y, init_from=base, epochs=1, seed=2, embedding_dim=16)
    assert _same(a, train_model("small-cnn", X, y, init_from=base, epochs=1, seed=2, embedding_dim=16))
    assert not _same(a, base)


def test_a_warm_start_refuses_weights_of_another_architecture_by_name(data):
    X, y = data
    other = build_model("large-cnn", embedding_dim=16)
    with pytest.raises(ValueError, match="does not fit the architecture.*missing: .*unexpected: "):
        train_model("small-cnn", X, y, init_from=other, epochs=1, embedding_dim=16)
    with pytest.raises(ValueError, match="different shape: classifier.weight"):
        train_model("small-cnn", X, y, init_from=build_model("small-cnn", embedding_dim=8), epochs=1, embedding_dim=16)
    with pytest.raises(ValueError, match="module or a state dict"):
        train_model("small-cnn", X, y, init_from=3, epochs=1, embedding_dim=16)


def test_elodi_is_ldi_toward_the_mean_logits_of_its_reference_models(data):
    """ELODI with three references' logits trains exactly as LDI toward their mean (computed here); two are refused."""
    X, y = data
    gen = torch.Generator().manual_seed(7)
    refs = [torch.randn(X.shape[0], 10, generator=gen) * 3 for _ in range(3)]
    kw = {"epochs": 1, "seed": 2, "lam": 1.0, "margin": 0.3, "p": 2.0}
    elodi = train_model("small-cnn", X, y, method="elodi", reference_logits=refs, **kw)
    ldi = train_model("small-cnn", X, y, method="ldi", old_logits=torch.stack(refs).mean(dim=0), **kw)
    assert _same(elodi, ldi)
    assert not _same(elodi, train_model("small-cnn", X, y, method="ldi", old_logits=refs[0], **kw))  # control
    with pytest.raises(ValueError, match="at least 3 reference models"):
        train_model("small-cnn", X, y, method="elodi", reference_logits=refs[:2], **kw)
    with pytest.raises(ValueError, match="needs reference_models"):
        train_model("small-cnn", X, y, method="elodi", **kw)


def test_elodi_without_reference_files_trains_its_ensemble_of_other_seeds_first(tmp_path, monkeypatch):
    """train_update(method="elodi") trains n_references plain models (seeds S+1..S+k) into the cache, then ELODI; a
    second request reuses them (nothing trained again)."""
    from pathlib import Path

    from graceful_core.io.datasets import load_dataset
    from graceful_core.training.update import TrainParams, train_update_cached, trained_model_path

    monkeypatch.setenv("GRACEFUL_CACHE_DIR", str(tmp_path / "cache"))
    root = Path(__file__).resolve().parents[2] / "sample_data"
    data_dir = tmp_path / "train"
    for c in ("1", "7"):
        (data_dir / c).mkdir(parents=True)
        for f in sorted((root / "digits" / "train" / c).glob("*.png"))[:8]:
            (data_dir / c / f.name).write_bytes(f.read_bytes())
    old = root / "models" / "old.pt"
    params = TrainParams(method="elodi", arch="small-cnn", epochs=1, seed=5, n_references=3)
    done = train_update_cached(old, data_dir, params)
    assert done.path.is_file() and not done.reused
    from graceful_core.io.datasets import align_classes
    from graceful_core.models.loader import load_model

    ds = align_classes(load_dataset(data_dir), list(load_model(old).info.classes))
    for s in (6, 7, 8):
        assert trained_model_path(old, ds, TrainParams(method="plain", arch="small-cnn", epochs=1, seed=s)).is_file()
    assert not trained_model_path(old, ds, TrainParams(method="plain", arch="small-cnn", epochs=1, seed=9)).is_file()
    assert train_update_cached(old, data_dir, params).reused
