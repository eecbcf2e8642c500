"""Regression metrics of a model update (definitions and formulas: ``docs/metrics.md``).

Submodules: :mod:`~graceful_core.metrics.flips` (error rates, negative/positive flips,
transition matrix, per-class and per-slice tables), :mod:`~graceful_core.metrics.compatibility`
(backward trust/error compatibility), :mod:`~graceful_core.metrics.significance`
(McNemar test, Wilson interval), :mod:`~graceful_core.metrics.confidence` (argmax,
true-class probability, flip confidence split). The embedding cross-test lives in
:mod:`graceful_core.metrics.retrieval`, which is deliberately not imported here.
"""

from graceful_core.metrics.compatibility import (
    backward_error_compatibility,
    backward_trust_compatibility,
    old_error_persistence,
)
from graceful_core.metrics.confidence import (
    argmax_lowest,
    flip_confidence_split,
    flip_confidence_split_from_true_probs,
    true_class_probability,
)
from graceful_core.metrics.flips import (
    accuracy,
    error_rate,
    negative_flip_impact,
    negative_flip_mask,
    negative_flip_rate,
    per_class_flips,
    per_slice_flips,
    positive_flip_mask,
    positive_flip_rate,
    relative_negative_flip_rate,
    transition_matrix,
)
from graceful_core.metrics.significance import mcnemar_p_value, wilson_interval

__all__ = [
    "accuracy",
    "argmax_lowest",
    "backward_error_compatibility",
    "backward_trust_compatibility",
    "error_rate",
    "flip_confidence_split",
    "flip_confidence_split_from_true_probs",
    "mcnemar_p_value",
    "negative_flip_impact",
    "negative_flip_mask",
    "negative_flip_rate",
    "old_error_persistence",
    "per_class_flips",
    "per_slice_flips",
    "positive_flip_mask",
    "positive_flip_rate",
    "relative_negative_flip_rate",
    "transition_matrix",
    "true_class_probability",
    "wilson_interval",
]
