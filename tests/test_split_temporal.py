"""The temporal split (MiniOneRec's protocol): golden splits worked by hand, with and without timestamps; the
dispatcher; what every consumer reads under it (training parts, exclusions, predictions, paired comparison)."""

import random

import pytest

from pauserec.config import SplitConfig, build_config
from pauserec.data.dataset import Dataset
from pauserec.data.split import Example, leave_one_out, make_split, temporal
from pauserec.errors import DataError, PauseRecError
from pauserec.eval.compare import compare_runs
from pauserec.eval.exclusion import seen_items
from pauserec.io import stable_hash, write_json, write_jsonl


def make_dataset(seqs, timestamps=None):
    n_items = max(max(s) for s in seqs) + 1
    return Dataset(name="toy", item_ids=[str(i) for i in range(n_items)],
                   item_fields=[{"title": f"item {i}"} for i in range(n_items)],
                   user_ids=[f"u{u}" for u in range(len(seqs))], sequences=seqs, timestamps=timestamps)


def triples(examples):
    return [(e.user, e.history, e.target, e.position) for e in examples]


# u0 = 0 1 2 at t 10 20 40; u1 = 3 4 5 6 at t 5 30 30 50; u2 = 7 8 at t 15 35.
# Samples (target time): (u0,1)@20 (u0,2)@40 (u1,1)@30 (u1,2)@30 (u1,3)@50 (u2,1)@35
# by time, ties by user then position: (u0,1) (u1,1) (u1,2) (u2,1) (u0,2) (u1,3); n = 6, cuts int(4.8) = 4, int(5.4) = 5
TIMED = make_dataset([[0, 1, 2], [3, 4, 5, 6], [7, 8]], [[10, 20, 40], [5, 30, 30, 50], [15, 35]])


def test_temporal_with_timestamps_golden():
    split = temporal(TIMED, SplitConfig(kind="temporal", max_history=2))
    assert triples(split.train) == [(0, (0,), 1, 1), (1, (3,), 4, 1), (1, (3, 4), 5, 2), (2, (7,), 8, 1)]
    assert triples(split.valid) == [(0, (0, 1), 2, 2)]
    assert triples(split.test) == [(1, (4, 5), 6, 3)]  # the history is cut to max_history=2
    assert split.train_ends == (2, 3, 2)
    assert split.training_sequences(TIMED) == [[0, 1], [3, 4, 5], [7, 8]]  # never item 2 or 6
    assert split.protocol == {"kind": "temporal", "max_history": 2, "fractions": [0.8, 0.1, 0.1], "order": "timestamp"}


# u0 = 0 1 2 3 4 (targets at relative positions 1/4 2/4 3/4 1), u1 = 5 6 7 8 (1/3 2/3 1): n = 7;
# by relative position: (u0,1) (u1,1) (u0,2) (u1,2) (u0,3) then the tie at 1: (u0,4) (u1,3) in a fixed user order;
# fractions 0.5/0.2/0.3: cuts int(3.5) = 3, int(7 * 0.7) = 4
def test_temporal_without_timestamps_golden():
    ds = make_dataset([[0, 1, 2, 3, 4], [5, 6, 7, 8]])
    split = temporal(ds, SplitConfig(kind="temporal", fractions=(0.5, 0.2, 0.3), max_history=10))
    assert triples(split.train) == [(0, (0,), 1, 1), (1, (5,), 6, 1), (0, (0, 1), 2, 2)]
    assert triples(split.valid) == [(1, (5, 6), 7, 2)]
    assert sorted(triples(split.test)) == [(0, (0, 1, 2), 3, 3), (0, (0, 1, 2, 3), 4, 4), (1, (5, 6, 7), 8, 3)]
    assert split.train_ends == (3, 2)
    assert split.protocol["order"] == "relative_position"


def test_relative_position_ties_follow_a_fixed_user_order_not_ids():
    ds = make_dataset([[u * 2, u * 2 + 1] for u in range(20)])  # 20 samples, all at relative position 1
    split = temporal(ds, SplitConfig(kind="temporal"))
    users = list(range(20))
    random.Random(0).shuffle(users)
    assert [e.user for e in split.train + split.valid + split.test] == users
    assert [e.user for e in split.test] == users[18:]  # cut2 = int(20 * 0.9) = 18


def test_dispatcher_and_hashes():
    ds = make_dataset([[0, 1, 2, 3, 4, 5], [3, 2, 1, 0, 4, 5]])  # 10 samples: cuts 8 and 9
    loo = make_split(ds, SplitConfig())
    assert triples(loo.test) == triples(leave_one_out(ds, SplitConfig()).test)
    # leave-one-out keeps the hash it always had (the committed results' env.json split_hash)
    old = stable_hash({k: [(e.user, e.history, e.target) for e in loo.part(k)] for k in ("train", "valid", "test")})
    assert loo.content_hash() == old and loo.protocol == {"kind": "leave_one_out", "max_history": 20,
                                                          "sliding_window": True}
    tmp = make_split(ds, SplitConfig(kind="temporal"))
    assert tmp.protocol["kind"] == "temporal" and tmp.content_hash() != old
    assert tmp.content_hash() != make_split(ds, SplitConfig(kind="temporal", max_history=1)).content_hash()


def test_config_fractions_are_checked():
    cfg = build_config(overrides=["split.kind=temporal", "split.fractions=[0.7,0.2,0.1]"])
    assert cfg.split.fractions == (0.7, 0.2, 0.1)
    with pytest.raises(Exception, match="sum to 1"):
        SplitConfig(kind="temporal", fractions=(0.8, 0.1, 0.2))


