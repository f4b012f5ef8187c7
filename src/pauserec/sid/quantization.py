"""The result every quantizer returns, and the distance helper they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Quantization:
    """Raw (possibly colliding) Semantic IDs produced by a quantizer.

    Attributes:
        codes: ``(n, L)`` int64; ``codes[i, l]`` is item ``i``'s code at level ``l``.
        level_sizes: ``[C_0, ..., C_{L-1}]``, the codebook size of each level.
        last_level_distances: ``(n, C_{L-1})`` float32, squared L2 distance from each item's last-level
            residual (the vector the last level quantizes) to every last-level centroid. The collision
            policy uses it to move clashing items to their next-nearest free code.
        centroids: per level, the ``(C_l, d)`` float32 codebook (``d`` = embedding dim for RQ-KMeans,
            latent dim for RQ-VAE).
        info: quantizer-specific facts (name, losses, ...), JSON-serialisable.
    """

    codes: np.ndarray
    level_sizes: list[int]
    last_level_distances: np.ndarray
    centroids: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.codes = np.asarray(self.codes, dtype=np.int64)
        self.last_level_distances = np.asarray(self.last_level_distances, dtype=np.float32)
        n, n_levels = self.codes.shape
        if n_levels != len(self.level_sizes):
            raise ValueError(f"{n_levels} code levels but {len(self.level_sizes)} level sizes")
        if self.last_level_distances.shape != (n, self.level_sizes[-1]):
            raise ValueError(
                f"last_level_distances must be (n={n}, C_last={self.level_sizes[-1]}), "
                f"got {self.last_level_distances.shape}"
            )


def squared_distances(x: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Squared L2 distances ``(n, C)`` float32 between rows of ``x`` ``(n, d)`` and ``centroids`` ``(C, d)``.

    Computed as ``|x|^2 - 2 x.c + |c|^2`` in chunks of rows, clipped at 0.
    """
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    c_sq = (c * c).sum(1)
    out = np.empty((len(x), len(c)), dtype=np.float32)
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk]
        d = (xb * xb).sum(1, keepdims=True) - 2.0 * (xb @ c.T) + c_sq[None, :]
        out[start : start + chunk] = np.maximum(d, 0.0)
    return out
