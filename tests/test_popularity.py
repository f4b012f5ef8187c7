from pauserec.baselines.popularity import Popularity
from pauserec.config import SplitConfig
from pauserec.data.dataset import Dataset
from pauserec.data.split import Example, leave_one_out


def test_popularity_counts_training_part_only():
    # item 9 is only ever a test/valid target: it must not be counted
    seqs = [[1, 2, 9, 9], [1, 3, 4, 9], [2, 1, 5, 6]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)],
                 ["a", "b", "c"], seqs)
    split = leave_one_out(ds, SplitConfig(max_history=1))
    pop = Popularity(ds.n_items).fit(split.training_sequences(ds))
    # whole training parts (not the 1-item histories): [1,2], [1,3], [2,1] -> counts 1:3, 2:2, 3:1; ties by index
    assert pop.recommend(split.test[:1], 4) == [[1, 2, 3, 0]]


def test_popularity_counts_beyond_the_truncated_history():
    seqs = [[3, 3, 3, 1, 9, 9], [1, 2, 9, 8]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)], ["a", "b"], seqs)
    split = leave_one_out(ds, SplitConfig(max_history=1))  # the LLM sees only [1] and [2]
    # training parts [3,3,3,1] and [1,2]: 3 is the most popular although no history shows it
    assert Popularity(ds.n_items).fit(split.training_sequences(ds)).recommend(split.test[:1], 3) == [[3, 1, 2]]


def test_history_exclusion_uses_the_whole_sequence_and_skips_it():
    import pytest

    from pauserec.errors import PauseRecError
    from pauserec.eval.exclusion import seen_items

    seqs = [[1, 2, 9, 7], [1, 3, 4, 9], [2, 1, 5, 6]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)], ["a", "b", "c"], seqs)
    split = leave_one_out(ds, SplitConfig(max_history=1))  # the shown history is one item; exclusion reads them all
    assert seen_items(ds, split.test, "test") == [frozenset({1, 2, 9}), frozenset({1, 3, 4}), frozenset({2, 1, 5})]
    assert seen_items(ds, split.valid, "valid") == [frozenset({1, 2}), frozenset({1, 3}), frozenset({2, 1})]
    with pytest.raises(PauseRecError, match="not item"):  # an example made by no split has no position
        seen_items(ds, [Example(0, (2,), 9)], "test")
    with pytest.raises(PauseRecError, match="valid and test"):
        seen_items(ds, split.test, "train")
    pop = Popularity(ds.n_items).fit(split.training_sequences(ds))  # counts 1:3, 2:2, 3:1, then index order
    exclude = seen_items(ds, split.test, "test")
    assert pop.recommend(split.test, 3, exclude) == [[3, 0, 4], [2, 0, 5], [3, 0, 4]]
