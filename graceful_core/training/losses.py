"""Training objectives that reduce regressions when a model is replaced.

- :class:`FocalDistillationLoss`: positive-congruent training (Yan et al., CVPR 2021).
- :class:`LogitDifferenceInhibitionLoss`: logit difference inhibition toward a reference model
  or, for ELODI, toward the mean logits of an ensemble (:func:`ensemble_logits`; Zhao et al., 2022).
- :class:`BCTInfluenceLoss`: backward-compatible embeddings (Shen et al., CVPR 2020).

All take a reference model's outputs as inputs (logits, or the old classifier head),
so any model, or a precomputed table of its logits, can serve. docs/metrics.md (section
"Training losses") has the formulas and how they differ from the PCT reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FocalDistillationLoss",
    "LogitDifferenceInhibitionLoss",
    "BCTInfluenceLoss",
    "focal_distillation_weights",
    "logit_difference_inhibition",
    "ensemble_logits",
    "PCT_REFERENCE",
    "ELODI_MIN_MODELS",
]

#: The focal-distillation setting of the PCT reference implementation
#: (amazon-science/regression-constraint-model-upgrade): KL at temperature 100 times T², α 1, β 5.
PCT_REFERENCE = {"alpha": 1.0, "beta": 5.0, "temperature": 100.0}
#: ELODI's reference is the mean of at least this many models (Zhao et al., 2022).
ELODI_MIN_MODELS = 3
#: ``FocalDistillationLoss(weighting=...)``: the paper's per-sample weights, or the PCT reference code's
#: KL-mode arithmetic (per-sample losses [N] times weights [N, 1] broadcast to [N, N]: mean(w) · mean(D)).
WEIGHTINGS = ("per-sample", "batch-mean")


def _check_batch(new_logits: torch.Tensor, old_logits: torch.Tensor | None, target: torch.Tensor) -> None:
    if new_logits.ndim != 2:
        raise ValueError(f"new_logits must be [N, K], got shape {tuple(new_logits.shape)}")
    if old_logits is not None and old_logits.shape != new_logits.shape:
        raise ValueError(
            f"old_logits shape {tuple(old_logits.shape)} differs from new_logits shape {tuple(new_logits.shape)}"
        )
    if target.ndim != 1 or target.shape[0] != new_logits.shape[0]:
        raise ValueError(f"target must be [N] with N = {new_logits.shape[0]}, got shape {tuple(target.shape)}")


def focal_distillation_weights(
    old_logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
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
    weighting : {"per-sample", "batch-mean"}
        ``"per-sample"`` (default): the formula above, the paper's. ``"batch-mean"``: what the PCT
        reference code computes in KL mode, :math:`\lambda\, \overline{w}\, \overline{D}` (the mean
        weight of the batch times its mean divergence: its per-sample losses ``[N]`` times weights
        ``[N, 1]`` broadcast to ``[N, N]``), i.e. plain distillation scaled by one number per batch.
        For comparisons with that code only.

    Examples
    --------
    The PCT reference setting (:data:`PCT_REFERENCE`): temperature 100, α 1, β 5.

    >>> import torch
    >>> loss = FocalDistillationLoss(lam=1.0, **PCT_REFERENCE)
    >>> z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> float(loss(z, z, torch.tensor([0, 0]))) == float(torch.nn.functional.cross_entropy(z, torch.tensor([0, 0])))
    True
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 5.0,
        lam: float = 1.0,
        temperature: float = 1.0,
        kind: str = "kl",
        weighting: str = "per-sample",
    ) -> None:
        super().__init__()
        for name, v in (("alpha", alpha), ("beta", beta), ("lam", lam)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if kind not in ("kl", "l2"):
            raise ValueError(f"kind must be 'kl' or 'l2', got {kind!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        self.alpha, self.beta, self.lam = float(alpha), float(beta), float(lam)
        self.temperature, self.kind, self.weighting = float(temperature), kind, weighting

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
        d = self.divergence(new_logits, old_logits)
        if self.weighting == "batch-mean":
            return ce + self.lam * w.mean() * d.mean()
        return ce + self.lam * (w * d).mean()


def logit_difference_inhibition(
    new_logits: torch.Tensor, ref_logits: torch.Tensor, margin: float = 0.5, p: float = 2.0
) -> torch.Tensor:
    r"""Per-sample logit difference inhibition ``[N]`` (reference logits detached).

    .. math::

        \mathrm{LDI}_i = \frac{1}{K} \sum_c \max\bigl(|z^{new}_{ic} - z^{ref}_{ic}| - m,\ 0\bigr)^p

    Differences within the margin ``m`` cost nothing; beyond it they cost their excess to the
    power ``p`` (Zhao et al., *ELODI: Ensemble Logit Difference Inhibition for Positive-Congruent
    Training*, 2022; the reference code clamps at 1e-7 instead of 0, a constant (1e-7)^p per class).

    >>> import torch
    >>> logit_difference_inhibition(torch.tensor([[1.0, 3.0]]), torch.tensor([[1.2, 1.0]]), margin=0.5, p=2)
    tensor([1.1250])
    """
    if new_logits.shape != ref_logits.shape or new_logits.ndim != 2:
        raise ValueError(
            f"new and reference logits must both be [N, K], got {tuple(new_logits.shape)} and {tuple(ref_logits.shape)}"
        )
    excess = torch.clamp((new_logits - ref_logits.detach()).abs() - margin, min=0.0)
    return excess.pow(p).mean(dim=1)


def ensemble_logits(
    logits: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...], min_models: int = ELODI_MIN_MODELS
) -> torch.Tensor:
    """ELODI's reference: the mean logits ``[N, K]`` of ``k >= min_models`` models (``[k, N, K]`` or a list).

    >>> import torch
    >>> ensemble_logits([torch.zeros(1, 2), torch.ones(1, 2), 2 * torch.ones(1, 2)])
    tensor([[1., 1.]])
    """
    stacked = torch.stack([t.detach() for t in logits]) if isinstance(logits, list | tuple) else logits.detach()
    if stacked.ndim != 3:
        raise ValueError(f"need the logits of k models as [k, N, K], got shape {tuple(stacked.shape)}")
    if stacked.shape[0] < min_models:
        raise ValueError(
            f"ELODI needs the logits of at least {min_models} reference models (different seeds), "
            f"got {stacked.shape[0]}"
        )
    return stacked.float().mean(dim=0)


class LogitDifferenceInhibitionLoss(nn.Module):
    r"""Cross-entropy plus logit difference inhibition (LDI) toward a reference model's logits.

    .. math::

        L = \mathrm{CE}(z^{new}, y) + \lambda \frac{1}{N} \sum_i \frac{1}{K} \sum_c
            \max\bigl(|z^{new}_{ic} - z^{ref}_{ic}| - m,\ 0\bigr)^p

    With the old model as reference it keeps the new logits within ``m`` of the old ones; with
    :func:`ensemble_logits` of ``k >= 3`` models of the new architecture trained with different
    seeds as reference it is ELODI (Zhao et al., *ELODI: Ensemble Logit Difference Inhibition for
    Positive-Congruent Training*, 2022), whose reference code uses ``m = 0.5``, ``p = 2``.

    Parameters
    ----------
    margin : float
        ``m >= 0``: logit differences up to it are free.
    p : float
        The power ``p > 0`` of the excess.
    lam : float
        :math:`\lambda >= 0`.

    Examples
    --------
    >>> import torch
    >>> new, ref, y = torch.tensor([[1.0, 3.0]]), torch.tensor([[1.2, 1.0]]), torch.tensor([1])
    >>> ce = torch.nn.functional.cross_entropy(new, y)
    >>> float(LogitDifferenceInhibitionLoss(margin=0.5, p=2, lam=1.0)(new, ref, y) - ce)  # (2 - 0.5)² / 2
    1.125
    """

    def __init__(self, margin: float = 0.5, p: float = 2.0, lam: float = 1.0) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not p > 0:
            raise ValueError(f"p must be > 0, got {p}")
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.margin, self.p, self.lam = float(margin), float(p), float(lam)

    def forward(self, new_logits: torch.Tensor, ref_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss: ``new_logits``, ``ref_logits`` ``[N, K]``, ``target`` ``[N]`` int64."""
        _check_batch(new_logits, ref_logits, target)
        ce = F.cross_entropy(new_logits, target)
        return ce + self.lam * logit_difference_inhibition(new_logits, ref_logits, self.margin, self.p).mean()


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
