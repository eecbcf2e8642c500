"""graceful: see what a model update would break before you ship it.

The Python API (imported on first use, so ``import graceful_core`` stays light):

- :func:`compare` (:mod:`graceful_core.api`): compare two models (files, ``nn.Module``s or
  arrays) on a dataset path, ``(x, labels)``, a Dataset or a DataLoader; returns the
  CLI's :class:`~graceful_core.results.comparison.Comparison`.
- :func:`mitigate` (:func:`graceful_core.remedies.build.mitigate_sources`): what mixing,
  gating and weight interpolation of two model files (or tables) would change, the honest
  recommendation, and ``.export(path)`` to write it as one model file.
- :class:`FlipMonitor` (:mod:`graceful_core.comparing.monitor`): NFR, error rate and compatibility of
  a model in training against the deployed one, one pass per call.
"""

from typing import TYPE_CHECKING, Any

from graceful_core.errors import InputError
from graceful_core.types import Model, ModelInfo, Predictions

if TYPE_CHECKING:  # the names of __all__ that __getattr__ below loads on first use
    from graceful_core.api import compare
    from graceful_core.comparing.monitor import FlipMonitor
    from graceful_core.remedies.build import mitigate_sources as mitigate

__all__ = ["InputError", "Model", "ModelInfo", "Predictions", "compare", "FlipMonitor", "mitigate"]
__version__ = "0.2.0"


# Loaded on first use (PEP 562): this package's __init__ runs before any of its modules, so importing
# the API here would pull every layer (comparing, remedies) into ``import graceful_core.metrics.flips``.
def __getattr__(name: str) -> Any:
    if name == "compare":
        from graceful_core.api import compare

        return compare
    if name == "mitigate":
        from graceful_core.remedies.build import mitigate_sources

        return mitigate_sources
    if name == "FlipMonitor":
        from graceful_core.comparing.monitor import FlipMonitor

        return FlipMonitor
    raise AttributeError(f"module 'graceful_core' has no attribute {name!r}")
