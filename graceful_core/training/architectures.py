"""Small CNN architectures for the sample models, by name.

Every architecture splits into an embedding ``embed(x) -> [N, D]`` and a linear
classifier ``head(e) -> [N, K]`` with ``forward(x) == head(embed(x))``; both are
``@torch.jit.export`` methods so they survive ``torch.jit.script`` (docs/formats.md).
The embedding dimension ``D`` is a constructor argument, so models of different
sizes can share one embedding space (a requirement of BCT training, Shen et al.,
CVPR 2020, and of heterogeneous compatibility, Duggal et al., CVPR 2021).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ARCHITECTURES", "EmbeddingClassifier", "build_model", "architecture_names"]


class EmbeddingClassifier(nn.Module):
    """``features`` (conv trunk) -> flatten -> ``projector`` (MLP to D) -> ``classifier`` (linear to K).

    Parameters
    ----------
    features : nn.Module
        Maps ``[N, C, H, W]`` to ``[N, F, h, w]``.
    flat_dim : int
        ``F * h * w``.
    hidden : int or None
        Width of a hidden ReLU layer before the embedding (None: no hidden layer).
    embedding_dim : int
        ``D``, the embedding size (the input size of the classifier).
    num_classes : int
        ``K``.
    dropout : float
        Dropout before the embedding projection, training mode only.
    """

    def __init__(
        self,
        features: nn.Module,
        flat_dim: int,
        hidden: int | None,
        embedding_dim: int,
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if hidden is not None:
            layers += [nn.Linear(flat_dim, hidden), nn.ReLU()]
            flat_dim = hidden
        layers.append(nn.Linear(flat_dim, embedding_dim))
        self.features = features
        self.projector = nn.Sequential(*layers)
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes

    @torch.jit.export
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[N, D]`` of a normalised batch ``[N, C, H, W]``."""
        return self.projector(self.features(x))

    @torch.jit.export
    def head(self, e: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, K]`` from embeddings ``[N, D]`` (the linear classifier)."""
        return self.classifier(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, K]``; equal to ``head(embed(x))``."""
        return self.head(self.embed(x))


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU()]


def small_cnn(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """Two 3x3 convs (16, 32) and one 2x2 max-pool; 8x8 -> 4x4; linear embedding."""
    features = nn.Sequential(*_conv(in_channels, 16), *_conv(16, 32), nn.MaxPool2d(2))
    return EmbeddingClassifier(features, 32 * 4 * 4, None, embedding_dim, num_classes)


def large_cnn(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """Three 3x3 convs (32, 64, 64), two max-pools; 8x8 -> 2x2; 128-wide hidden layer, dropout 0.2."""
    features = nn.Sequential(*_conv(in_channels, 32), *_conv(32, 64), nn.MaxPool2d(2), *_conv(64, 64), nn.MaxPool2d(2))
    return EmbeddingClassifier(features, 64 * 2 * 2, 128, embedding_dim, num_classes, dropout=0.2)


def large_cnn_v3(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """A wider ``large-cnn``: convs (48, 96, 128), 256-wide hidden layer, dropout 0.3."""
    features = nn.Sequential(*_conv(in_channels, 48), *_conv(48, 96), nn.MaxPool2d(2), *_conv(96, 128), nn.MaxPool2d(2))
    return EmbeddingClassifier(features, 128 * 2 * 2, 256, embedding_dim, num_classes, dropout=0.3)


def edge_cnn(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """A tiny "edge" model: one 3x3 conv (8) and a max-pool; 8x8 -> 4x4; linear embedding."""
    features = nn.Sequential(*_conv(in_channels, 8), nn.MaxPool2d(2))
    return EmbeddingClassifier(features, 8 * 4 * 4, None, embedding_dim, num_classes)


# ----------------------------------------------------------------- 28x28 (Fashion-MNIST)
def small_cnn_28(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """Two 3x3 convs (8, 16), each followed by a 2x2 max-pool; 28x28 -> 7x7; linear embedding."""
    features = nn.Sequential(*_conv(in_channels, 8), nn.MaxPool2d(2), *_conv(8, 16), nn.MaxPool2d(2))
    return EmbeddingClassifier(features, 16 * 7 * 7, None, embedding_dim, num_classes)


def large_cnn_28(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """Three 3x3 convs (16, 32, 64), each followed by a 2x2 max-pool; 28x28 -> 3x3; 128-wide hidden layer, dropout 0.2."""
    features = nn.Sequential(
        *_conv(in_channels, 16), nn.MaxPool2d(2), *_conv(16, 32), nn.MaxPool2d(2), *_conv(32, 64), nn.MaxPool2d(2)
    )
    return EmbeddingClassifier(features, 64 * 3 * 3, 128, embedding_dim, num_classes, dropout=0.2)


def large_cnn_v3_28(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """A wider ``large-cnn-28``: convs (24, 48, 96), 256-wide hidden layer, dropout 0.3."""
    features = nn.Sequential(
        *_conv(in_channels, 24), nn.MaxPool2d(2), *_conv(24, 48), nn.MaxPool2d(2), *_conv(48, 96), nn.MaxPool2d(2)
    )
    return EmbeddingClassifier(features, 96 * 3 * 3, 256, embedding_dim, num_classes, dropout=0.3)


def edge_cnn_28(in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64) -> EmbeddingClassifier:
    """A tiny "edge" model: one 3x3 conv (8) and a 4x4 max-pool; 28x28 -> 7x7; linear embedding."""
    features = nn.Sequential(*_conv(in_channels, 8), nn.MaxPool2d(4))
    return EmbeddingClassifier(features, 8 * 7 * 7, None, embedding_dim, num_classes)


#: Registry: name -> constructor ``(in_channels, num_classes, embedding_dim) -> EmbeddingClassifier``.
#: Each architecture takes one input size (:data:`INPUT_SIZES`): the digits sample's 8x8
#: images or the Fashion-MNIST sample's 28x28 ones.
ARCHITECTURES: dict[str, Callable[..., EmbeddingClassifier]] = {
    "small-cnn": small_cnn,
    "large-cnn": large_cnn,
    "large-cnn-v3": large_cnn_v3,
    "edge-cnn": edge_cnn,
    "small-cnn-28": small_cnn_28,
    "large-cnn-28": large_cnn_28,
    "large-cnn-v3-28": large_cnn_v3_28,
    "edge-cnn-28": edge_cnn_28,
}
#: The image size ``(H, W)`` each architecture takes.
INPUT_SIZES: dict[str, tuple[int, int]] = {
    name: ((28, 28) if name.endswith("-28") else (8, 8)) for name in ARCHITECTURES
}
#: The default architecture of a trained update for each input size (the sample's "new" model).
DEFAULT_ARCHITECTURES: dict[tuple[int, int], str] = {(8, 8): "large-cnn", (28, 28): "large-cnn-28"}


def architecture_names() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(ARCHITECTURES)


def build_model(
    arch: str, *, in_channels: int = 1, num_classes: int = 10, embedding_dim: int = 64
) -> EmbeddingClassifier:
    """Construct a fresh (randomly initialised, current RNG state) model by registry name.

    Raises
    ------
    ValueError
        If ``arch`` is not registered or a size is not positive.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(architecture_names())}")
    for name, v in (("in_channels", in_channels), ("num_classes", num_classes), ("embedding_dim", embedding_dim)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    return ARCHITECTURES[arch](in_channels=in_channels, num_classes=num_classes, embedding_dim=embedding_dim)