def test_too_few_samples_is_refused():
    with pytest.raises(DataError, match="non-empty"):
        temporal(make_dataset([[0, 1, 2]]), SplitConfig(kind="temporal"))  # 2 samples: int(1.6) = 1 = int(1.8)


def test_timestamps_hash_roundtrip_and_order(tmp_path):
    plain = make_dataset([[0, 1, 2]])
    assert plain.content_hash() == stable_hash([plain.item_ids, plain.item_fields, plain.user_ids, plain.sequences])
    timed = make_dataset([[0, 1, 2]], [[1.0, 2.0, 2.0]])
    assert timed.content_hash() != plain.content_hash()
    timed.save(tmp_path / "d.json")
    assert Dataset.load(tmp_path / "d.json").timestamps == [[1.0, 2.0, 2.0]]
    plain.save(tmp_path / "p.json")
    assert "timestamps" not in (tmp_path / "p.json").read_text()
    with pytest.raises(DataError, match="time order"):
        make_dataset([[0, 1, 2]], [[3.0, 2.0, 4.0]])
    with pytest.raises(DataError, match="3 items but 2 timestamps"):
        make_dataset([[0, 1, 2]], [[1.0, 2.0]])


def test_exclusion_reads_everything_before_each_example():
    split = temporal(TIMED, SplitConfig(kind="temporal", max_history=1))
    assert seen_items(TIMED, split.test, "test") == [frozenset({3, 4, 5})]  # not only the one shown item
    assert seen_items(TIMED, split.valid, "valid") == [frozenset({0, 1})]


def fake_run(root, name, rows, kind="temporal"):
    run = root / name
    write_jsonl(run / "predictions.jsonl", rows)
    m = {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    write_json(run / "metrics.json", {"model": name, "split": "test", "protocol": {"kind": kind},
                                      "metrics": {"recall@10": m, "users": {"count": len(rows)}}})
    return run


def test_paired_comparison_pairs_examples_not_users(tmp_path):
    # one user with two test examples: hit / miss in the base, miss / hit in the other
    base = fake_run(tmp_path, "a", [{"user": "u", "target": "x", "position": 3, "items": ["x"]},
                                    {"user": "u", "target": "y", "position": 4, "items": ["z"]}])
    other = fake_run(tmp_path, "b", [{"user": "u", "target": "x", "position": 3, "items": ["z"]},
                                     {"user": "u", "target": "y", "position": 4, "items": ["y"]}])
    d = compare_runs(base, [other], ks=[10], n_resamples=50)[str(other)]["recall@10"]
    assert d["mean"] == 0.0 and (d["only_baseline"], d["only_other"]) == (1, 1)
    moved = fake_run(tmp_path, "c", [{"user": "u", "target": "x", "position": 2, "items": ["x"]},
                                     {"user": "u", "target": "y", "position": 4, "items": ["y"]}])
    with pytest.raises(PauseRecError, match="different users"):
        compare_runs(base, [moved], ks=[10])
    loo = fake_run(tmp_path, "d", [{"user": "u", "target": "x", "items": ["x"]},
                                   {"user": "u", "target": "y", "items": ["y"]}], kind="leave_one_out")
    with pytest.raises(PauseRecError, match="different split protocols"):
        compare_runs(base, [loo], ks=[10])


def test_example_position_is_not_part_of_equality_or_key():
    assert Example(0, (1,), 2, 5) == Example(0, (1,), 2)
    assert Example(0, (1,), 2, 5).key == Example(0, (1,), 2).key  # rationale stores keyed before positions existed


def test_a_baseline_run_under_the_temporal_split_records_it(tmp_path):
    from helpers import make_data_dir, planted_data

    from pauserec.baselines import run_baseline
    from pauserec.io import read_json, read_jsonl

    planted, catalog = planted_data(n_items=24, n_users=30, length=6)
    rng = random.Random(0)  # lengths 2..8 and a clock: a late user can have several test samples
    seqs = [rng.sample(range(24), 2 + u % 7) for u in range(30)]
    times = [sorted(rng.sample(range(1000), len(s))) for s in seqs]
    dataset = Dataset(planted.name, planted.item_ids, planted.item_fields, planted.user_ids, seqs, timestamps=times)
    data = make_data_dir(tmp_path / "data", dataset, catalog)
    cfg = build_config(overrides=["split.kind=temporal", "split.max_history=10", "eval.bootstrap=0",
                                  "eval.exclude_history=true"])
    result = run_baseline("popularity", cfg, data, tmp_path / "pop", progress=False)
    split = make_split(dataset, cfg.split)
    rows = read_jsonl(tmp_path / "pop" / "predictions.jsonl")
    assert result["protocol"] == read_json(tmp_path / "pop" / "metrics.json")["protocol"] == split.protocol
    n = sum(len(s) - 1 for s in seqs)
    assert len(rows) == len(split.test) == n - int(n * 0.9)  # every test sample
    assert len({r["user"] for r in rows}) < len(rows)  # some user has several
    assert [r["position"] for r in rows] == [e.position for e in split.test]
    for row, ex in zip(rows, split.test):  # history exclusion per example: nothing the user had before it
        seen = {dataset.item_ids[i] for i in dataset.sequences[ex.user][:ex.position]}
        assert not seen & set(row["items"])
