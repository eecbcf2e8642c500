"""Mitigation losses against hand computations with explicit formulas (math module, loops), on fixed and random
logits, at the reference implementations' settings too."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from graceful_core.training.losses import (
    BCTInfluenceLoss,
    FocalDistillationLoss,
    LogitDifferenceInhibitionLoss,
    ensemble_logits,
)

NEW = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, 1.0, 2.0]]
OLD = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.4, 0.3], [0.0, 0.0, 1.5]]
Y = [0, 2, 1, 2]  # old argmax: 0 (right), 1 (wrong), 0 (wrong), 2 (right)


def _log_softmax(row: list[float], t: float = 1.0) -> list[float]:
    z = [v / t for v in row]
    m = max(z)
    lse = m + math.log(sum(math.exp(v - m) for v in z))
    return [v - lse for v in z]


def _ce(rows: list[list[float]], y: list[int]) -> float:
    return sum(-_log_softmax(r)[t] for r, t in zip(rows, y)) / len(y)


def _kl(old: list[float], new: list[float], t: float) -> float:
    lo, ln = _log_softmax(old, t), _log_softmax(new, t)
    return sum(math.exp(a) * (a - b) for a, b in zip(lo, ln)) * t * t


def _hand_focal(alpha, beta, lam, t, kind):
    total = 0.0
    for n, o, y in zip(NEW, OLD, Y):
        w = alpha + beta * (1.0 if max(range(3), key=lambda k: (o[k], -k)) == y else 0.0)
        d = _kl(o, n, t) if kind == "kl" else 0.5 * sum((a - b) ** 2 for a, b in zip(n, o))
        total += w * d
    return _ce(NEW, Y) + lam * total / len(Y)


@pytest.mark.parametrize(
    "alpha,beta,lam,t,kind",
    [
        (1.0, 5.0, 1.0, 1.0, "kl"),
        (1.0, 5.0, 0.5, 2.0, "kl"),
        (0.5, 2.0, 1.5, 3.0, "kl"),
        (1.0, 0.0, 1.0, 1.0, "kl"),
        (1.0, 5.0, 1.0, 1.0, "l2"),
        (0.0, 1.0, 2.0, 1.0, "l2"),
    ],
)
def test_focal_distillation_equals_hand_formula(alpha, beta, lam, t, kind):
    loss = FocalDistillationLoss(alpha=alpha, beta=beta, lam=lam, temperature=t, kind=kind)
    got = loss(torch.tensor(NEW, dtype=torch.float64), torch.tensor(OLD, dtype=torch.float64), torch.tensor(Y))
    assert float(got) == pytest.approx(_hand_focal(alpha, beta, lam, t, kind), rel=1e-12)


def test_weights_are_alpha_plus_beta_where_old_is_right():
    # Identical new/old rows except the divergence on one sample: only that sample's weight matters.
    old = torch.tensor(OLD, dtype=torch.float64)
    y = torch.tensor(Y)
    for i, expected_w in enumerate([1.0 + 5.0, 1.0, 1.0, 1.0 + 5.0]):
        new = old.clone()
        new[i, 0] += 1.0  # l2 divergence of sample i = 0.5
        loss = FocalDistillationLoss(alpha=1.0, beta=5.0, lam=1.0, kind="l2")
        ce = _ce(new.tolist(), Y)
        assert float(loss(new, old, y)) - ce == pytest.approx(expected_w * 0.5 / 4, rel=1e-12)


def test_plain_distillation_kl_matches_torch_kl_div():
    new, old, y = torch.tensor(NEW), torch.tensor(OLD), torch.tensor(Y)
    t = 2.0
    kl = (
        nn.functional.kl_div(
            nn.functional.log_softmax(new / t, 1),
            nn.functional.log_softmax(old / t, 1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )
    expected = nn.functional.cross_entropy(new, y) + kl
    got = FocalDistillationLoss(alpha=1.0, beta=0.0, temperature=t)(new, old, y)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_focal_gradient_only_reaches_new_logits():
    new = torch.tensor(NEW, requires_grad=True)
    old = torch.tensor(OLD, requires_grad=True)
    FocalDistillationLoss()(new, old, torch.tensor(Y)).backward()
    assert old.grad is None
    assert new.grad is not None and float(new.grad.abs().sum()) > 0


def test_focal_validation():
    with pytest.raises(ValueError, match="kind"):
        FocalDistillationLoss(kind="js")
    with pytest.raises(ValueError, match="temperature"):
        FocalDistillationLoss(temperature=0)
    with pytest.raises(ValueError, match="beta"):
        FocalDistillationLoss(beta=-1)
    with pytest.raises(ValueError, match="shape"):
        FocalDistillationLoss()(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))


def _old_head() -> nn.Linear:
    head = nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.1, 0.0, -0.2]))
    return head


E = [[1.0, 2.0], [-0.5, 0.3], [0.0, -1.0], [2.0, 2.0]]


def _hand_bct(lam: float) -> float:
    w = [[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]]
    b = [0.1, 0.0, -0.2]
    old_logits = [[sum(w[k][j] * e[j] for j in range(2)) + b[k] for k in range(3)] for e in E]
    return _ce(NEW, Y) + lam * _ce(old_logits, Y)


@pytest.mark.parametrize("lam", [1.0, 0.3])
@pytest.mark.parametrize("scripted", [False, True])
def test_bct_equals_hand_formula(lam, scripted):
    head = _old_head()
    if scripted:
        head = torch.jit.script(head)
    loss = BCTInfluenceLoss(head, lam=lam)
    got = loss(torch.tensor(E), torch.tensor(NEW), torch.tensor(Y))
    assert float(got) == pytest.approx(_hand_bct(lam), rel=1e-5)


def test_bct_old_head_frozen_gradient_reaches_new_embedding():
    head = _old_head()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    new_params = nn.Linear(2, 2)  # a stand-in "new embedding" layer
    opt = torch.optim.SGD(list(new_params.parameters()) + list(head.parameters()), lr=0.5)
    loss_fn = BCTInfluenceLoss(head, lam=1.0)
    assert all(not p.requires_grad for p in head.parameters())
    emb = new_params(torch.tensor(E))
    emb.retain_grad()
    loss_fn(emb, torch.tensor(NEW), torch.tensor(Y)).backward()
    assert emb.grad is not None and float(emb.grad.abs().sum()) > 0
    assert all(p.grad is None for p in head.parameters())
    w_before = new_params.weight.detach().clone()
    opt.step()
    assert not torch.equal(new_params.weight, w_before)
    for k, v in head.state_dict().items():
        assert torch.equal(v, before[k])


def test_bct_lambda_zero_is_cross_entropy():
    got = BCTInfluenceLoss(_old_head(), lam=0.0)(torch.tensor(E), torch.tensor(NEW), torch.tensor(Y))
    assert float(got) == pytest.approx(_ce(NEW, Y), rel=1e-6)


def test_bct_validation():
    with pytest.raises(ValueError, match="lam"):
        BCTInfluenceLoss(_old_head(), lam=-1.0)
    with pytest.raises(ValueError, match="new_embedding"):
        BCTInfluenceLoss(_old_head())(torch.zeros(3, 2), torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64))


# ----------------------------------------------------------------- the field's settings, on random tensors
def _random_batch(seed: int, n: int = 7, k: int = 5, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, scale, (n, k)), rng.normal(0, scale, (n, k)), rng.integers(0, k, n))


def _t(a):
    return torch.tensor(a, dtype=torch.float64) if np.asarray(a).dtype.kind == "f" else torch.tensor(a)


def _hand_ldi(new, ref, y, margin, p, lam) -> float:
    """CE + lam * mean_i mean_c max(|new - ref| - margin, 0)^p, one number at a time."""
    n, k = new.shape
    total = 0.0
    for i in range(n):
        row = 0.0
        for c in range(k):
            row += max(abs(new[i][c] - ref[i][c]) - margin, 0.0) ** p
        total += row / k
    return _ce(new.tolist(), y.tolist()) + lam * total / n


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "margin,p,lam", [(0.5, 2.0, 1.0), (0.0, 2.0, 0.3), (1.5, 1.0, 2.0), (0.25, 3.0, 0.7), (100.0, 2.0, 1.0)]
)
def test_ldi_equals_hand_computation_on_random_logits(seed, margin, p, lam):
    new, ref, y = _random_batch(seed)
    got = LogitDifferenceInhibitionLoss(margin=margin, p=p, lam=lam)(_t(new), _t(ref), _t(y))
    assert float(got) == pytest.approx(_hand_ldi(new, ref, y, margin, p, lam), rel=1e-12)
    if margin == 100.0:  # control: every difference is within the margin, so only the cross-entropy is left
        assert float(got) == pytest.approx(_ce(new.tolist(), y.tolist()), rel=1e-12)


def test_ldi_defaults_are_elodis_reference_setting_and_its_gradient_reaches_only_the_new_logits():
    loss = LogitDifferenceInhibitionLoss()
    assert (loss.margin, loss.p, loss.lam) == (0.5, 2.0, 1.0)
    new, ref, y = _random_batch(3)
    z, r = _t(new).requires_grad_(True), _t(ref).requires_grad_(True)
    loss(z, r, _t(y)).backward()
    assert r.grad is None and float(z.grad.abs().sum()) > 0


def test_elodi_reference_is_the_mean_of_at_least_three_models():
    rng = np.random.default_rng(4)
    members = [rng.normal(0, 2, (6, 4)) for _ in range(4)]
    new, y = rng.normal(0, 2, (6, 4)), rng.integers(0, 4, 6)
    ref = ensemble_logits([torch.tensor(m, dtype=torch.float32) for m in members])
    mean = [[sum(m[i][c] for m in members) / 4 for c in range(4)] for i in range(6)]  # by hand
    np.testing.assert_allclose(ref.numpy(), mean, rtol=1e-6)
    got = LogitDifferenceInhibitionLoss(margin=0.5, p=2.0, lam=1.0)(_t(new).float(), ref, _t(y))
    assert float(got) == pytest.approx(_hand_ldi(new, np.array(mean), y, 0.5, 2.0, 1.0), rel=1e-5)
    with pytest.raises(ValueError, match="at least 3 reference models"):
        ensemble_logits([torch.zeros(6, 4), torch.zeros(6, 4)])


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("alpha,beta,lam,t", [(1.0, 5.0, 1.0, 100.0), (1.0, 5.0, 0.1, 20.0), (0.5, 2.0, 2.0, 1.0)])
def test_focal_distillation_at_high_temperature_equals_hand_computation(seed, alpha, beta, lam, t):
    """The reference's temperature 100 (x T²) among others, on random logits of several scales."""
    new, old, y = _random_batch(seed, scale=4.0)
    old[0] = new[0]  # one sample with no divergence
    hand = 0.0
    for i in range(len(y)):
        w = alpha + beta * (1.0 if int(np.argmax(old[i])) == y[i] else 0.0)
        hand += w * _kl(old[i].tolist(), new[i].tolist(), t)
    hand = _ce(new.tolist(), y.tolist()) + lam * hand / len(y)
    got = FocalDistillationLoss(alpha=alpha, beta=beta, lam=lam, temperature=t)(_t(new), _t(old), _t(y))
    assert float(got) == pytest.approx(hand, rel=1e-9)


