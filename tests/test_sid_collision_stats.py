"""Collision policies (golden examples by hand, forced collisions) and SID statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pauserec.errors import ConfigError, DataError
from pauserec.sid.collision import resolve_collisions
from pauserec.sid.quantization import Quantization
from pauserec.sid.rqkmeans import rq_kmeans
from pauserec.sid.stats import read_index_json, sid_stats

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "data/amazon-scientific/reference-sids/Scientific.index.json"


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    import faiss

    faiss.omp_set_num_threads(1)


def golden_q() -> Quantization:
    """Items 0,1,2 share SID (0,1); 3 = (0,0) and 4 = (1,1) are unique. C_last = 4."""
    codes = [[0, 1], [0, 1], [0, 1], [0, 0], [1, 1]]
    dist = [
        [5.0, 1.0, 1.5, 4.0],  # own 1.0  -> moves second: nearest order 1,2,3,0; 1,0,2 taken -> 3 (rank 2)
        [4.0, 0.5, 2.0, 3.0],  # own 0.5  -> keeper (closest)
        [0.9, 0.8, 3.0, 5.0],  # own 0.8  -> moves first: order 1,0,2,3; 1,0 taken -> 2 (rank 2)
        [0.1, 2.0, 2.0, 2.0],
        [3.0, 0.2, 1.0, 2.0],
    ]
    return Quantization(codes=np.array(codes), level_sizes=[2, 4], last_level_distances=np.array(dist), centroids=[])


def test_reassign_golden():
    codes, sizes, report = resolve_collisions(golden_q(), "reassign")
    assert codes.tolist() == [[0, 3], [0, 1], [0, 2], [0, 0], [1, 1]]
    assert sizes == [2, 4]
    assert report["collisions_before"] == 3 and report["colliding_groups_before"] == 1
    assert report["collisions_after"] == 0
    assert report["items_moved"] == 2
    assert report["mean_moved_rank"] == 2.0 and report["max_moved_rank"] == 2


def test_extra_level_golden():
    q = golden_q()
    q.codes = np.array([[0, 1], [0, 1], [1, 0], [0, 1], [1, 0]])
    codes, sizes, report = resolve_collisions(q, "extra_level")
    assert codes.tolist() == [[0, 1, 0], [0, 1, 1], [1, 0, 0], [0, 1, 2], [1, 0, 1]]
    assert sizes == [2, 4, 3]
    assert report["collisions_before"] == 5 and report["collisions_after"] == 0 and report["items_moved"] == 3


def test_extra_level_without_collisions_appends_a_zero_level():
    q = golden_q()
    q.codes = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]])
    codes, sizes, report = resolve_collisions(q, "extra_level")
    assert codes[:, -1].tolist() == [0] * 5 and sizes == [2, 4, 1] and report["items_moved"] == 0


def test_reassign_full_prefix_raises_advising_extra_level():
    q = Quantization(
        codes=np.array([[0], [0], [1]]), level_sizes=[2], last_level_distances=np.zeros((3, 2)), centroids=[]
    )
    with pytest.raises(DataError, match="extra_level"):
        resolve_collisions(q, "reassign")


def test_unknown_policy():
    with pytest.raises(ConfigError):
        resolve_collisions(golden_q(), "drop")  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["reassign", "extra_level"])
def test_forced_collisions_from_duplicate_embeddings(policy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    x[100:106] = x[0]  # 7 identical embeddings -> identical SIDs
    x[106:110] = x[1]
    # "direction": its BLAS distances of the identical rows tie exactly (under "spherical" they differ in the 7th digit)
    q = rq_kmeans(x, levels=2, codebook_size=32, seed=0, space="direction")
    before = q.codes.copy()
    assert len(np.unique(before[[0, *range(100, 106)]], axis=0)) == 1
    codes, sizes, report = resolve_collisions(q, policy)
    assert len(np.unique(codes, axis=0)) == len(codes)
    assert report["collisions_after"] == 0 and report["collisions_before"] >= 12
    _, inv, counts = np.unique(before, axis=0, return_inverse=True, return_counts=True)
    untouched = counts[inv.reshape(-1)] == 1
    assert np.array_equal(codes[untouched, : before.shape[1]], before[untouched])
    assert np.array_equal(codes[:, :1], before[:, :1])  # (L-1)-prefixes never change
    assert ((codes >= 0) & (codes < np.array(sizes))).all()
    if policy == "reassign":
        assert np.array_equal(codes[0], before[0])  # identical distances: lowest index keeps its code
        assert report["items_moved"] == int(len(before) - len(counts))
    else:
        assert sizes[-1] == counts.max() and codes.shape[1] == 3


def test_stats_golden():
    s = sid_stats(np.array([[0, 0], [0, 0], [1, 2], [2, 2]]), [4, 4])
    assert {k: s[k] for k in ("items", "levels", "unique_sids", "items_sharing_sid", "duplicate_items")} == {
        "items": 4, "levels": 2, "unique_sids": 3, "items_sharing_sid": 2, "duplicate_items": 1
    }
    assert s["colliding_groups"] == 1 and s["max_group_size"] == 2
    lvl0, lvl1 = s["per_level"]
    assert lvl0["used_codes"] == 3 and lvl0["utilization"] == 0.75
    assert lvl0["perplexity"] == pytest.approx(2 ** 1.5)  # usage (1/2, 1/4, 1/4): entropy 1.5 bits
    assert lvl1["used_codes"] == 2 and lvl1["utilization"] == 0.5 and lvl1["perplexity"] == pytest.approx(2.0)


def test_stats_uniform_and_example_from_the_brief():
    s = sid_stats(np.arange(8).reshape(-1, 1) % 4, [4])
    assert s["per_level"][0]["perplexity"] == pytest.approx(4.0) and s["per_level"][0]["utilization"] == 1.0
    assert s["items_sharing_sid"] == 8 and s["colliding_groups"] == 4 and s["max_group_size"] == 2
    assert sid_stats(np.array([[0], [0], [1]]), [2])["items_sharing_sid"] == 2
    assert math.isclose(sid_stats(np.array([[1]]), [2])["per_level"][0]["perplexity"], 1.0)


def test_read_index_json(tmp_path):
    p = tmp_path / "X.index.json"
    p.write_text(json.dumps({"7": ["<a_1>", "<b_3>"], "9": ["<a_0>", "<b_3>"], "extra": ["<a_5>", "<b_0>"]}))
    codes, sizes = read_index_json(p, ["9", "7"])
    assert codes.tolist() == [[0, 3], [1, 3]] and sizes == [2, 4]
    with pytest.raises(DataError, match="'8'"):
        read_index_json(p, ["7", "8"])
    for bad in (["<a_1>", "<c_3>"], ["<a_1>", "b_3"], ["<a_x>", "<b_3>"], "<a_1><b_3>", ["<a_1>"]):
        p.write_text(json.dumps({"7": ["<a_1>", "<b_3>"], "9": bad}))
        with pytest.raises(DataError):
            read_index_json(p, ["7", "9"])


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference data not present")
def test_reference_scientific_sids():
    ids = list(json.loads(REFERENCE.read_text()))
    codes, sizes = read_index_json(REFERENCE, ids)
    s = sid_stats(codes, sizes)
    assert codes.shape == (4344, 4)
    assert s["duplicate_items"] == 554  # the README's "554 items share a code": items - unique SIDs
    assert s["items_sharing_sid"] == 887 and s["colliding_groups"] == 333
