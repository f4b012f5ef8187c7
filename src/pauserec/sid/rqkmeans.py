"""Residual k-means (RQ-KMeans): L levels of faiss k-means, each fitted on the previous level's residuals.

Level ``l`` clusters the residuals ``r_l`` (``r_0`` = the embeddings) into ``C_l`` centroids, assigns each item
its nearest centroid, and passes ``r_{l+1} = r_l - centroid`` on. Deterministic for a seed (faiss seeds its
initial sampling; assignment is an exact argmin with ties to the lowest code).

Three spaces for the clustering (``sid.kmeans_space``):

* ``"raw"`` -- plain residual k-means. On sentence embeddings its deeper levels are very unbalanced: residual
  norms vary a lot, so a few centroids near the origin take most items (Scientific, 3x256: perplexity
  206 / 31 / 36, 850 items needing a collision fix).
* ``"direction"`` (default) -- cluster the *directions* of the residuals (L2-normalised), then set each
  centroid to the mean of its items' raw residuals (the k-means update in the original space), so the
  residual passed on is still ``r - centroid``. On Scientific: perplexity 206 / 232 / 239, 576 items
  needing a fix, and a lower final residual (0.294 vs 0.315 mean squared norm).
  Its k-means still measures Euclidean distance to *unnormalised* centroids, and on some catalogues that
  degenerates the same way: a centroid averaging many unrelated directions has a small norm, so it is nearer to
  every diffuse point (``|x - c|^2 = 1 + |c|^2 - 2 x.c``) and swallows them. Amazon Office (2,420 items):
  perplexity 199 / 17 / 28, four level-2 codes holding 1,746 items; an LLM trained on those SIDs learned nothing
  in the demo's budget (test Recall@10 0.004, popularity 0.000).
* ``"spherical"`` (default) -- the same, with spherical k-means (faiss ``spherical=True``: centroids renormalised
  every iteration, items assigned by cosine). Office: 200 / 228 / 230, final residual 0.155 (0.178 above);
  Scientific: 208 / 239 / 242, as ``"direction"``'s.

Small catalogues: faiss k-means needs at least as many points as centroids, so ``n < C`` raises a
:class:`~pauserec.errors.ConfigError` advising a smaller ``sid.codebook_size`` rather than silently
shrinking a level (the token vocabulary must be what the config says).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .quantization import Quantization, squared_distances


def check_codebook_fits(n_items: int, codebook_size: int) -> None:
    """Raise ConfigError when there are fewer items than codes per level (k-means cannot fit)."""
    if n_items < codebook_size:
        raise ConfigError(
            f"{n_items} items cannot fill a codebook of {codebook_size} codes; "
            f"set sid.codebook_size <= {n_items} (e.g. {max(2, 2 ** int(np.log2(max(n_items, 2))))})"
        )


def fit_kmeans(x: np.ndarray, k: int, seed: int, niter: int = 25, spherical: bool = False) -> np.ndarray:
    """Fit faiss k-means on ``x`` ``(n, d)``; return ``(k, d)`` float32 centroids (unit rows if ``spherical``).

    Uses every point (no subsampling) and silences faiss' "too few points per centroid" warning.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    check_codebook_fits(len(x), k)
    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, seed=seed, verbose=False,
        min_points_per_centroid=1, max_points_per_centroid=max(1, -(-len(x) // k)), spherical=spherical,
    )
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32).reshape(k, x.shape[1])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _level(residual: np.ndarray, k: int, seed: int, niter: int, space: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One level: ``(codes (n,), centroids (k, d) in residual space, distances (n, k) used for assignment)``."""
    if space == "raw":
        cents = fit_kmeans(residual, k, seed=seed, niter=niter)
        distances = squared_distances(residual, cents)
        return distances.argmin(1), cents, distances
    directions = _unit(residual)
    dir_cents = fit_kmeans(directions, k, seed=seed, niter=niter, spherical=space == "spherical")
    distances = squared_distances(directions, dir_cents)  # unit centroids: the nearest is the most cosine-similar
    codes = distances.argmin(1)
    sums = np.zeros((k, residual.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, residual)
    counts = np.bincount(codes, minlength=k)[:, None]
    return codes, (sums / np.maximum(counts, 1)).astype(np.float32), distances


def rq_kmeans(
    embeddings: np.ndarray,
    levels: int,
    codebook_size: int,
    seed: int = 0,
    niter: int = 25,
    space: str = "spherical",
) -> Quantization:
    """Quantize ``embeddings`` ``(n, d)`` into ``levels`` codes of ``codebook_size`` each.

    Returns a :class:`Quantization` with codes ``(n, levels)``, centroids ``levels x (C, d)`` and
    ``last_level_distances`` ``(n, C)`` from the last level's input residual to its centroids (in the
    clustering space: directions for ``space="direction"`` or ``"spherical"``), used to re-assign colliding items.
    """
    if levels < 1:
        raise ConfigError(f"levels must be >= 1, got {levels}")
    residual = np.array(embeddings, dtype=np.float32, copy=True)
    if residual.ndim != 2 or not np.isfinite(residual).all():
        raise ConfigError(f"embeddings must be a finite (n, d) array, got shape {residual.shape}")
    check_codebook_fits(len(residual), codebook_size)
    codes = np.empty((len(residual), levels), dtype=np.int64)
    centroids: list[np.ndarray] = []
    distances = np.empty((0, 0), dtype=np.float32)
    for level in range(levels):
        codes[:, level], cents, distances = _level(residual, codebook_size, seed + level, niter, space)
        centroids.append(cents)
        residual -= cents[codes[:, level]]
    return Quantization(
        codes=codes,
        level_sizes=[codebook_size] * levels,
        last_level_distances=distances,
        centroids=centroids,
        info={"quantizer": "rqkmeans", "space": space, "niter": niter, "final_residual_mse": float((residual**2).sum(1).mean())},
    )
