"""RQ-KMeans and RQ-VAE on synthetic catalogues with planted structure."""

from __future__ import annotations

import numpy as np
import pytest

from pauserec.config import RQVAEConfig
from pauserec.errors import ConfigError
from pauserec.sid.rqkmeans import rq_kmeans


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    import faiss
    import torch

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)


def planted(per_leaf: int = 20, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 far-apart clusters x 4 sub-clusters (the same 4 offsets in every cluster), tight noise.

    Returns (x (256+, d) float32, cluster label (n,), sub-cluster label (n,)).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, d)) * 20.0
    offsets = rng.normal(size=(4, d)) * 3.0
    cluster = np.repeat(np.arange(4), 4 * per_leaf)
    sub = np.tile(np.repeat(np.arange(4), per_leaf), 4)
    x = centers[cluster] + offsets[sub] + rng.normal(size=(len(cluster), d)) * 0.1
    return x.astype(np.float32), cluster, sub


def is_bijection(labels: np.ndarray, codes: np.ndarray) -> bool:
    """True if each label maps to exactly one code and distinct labels to distinct codes."""
    pairs = set(zip(labels.tolist(), codes.tolist()))
    return len(pairs) == len(set(labels.tolist())) == len(set(codes.tolist()))


def test_rqkmeans_recovers_planted_hierarchy():
    x, cluster, sub = planted()
    q = rq_kmeans(x, levels=2, codebook_size=4, seed=0)
    assert q.codes.shape == (len(x), 2) and q.codes.dtype == np.int64
    assert q.level_sizes == [4, 4]
    assert is_bijection(cluster, q.codes[:, 0])
    assert is_bijection(sub, q.codes[:, 1])
    assert len(np.unique(q.codes, axis=0)) == 16
    assert [c.shape for c in q.centroids] == [(4, 16), (4, 16)]


def test_rqkmeans_last_level_distances_match_codes():
    x, _, _ = planted(per_leaf=5)
    q = rq_kmeans(x, levels=3, codebook_size=4, seed=1)
    assert q.last_level_distances.shape == (len(x), 4) and q.last_level_distances.dtype == np.float32
    assert (q.last_level_distances >= 0).all()
    assert np.array_equal(q.last_level_distances.argmin(1), q.codes[:, -1])


def test_rqkmeans_deterministic_for_a_seed():
    x, _, _ = planted(per_leaf=5, seed=3)
    noisy = x + np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 5
    a = rq_kmeans(noisy, levels=2, codebook_size=8, seed=7)
    b = rq_kmeans(noisy, levels=2, codebook_size=8, seed=7)
    assert np.array_equal(a.codes, b.codes)
    assert np.array_equal(a.last_level_distances, b.last_level_distances)


def test_rqkmeans_too_few_items_is_a_config_error():
    with pytest.raises(ConfigError, match="codebook_size"):
        rq_kmeans(np.zeros((3, 4), dtype=np.float32), levels=2, codebook_size=4)


def _tiny_rqvae(x: np.ndarray, seed: int):
    from pauserec.sid.rqvae import rq_vae

    cfg = RQVAEConfig(hidden_dims=[32], latent_dim=8, epochs=25, batch_size=32, lr=3e-3)
    return rq_vae(x, levels=2, codebook_size=4, cfg=cfg, seed=seed, progress=False)


def test_rqvae_trains_and_is_deterministic():
    x, cluster, _ = planted(per_leaf=6)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    a = _tiny_rqvae(x, seed=0)
    assert a.codes.shape == (len(x), 2) and a.level_sizes == [4, 4]
    assert ((a.codes >= 0) & (a.codes < 4)).all()
    assert a.last_level_distances.shape == (len(x), 4)
    assert a.info["recon_last_epoch"] < 0.5 * a.info["recon_first_epoch"]
    assert is_bijection(cluster, a.codes[:, 0])  # the coarse structure survives the encoder
    b = _tiny_rqvae(x, seed=0)
    assert np.array_equal(a.codes, b.codes)
    assert a.info["recon_curve"] == b.info["recon_curve"]


def _perplexity(codes: np.ndarray, size: int) -> float:
    p = np.bincount(codes, minlength=size) / len(codes)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_spherical_space_keeps_a_level_balanced_where_euclidean_directions_collapse():
    """Planted: 24 tight groups of 8 + 800 diffuse directions in 384-d. Euclidean k-means on directions gives the
    diffuse points to a few short (near-origin) centroids; spherical k-means (unit centroids) spreads them."""
    rng = np.random.default_rng(0)
    tight = np.repeat(rng.normal(size=(24, 384)), 8, axis=0) + 0.05 * rng.normal(size=(24 * 8, 384))
    x = np.vstack([tight, rng.normal(size=(800, 384))]).astype(np.float32)
    direction = rq_kmeans(x, levels=1, codebook_size=32, seed=0, space="direction")
    spherical = rq_kmeans(x, levels=1, codebook_size=32, seed=0, space="spherical")
    assert _perplexity(direction.codes[:, 0], 32) < 24 < 28 < _perplexity(spherical.codes[:, 0], 32)
    groups = spherical.codes[: 24 * 8, 0].reshape(24, 8)
    assert (groups == groups[:, :1]).all()  # each tight group still shares one code
