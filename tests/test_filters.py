"""data.max_users: a seeded user sample that keeps whole sequences and drops only the items nobody kept has."""

from pauserec.data.dataset import Dataset


def _dataset(n_users: int) -> Dataset:
    items = [f"i{j}" for j in range(2 * n_users + 1)]
    # user u has items 2u, 2u+1 and the shared item 2n: only the shared one survives every sample
    return Dataset(name="t", item_ids=items, item_fields=[{"title": x} for x in items],
                   user_ids=[f"u{u}" for u in range(n_users)],
                   sequences=[[2 * u, 2 * u + 1, 2 * n_users] for u in range(n_users)])


def test_sample_users_keeps_whole_sequences_in_order_and_drops_unused_items():
    from pauserec.data.filters import sample_users

    full = _dataset(10)
    sample = sample_users(full, 4, seed=0)
    assert sample.n_users == 4 and sample.user_ids == sorted(sample.user_ids, key=lambda u: int(u[1:]))
    assert sample.n_items == 4 * 2 + 1  # each kept user's own two items + the shared one
    for user, seq in zip(sample.user_ids, sample.sequences):
        u = int(user[1:])
        assert [sample.item_ids[i] for i in seq] == [f"i{2 * u}", f"i{2 * u + 1}", "i20"]
    assert [f["title"] for f in sample.item_fields] == sample.item_ids
    assert "4 of 10" in sample.notes["sampled_users"] and sample.notes["items_without_sampled_users"] == 12
    assert sample_users(full, 4, seed=0) == sample and sample_users(full, 4, seed=1).user_ids != sample.user_ids
    assert sample_users(full, 10) is full and sample_users(full, 50) is full


def test_prepare_applies_data_max_users(tmp_path):
    from test_cli import write_lcrec
    from pauserec import pipeline
    from pauserec.config import build_config

    src = write_lcrec(tmp_path / "src")
    full = pipeline.prepare(build_config(overrides=[f"data.path={src}"]), tmp_path / "a")
    cfg = build_config(overrides=[f"data.path={src}", f"data.max_users={full.n_users // 2}"])
    half = pipeline.prepare(cfg, tmp_path / "b")
    assert half.n_users == full.n_users // 2 and set(half.user_ids) < set(full.user_ids)
