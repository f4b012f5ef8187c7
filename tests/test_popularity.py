from pauserec.baselines.popularity import Popularity
from pauserec.config import SplitConfig
from pauserec.data.dataset import Dataset
from pauserec.data.split import leave_one_out


def test_popularity_counts_training_part_only():
    # item 9 is only ever a test/valid target: it must not be counted
    seqs = [[1, 2, 9, 9], [1, 3, 4, 9], [2, 1, 5, 6]]
    ds = Dataset("t", [str(i) for i in range(10)], [{"title": str(i)} for i in range(10)],
                 ["a", "b", "c"], seqs)
    split = leave_one_out(ds, SplitConfig())
    pop = Popularity(ds.n_items).fit(split)
    # training parts: [1,2], [1,3], [2,1] -> counts 1:3, 2:2, 3:1; ties broken by index
    assert pop.recommend(split.test[:1], 4) == [[1, 2, 3, 0]]
