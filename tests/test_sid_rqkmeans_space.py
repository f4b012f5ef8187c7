"""RQ-KMeans clustering space: residual directions keep deeper levels balanced when residual norms vary."""

import numpy as np

from pauserec.sid.rqkmeans import rq_kmeans
from pauserec.sid.stats import sid_stats


def varying_norm_data(seed=0):
    """4 coarse clusters; inside each, 8 residual directions with norms spread over two orders of magnitude."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(4, 16)) * 10
    dirs = rng.normal(size=(8, 16))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rows = []
    for c in range(4):
        for _ in range(64):
            norm = 10 ** rng.uniform(-1, 1)
            rows.append(coarse[c] + norm * dirs[rng.integers(8)] + rng.normal(scale=0.01, size=16))
    return np.asarray(rows, dtype=np.float32)


def test_direction_space_balances_the_second_level():
    x = varying_norm_data()
    raw = sid_stats(rq_kmeans(x, 2, 8, space="raw").codes, [8, 8])["per_level"][1]["perplexity"]
    direction = sid_stats(rq_kmeans(x, 2, 8, space="direction").codes, [8, 8])["per_level"][1]["perplexity"]
    assert direction > raw + 1.0, (direction, raw)
    assert direction > 6.0  # close to the 8 planted directions


def test_direction_centroids_are_means_of_assigned_residuals():
    x = varying_norm_data(1)
    q = rq_kmeans(x, 2, 8, space="direction")
    residual = x - q.centroids[0][q.codes[:, 0]]
    for code in np.unique(q.codes[:, 1]):
        members = residual[q.codes[:, 1] == code]
        np.testing.assert_allclose(q.centroids[1][code], members.mean(0), rtol=1e-4, atol=1e-4)
