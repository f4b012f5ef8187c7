import math

import numpy as np
import pytest

from pauserec.eval.metrics import bootstrap_interval, compute_metrics, per_user_metrics, target_ranks


def test_ranks_dedupe_and_absent():
    ranked = [[5, 5, 5, 7], [1, 2, 3], [9, 1, 9, 2, 4]]
    # user0: target 7 is at position 1 after removing the repeated 5s; user1: absent; user2: [9,1,2,4] -> 4 at 3
    assert target_ranks(ranked, [7, 8, 4]).tolist() == [1, -1, 3]


def test_duplicates_never_count_twice():
    m = compute_metrics([[3, 3, 3, 3, 3]], [3], ks=[5], bootstrap=0)
    assert m["recall@5"]["mean"] == 1.0
    m = compute_metrics([[1, 1, 1, 1, 1, 2]], [2], ks=[1, 5], bootstrap=0)
    # de-duplicated list is [1, 2]: target at rank 1 (0-based) -> hit@5, NDCG = 1/log2(3)
    assert m["recall@1"]["mean"] == 0.0
    assert m["recall@5"]["mean"] == 1.0
    assert m["ndcg@5"]["mean"] == pytest.approx(1 / math.log2(3))


def test_golden_values_by_hand():
    # ranks: user0 rank 0, user1 rank 2, user2 rank 6, user3 absent
    ranked = [[10, 1, 2], [1, 2, 10], [1, 2, 3, 4, 5, 6, 10], [1, 2]]
    m = compute_metrics(ranked, [10, 10, 10, 10], ks=[1, 5, 10], bootstrap=0)
    assert m["recall@1"]["mean"] == pytest.approx(1 / 4)
    assert m["recall@5"]["mean"] == pytest.approx(2 / 4)
    assert m["recall@10"]["mean"] == pytest.approx(3 / 4)
    assert m["ndcg@5"]["mean"] == pytest.approx((1.0 + 0.5) / 4)  # 1/log2(2)=1, 1/log2(4)=0.5
    assert m["ndcg@10"]["mean"] == pytest.approx((1.0 + 0.5 + 1 / 3) / 4)  # 1/log2(8)=1/3
    assert m["users"]["count"] == 4


def test_per_user_arrays_shape():
    out = per_user_metrics(np.array([0, -1, 4]), [1, 5])
    assert out["recall@1"].tolist() == [1, 0, 0]
    assert out["recall@5"].tolist() == [1, 0, 1]
    assert "ndcg@1" not in out


def test_bootstrap_interval_contains_mean_and_is_deterministic():
    rng = np.random.default_rng(1)
    values = (rng.random(500) < 0.3).astype(float)
    lo, hi = bootstrap_interval(values, 500, seed=3)
    assert lo < values.mean() < hi
    assert (lo, hi) == bootstrap_interval(values, 500, seed=3)
    # roughly +-1.96 * sqrt(p(1-p)/n) = +-0.04
    assert 0.05 < hi - lo < 0.11


def test_bootstrap_off_gives_nan():
    lo, hi = bootstrap_interval(np.ones(3), 0)
    assert math.isnan(lo) and math.isnan(hi)
