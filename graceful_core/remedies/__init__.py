"""Remedies against an update's negative flips that need no training, on model files and datasets.

The numbers (mixing and gating curves, the recommendation rule) are pure NumPy in
:mod:`graceful_core.metrics.whatif`; this package runs models: :mod:`.interpolation`
(weight interpolation of two same-architecture models), :mod:`.transition` (one
deployable model file for the recommended point) and :mod:`.build`
(:func:`~graceful_core.remedies.build.mitigate_sources`: ``graceful mitigate``).
"""
