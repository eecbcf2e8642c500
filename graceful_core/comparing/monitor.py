"""Watch negative flips while a model trains: :class:`FlipMonitor`.

The old (deployed) model runs once; each :meth:`FlipMonitor.update` runs the model being
trained once over the same samples and returns its accuracy, error rate, negative and
positive flip rates and backward trust compatibility against the old predictions (and,
when both have embeddings of one size, the cross-test Hit@1 of new queries on the old
gallery next to the old self-test). Any training loop can call it; a framework callback
is three lines::

    class FlipCallback(lightning.Callback):            # Lightning
        def __init__(self, old, val): self.monitor = FlipMonitor(old, val)
        def on_validation_epoch_end(self, trainer, model):
            if not trainer.sanity_checking:  # the sanity check before training is not an epoch
                model.log_dict(self.monitor.update(model, step=trainer.current_epoch, prefix="graceful/"))

The numbers are the core's metric functions (:mod:`graceful_core.metrics.flips`,
:mod:`~graceful_core.metrics.compatibility`, :func:`~graceful_core.metrics.retrieval.retrieval_metrics`),
the definitions of ``docs/metrics.md``. Monitor on a validation split: choosing an epoch
or a setting by the test split's NFR would overfit the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graceful_core.comparing.classes import harmonise_classes
from graceful_core.comparing.in_memory import (
    DataSource,
    Side,
    _in_memory_predictions,
    _is_shuffled,
    data_source,
    predictions_of,
    side_of,
)
from graceful_core.errors import InputError
from graceful_core.metrics import compatibility as cm
from graceful_core.metrics import flips as fm
from graceful_core.metrics.retrieval import retrieval_metrics
from graceful_core.models.devices import require_device
from graceful_core.types import ModelInfo, Predictions

__all__ = ["FlipMonitor", "METRIC_ALIASES"]

#: Short names of :meth:`FlipMonitor.update`'s numbers, each an alias of the JSON report's key: every entry
#: holds both (``entry["nfr"] == entry["negative_flip_rate"]``), so loggers and run records that read the short
#: names keep working. New code reads the long names.
METRIC_ALIASES: dict[str, str] = {
    "nfr": "negative_flip_rate",
    "pfr": "positive_flip_rate",
    "btc": "backward_trust_compatibility",
}


class FlipMonitor:
    """NFR and friends of a model in training against a fixed old model, one pass per update.

    Parameters
    ----------
    old : path, torch.nn.Module or array
        The deployed model, as :func:`graceful_core.compare` takes it: a model file or
        predictions table, a module, or logits ``[N, K]`` / predictions ``[N]`` in the
        order of ``data``. Run once, here.
    data : path, tuple, Dataset or DataLoader
        The samples (a validation split), as :func:`graceful_core.compare` takes them. A
        DataLoader must not shuffle (every update must see the samples in one order).
    classes, batch_size, device, info
        As in :func:`graceful_core.compare`.

    Attributes
    ----------
    history : list of dict
        One entry per :meth:`update`, in call order.
    labels : np.ndarray
        The true class indices (int64).
    old_pred : np.ndarray
        The old model's predictions (int64).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0])
    >>> mon = FlipMonitor(np.array([0, 1, 1, 1]), (None, y))
    >>> stats = mon.update(np.array([0, 0, 1, 0]), step=1)
    >>> stats["negative_flip_rate"], stats["positive_flip_rate"], stats["accuracy"]
    (0.25, 0.25, 0.75)
    >>> stats["nfr"] == stats["negative_flip_rate"]  # the short names are aliases
    True
    """

    def __init__(
        self,
        old: Any,
        data: Any,
        *,
        classes: Sequence[str] | None = None,
        batch_size: int = 256,
        device: str = "auto",
        info: ModelInfo | dict | None = None,
    ) -> None:
        self.device = require_device(device)
        self.batch_size = int(batch_size)
        self.info = info
        self._src: DataSource = data_source(data, self.batch_size)
        if self._src.kind == "none":
            raise InputError("data", "give the samples: a dataset path, (x, labels), a Dataset or a DataLoader")
        if self._src.kind == "loader" and _is_shuffled(self._src.loader):
            raise InputError("data", "the monitor needs the samples in one order every time: use shuffle=False")
        self._old_side = side_of(old, "old")
        if self._old_side.kind == "path" and self._src.kind != "path":
            raise InputError(self._old_side.value, "a model file or table needs a dataset path as data")
        self._old: Predictions = self._predictions(self._old_side, classes)
        self.classes: list[str] = list(self._old.classes)
        self.labels: np.ndarray = np.asarray(self._old.labels, dtype=np.int64)
        self.old_pred: np.ndarray = np.asarray(self._old.pred, dtype=np.int64)
        self._old_self_top1: float | None = None
        self.history: list[dict] = []

    def _predictions(self, side: Side, classes: Sequence[str] | None, classes_from: str | None = None) -> Predictions:
        if self._src.kind == "path":
            return predictions_of(
                side, self._src, classes=classes, info=self.info, batch_size=self.batch_size, device=self.device
            )
        # In-memory data: run this side alone (the old side once, then each new model).
        preds = _in_memory_predictions(
            [side], self._src, classes, self.batch_size, self.device, None, classes_from=classes_from
        )
        return preds[0]

    def _new_predictions(self, new_model: Any) -> Predictions:
        side = side_of(new_model, "new")
        if side.kind == "path" and self._src.kind != "path":
            raise InputError(side.value, "a model file or table needs a dataset path as data")
        p = self._predictions(side, self.classes, classes_from="the old model")
        if list(p.classes) != self.classes:
            p = harmonise_classes(self._old, p)
        if p.pred.shape != self.old_pred.shape:
            raise InputError(
                "new", f"gives {p.pred.shape[0]} predictions but the old model gave {self.old_pred.shape[0]}"
            )
        if not np.array_equal(np.asarray(p.ids, dtype=object), np.asarray(self._old.ids, dtype=object)):
            raise InputError("new", "its samples are not the old model's (different ids or order)")
        return p

    def _cross_top1(self, new_emb: np.ndarray | None) -> dict[str, float]:
        old_emb = self._old.embedding
        if old_emb is None or new_emb is None or old_emb.shape[1] != new_emb.shape[1]:
            return {}
        if self._old_self_top1 is None:
            self._old_self_top1 = float(
                retrieval_metrics(old_emb, old_emb, self.labels, ks=(1,), compute_map=False).hit_at[1]
            )
        cross = float(retrieval_metrics(new_emb, old_emb, self.labels, ks=(1,), compute_map=False).hit_at[1])
        return {"cross_top1": cross, "old_top1": self._old_self_top1}

    def update(self, new_model: Any, step: int | None = None, *, prefix: str = "") -> dict:
        """Run ``new_model`` once over the samples and return (and record) its flip metrics.

        Parameters
        ----------
        new_model : torch.nn.Module, path or array
            The model now (a module is run in eval mode without gradients; its training
            flag is restored, so the loop can go on), or its logits/predictions.
        step : int, optional
            Epoch or step, stored in the entry (default: the number of earlier updates).
        prefix : str
            Put before every returned key (``"graceful/"``: ``graceful/accuracy``), so a
            logger's own metrics (Keras's ``accuracy``) are never overwritten;
            :attr:`history` keeps the plain keys.

        Returns
        -------
        dict
            ``step``, ``n_samples``, ``accuracy``, ``error_rate``, ``old_accuracy``,
            ``negative_flip_rate``, ``positive_flip_rate``, ``backward_trust_compatibility``,
            ``n_negative_flips``, ``n_positive_flips`` (the keys of the JSON report), the
            short aliases ``nfr``, ``pfr``, ``btc`` of the three rates
            (:data:`METRIC_ALIASES`, same values) and, when both
            models have embeddings of one size, ``cross_top1`` (Hit@1 of new queries on
            the old gallery) and ``old_top1`` (the old self-test). Numbers only (nan
            where undefined), so the dict can go straight to a logger.
        """
        p = self._new_predictions(new_model)
        y, o, n = self.labels, self.old_pred, np.asarray(p.pred, dtype=np.int64)
        entry: dict[str, Any] = {
            "step": len(self.history) if step is None else step,
            "n_samples": int(y.shape[0]),
            "accuracy": fm.accuracy(y, n),
            "error_rate": fm.error_rate(y, n),
            "old_accuracy": fm.accuracy(y, o),
            "negative_flip_rate": fm.negative_flip_rate(y, o, n),
            "positive_flip_rate": fm.positive_flip_rate(y, o, n),
            "backward_trust_compatibility": cm.backward_trust_compatibility(y, o, n),
            "n_negative_flips": int(fm.negative_flip_mask(y, o, n).sum()),
            "n_positive_flips": int(fm.positive_flip_mask(y, o, n).sum()),
        }
        entry.update({short: entry[long] for short, long in METRIC_ALIASES.items()})
        entry.update(self._cross_top1(p.embedding))
        self.history.append(entry)
        return {f"{prefix}{k}": v for k, v in entry.items()}

    def history_frame(self):
        """:attr:`history` as a pandas DataFrame (one row per update)."""
        import pandas as pd

        return pd.DataFrame(self.history)
