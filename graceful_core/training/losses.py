"""Training objectives that reduce regressions when a model is replaced.

- :class:`FocalDistillationLoss`: positive-congruent training (Yan et al., CVPR 2021).
- :class:`BCTInfluenceLoss`: backward-compatible embeddings (Shen et al., CVPR 2020).

Both take the old model's outputs as inputs (old logits, or the old classifier head),
so any old model, or a precomputed table of its logits, can serve.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocalDistillationLoss", "BCTInfluenceLoss", "focal_distillation_weights"]


def _check_batch(new_logits: torch.Tensor, old_logits: torch.Tensor | None, target: torch.Tensor) -> None:
    if new_logits.ndim != 2:
        raise ValueError(f"new_logits must be [N, K], got shape {tuple(new_logits.shape)}")
    if old_logits is not None and old_logits.shape != new_logits.shape:
        raise ValueError(
            f"old_logits shape {tuple(old_logits.shape)} differs from new_logits shape {tuple(new_logits.shape)}"
        )
    if target.ndim != 1 or target.shape[0] != new_logits.shape[0]:
        raise ValueError(f"target must be [N] with N = {new_logits.shape[0]}, got shape {tuple(target.shape)}")


def focal_distillation_weights(old_logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Per-sample weights ``w_i = alpha + beta * 1[argmax old_i == y_i]`` (float, no gradient).

    ``argmax`` ties go to the lowest class index (``torch.argmax`` semantics).
    """
    correct = (old_logits.detach().argmax(dim=1) == target).to(old_logits.dtype)
    return alpha + beta * correct


class FocalDistillationLoss(nn.Module):
    r"""Focal distillation: cross-entropy plus a distillation term emphasised where the old model is right.

    .. math::

        L = \mathrm{CE}(z^{new}, y) + \lambda \frac{1}{N} \sum_i
            \bigl(\alpha + \beta\, 1[\arg\max z^{old}_i = y_i]\bigr)\, D_i

    with, for ``kind="kl"``,
    :math:`D_i = T^2\, \mathrm{KL}\bigl(\mathrm{softmax}(z^{old}_i/T)\,\|\,\mathrm{softmax}(z^{new}_i/T)\bigr)`
    and, for ``kind="l2"``, :math:`D_i = \tfrac12 \lVert z^{new}_i - z^{old}_i \rVert^2`.
    ``alpha=1, beta=0`` is plain (uniform) distillation, which also copies the old
    model's errors; ``beta > 0`` focuses on the samples the old model got right, the
    ones whose loss would be a negative flip.

    Reference: S. Yan, Y. Xiong, K. Kundu, S. Yang, S. Deng, M. Wang, W. Xia, S. Soatto,
    "Positive-Congruent Training: Towards Regression-Free Model Updates", CVPR 2021.

    Parameters
    ----------
    alpha : float
        Weight of the distillation term on every sample (>= 0).
    beta : float
        Extra weight where the old model is correct (>= 0).
    lam : float
        :math:`\lambda`, the weight of the whole distillation term (>= 0).
    temperature : float
        :math:`T` > 0 for ``kind="kl"`` (ignored for ``"l2"``).
    kind : {"kl", "l2"}
        The divergence D.
    """

    def __init__(
        self, alpha: float = 1.0, beta: float = 5.0, lam: float = 1.0, temperature: float = 1.0, kind: str = "kl"
    ) -> None:
        super().__init__()
        for name, v in (("alpha", alpha), ("beta", beta), ("lam", lam)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if kind not in ("kl", "l2"):
            raise ValueError(f"kind must be 'kl' or 'l2', got {kind!r}")
        self.alpha, self.beta, self.lam = float(alpha), float(beta), float(lam)
        self.temperature, self.kind = float(temperature), kind

    def divergence(self, new_logits: torch.Tensor, old_logits: torch.Tensor) -> torch.Tensor:
        """Per-sample ``D_i`` ``[N]`` (old logits detached)."""
        old_logits = old_logits.detach()
        if self.kind == "l2":
            return 0.5 * (new_logits - old_logits).pow(2).sum(dim=1)
        t = self.temperature
        log_p_old = F.log_softmax(old_logits / t, dim=1)
        log_p_new = F.log_softmax(new_logits / t, dim=1)
        return (log_p_old.exp() * (log_p_old - log_p_new)).sum(dim=1) * (t * t)

    def forward(self, new_logits: torch.Tensor, old_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss for a batch: ``new_logits``, ``old_logits`` ``[N, K]``, ``target`` ``[N]`` int64."""
        _check_batch(new_logits, old_logits, target)
        ce = F.cross_entropy(new_logits, target)
        w = focal_distillation_weights(old_logits, target, self.alpha, self.beta)
        return ce + self.lam * (w * self.divergence(new_logits, old_logits)).mean()


class BCTInfluenceLoss(nn.Module):
    r"""Backward-compatible training: the old, frozen classifier must also work on the new embedding.

    .. math::

        L = \mathrm{CE}(w_{new}\, \phi_{new}(x), y) + \lambda\, \mathrm{CE}(w_{old}\, \phi_{new}(x), y)

    The first term uses the new model's own logits, the second (the "influence loss")
    applies the old model's classifier ``old_head`` to the new embedding. The old head
    is frozen: its parameters get ``requires_grad = False`` here and are never
    updated; the gradient flows through it into the new embedding, which is pulled
    into the old embedding space so that new queries can search an old gallery.

    Reference: Y. Shen, Y. Xiong, W. Xia, S. Soatto, "Towards Backward-Compatible
    Representation Learning", CVPR 2020.

    Parameters
    ----------
    old_head : nn.Module or torch.jit.ScriptModule
        Maps embeddings ``[N, D]`` to logits ``[N, K]``.
    lam : float
        :math:`\lambda` >= 0.
    """

    def __init__(self, old_head: nn.Module, lam: float = 1.0) -> None:
        super().__init__()
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if not callable(old_head):
            raise ValueError("old_head must be callable (an nn.Module mapping embeddings to logits)")
        for p in old_head.parameters():
            p.requires_grad_(False)
        old_head.eval()
        self.old_head = old_head
        self.lam = float(lam)

    def train(self, mode: bool = True) -> BCTInfluenceLoss:
        """Keep the old head in eval mode whatever the mode of the loss."""
        super().train(mode)
        self.old_head.eval()
        return self

    def forward(self, new_embedding: torch.Tensor, new_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss: ``new_embedding`` ``[N, D]``, ``new_logits`` ``[N, K]``, ``target`` ``[N]``."""
        _check_batch(new_logits, None, target)
        if new_embedding.ndim != 2 or new_embedding.shape[0] != new_logits.shape[0]:
            raise ValueError(f"new_embedding must be [N, D] with N = {new_logits.shape[0]}")
        old_logits = self.old_head(new_embedding)
        if old_logits.shape[0] != new_embedding.shape[0] or old_logits.ndim != 2:
            raise ValueError(f"old_head returned shape {tuple(old_logits.shape)}, expected [N, K]")
        return F.cross_entropy(new_logits, target) + self.lam * F.cross_entropy(old_logits, target)
