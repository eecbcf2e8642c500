"""graceful: see what a model update would break before you ship it."""

from graceful_core.errors import InputError
from graceful_core.types import Model, ModelInfo, Predictions

__all__ = ["InputError", "Model", "ModelInfo", "Predictions"]
__version__ = "0.1.0"
