from pauserec.baselines.popularity import Popularity
from pauserec.config import SplitConfig
from pauserec.data.dataset import Dataset
from pauserec.data.split import leave_one_out


def test_popularity_counts_training_part_only():
    # item 9 is only ever a test/valid target: it must not be counted
    seqs = [[1, 2, 9, 9], [1, 3, 4, 9], [2, 1, 5, 6]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)],
                 ["a", "b", "c"], seqs)
    split = leave_one_out(ds, SplitConfig(max_history=1))
    pop = Popularity(ds.n_items).fit(ds)
    # whole training parts (not the 1-item histories): [1,2], [1,3], [2,1] -> counts 1:3, 2:2, 3:1; ties by index
    assert pop.recommend(split.test[:1], 4) == [[1, 2, 3, 0]]


def test_popularity_counts_beyond_the_truncated_history():
    seqs = [[3, 3, 3, 1, 9, 9], [1, 2, 9, 8]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)], ["a", "b"], seqs)
    split = leave_one_out(ds, SplitConfig(max_history=1))  # the LLM sees only [1] and [2]
    # training parts [3,3,3,1] and [1,2]: 3 is the most popular although no history shows it
    assert Popularity(ds.n_items).fit(ds).recommend(split.test[:1], 3) == [[3, 1, 2]]
