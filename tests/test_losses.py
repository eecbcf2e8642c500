"""Mitigation losses against hand computations with explicit formulas (math module, loops)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from graceful_core.training.losses import BCTInfluenceLoss, FocalDistillationLoss

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
    [(1.0, 5.0, 1.0, 1.0, "kl"), (1.0, 5.0, 0.5, 2.0, "kl"), (0.5, 2.0, 1.5, 3.0, "kl"), (1.0, 0.0, 1.0, 1.0, "kl"),
     (1.0, 5.0, 1.0, 1.0, "l2"), (0.0, 1.0, 2.0, 1.0, "l2")],
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
    kl = nn.functional.kl_div(
        nn.functional.log_softmax(new / t, 1), nn.functional.log_softmax(old / t, 1), log_target=True,
        reduction="batchmean",
    ) * t * t
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