def test_at_temperature_100_distillation_is_close_to_matching_centred_logits():
    """T² KL(softmax(z_old/T) || softmax(z_new/T)) -> mean_c (d_c - mean d)² / 2 for d = z_new - z_old (Hinton et al.
    2015, section 2.1): the reference setting nearly matches logits."""
    new, old, y = _random_batch(2, scale=1.0)
    loss = FocalDistillationLoss(alpha=1.0, beta=0.0, lam=1.0, temperature=100.0)
    d = new - old
    d -= d.mean(axis=1, keepdims=True)
    approx = float(np.mean(np.sum(d**2, axis=1) / (2 * new.shape[1])))
    got = float(loss(_t(new), _t(old), _t(y))) - _ce(new.tolist(), y.tolist())
    assert got == pytest.approx(approx, rel=1e-2)


def test_the_reference_codes_kl_mode_is_mean_weight_times_mean_divergence_not_the_papers_formula():
    """The reference code multiplies per-sample losses [N] by weights [N, 1]: [N, N] by broadcasting, whose mean is
    mean(w) * mean(D). weighting="batch-mean" reproduces that; the default keeps the per-sample formula."""
    new, old, y = _random_batch(6, n=9, scale=3.0)
    N, O, Y_ = _t(new), _t(old), _t(y)
    t = 100.0
    sample_loss = (
        nn.functional.kl_div(
            nn.functional.log_softmax(N / t, 1), nn.functional.softmax(O / t, 1), reduction="none"
        ).sum(1)
        * t
        * t
    )  # the reference's [N]
    weights = (O.argmax(1) == Y_).int()[:, None] * 5.0 + 1.0  # its [N, 1]
    reference = float((sample_loss * weights).mean())
    assert (sample_loss * weights).shape == (9, 9)
    ce = float(nn.functional.cross_entropy(N, Y_))
    batch = FocalDistillationLoss(temperature=t, weighting="batch-mean")(N, O, Y_)
    assert float(batch) - ce == pytest.approx(reference, rel=1e-9)
    paper = float(FocalDistillationLoss(temperature=t)(N, O, Y_)) - ce
    assert paper == pytest.approx(float((sample_loss * weights[:, 0]).mean()), rel=1e-9)
    assert abs(paper - reference) > 1e-3 * reference  # they differ on this batch


def test_ldi_validation():
    for kw, word in (({"margin": -0.1}, "margin"), ({"p": 0}, "p must"), ({"lam": -1}, "lam")):
        with pytest.raises(ValueError, match=word):
            LogitDifferenceInhibitionLoss(**kw)
    with pytest.raises(ValueError, match="shape"):
        LogitDifferenceInhibitionLoss()(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="weighting"):
        FocalDistillationLoss(weighting="per-batch")
