import pytest

from pauserec.config import SplitConfig
from pauserec.data.dataset import Dataset
from pauserec.data.split import leave_one_out
from pauserec.errors import DataError


def make_dataset(seqs):
    n_items = max(max(s) for s in seqs) + 1
    return Dataset(
        name="toy",
        item_ids=[str(i) for i in range(n_items)],
        item_fields=[{"title": f"item {i}"} for i in range(n_items)],
        user_ids=[f"u{u}" for u in range(len(seqs))],
        sequences=seqs,
    )


def test_leave_one_out_sliding_window():
    ds = make_dataset([[0, 1, 2, 3, 4], [5, 6, 7]])
    split = leave_one_out(ds, SplitConfig(max_history=20))
    assert [(e.user, e.history, e.target) for e in split.test] == [(0, (0, 1, 2, 3), 4), (1, (5, 6), 7)]
    assert [(e.user, e.history, e.target) for e in split.valid] == [(0, (0, 1, 2), 3), (1, (5,), 6)]
    assert [(e.user, e.history, e.target) for e in split.train] == [(0, (0,), 1), (0, (0, 1), 2)]
    # the training examples never contain the validation or test targets
    assert all(e.target not in (3, 4) for e in split.train if e.user == 0)


def test_truncation_and_no_sliding_window():
    ds = make_dataset([[0, 1, 2, 3, 4, 5, 6]])
    split = leave_one_out(ds, SplitConfig(max_history=2, sliding_window=False))
    assert [(e.history, e.target) for e in split.train] == [((2, 3), 4)]
    assert split.valid[0].history == (3, 4)
    assert split.test[0].history == (4, 5)


def test_split_is_deterministic_and_hashed():
    ds = make_dataset([[0, 1, 2, 3], [3, 2, 1]])
    a, b = leave_one_out(ds, SplitConfig()), leave_one_out(ds, SplitConfig())
    assert a.content_hash() == b.content_hash()
    c = leave_one_out(ds, SplitConfig(max_history=1))
    assert c.content_hash() != a.content_hash()


def test_short_user_is_refused():
    ds = make_dataset([[0, 1, 2], [1, 2]])
    with pytest.raises(DataError, match="u1"):
        leave_one_out(ds, SplitConfig())


def test_dataset_roundtrip_and_tamper(tmp_path):
    ds = make_dataset([[0, 1, 2], [2, 1, 0]])
    ds.save(tmp_path / "d.json")
    assert Dataset.load(tmp_path / "d.json") == ds
    text = (tmp_path / "d.json").read_text().replace('"item 1"', '"item X"')
    (tmp_path / "d.json").write_text(text)
    with pytest.raises(DataError, match="content hash"):
        Dataset.load(tmp_path / "d.json")
