"""The tiny model the model-file tests save and load: its class names, its ``graceful.json`` info, and its
outputs computed directly with torch (the reference every loaded file is held to)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from graceful_core.types import ModelInfo

CLASSES = ("a", "b", "c")
INFO = ModelInfo(name="tiny", input_size=(1, 8, 8), mean=(0.5,), std=(0.25,), classes=CLASSES)


def torch_outputs(module: nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and embeddings computed directly with the torch module."""
    with torch.no_grad():
        t = torch.from_numpy(x)
        return module(t).numpy(), module.embed(t).numpy()
