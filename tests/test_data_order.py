"""The training data order is a function of the seed (and epoch) only, never of the global RNG."""

import pytest
import torch
from transformers import TrainingArguments

from pauserec.train.trainer import SeededSampler, SFTTrainer


class Rows(torch.utils.data.Dataset):
    """Items of varied lengths that carry their own index."""

    def __init__(self, n: int = 40):
        self.rows = [{"input_ids": [1] * (3 + (7 * i) % 11), "index": i} for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(rows):
    return {"index": torch.tensor([r["index"] for r in rows])}


def first_epoch(strategy: str, tmp_path, global_seed: int, seed: int = 0) -> list[int]:
    """The item order of epoch 0 as the Trainer's dataloader yields it, after reseeding the global RNG."""
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, train_sampling_strategy=strategy, seed=seed,
        remove_unused_columns=False, report_to="none", use_cpu=True,
    )
    trainer = SFTTrainer(model=torch.nn.Linear(2, 2), args=args, train_dataset=Rows(), data_collator=collate,
                         validate=lambda m: {})
    torch.manual_seed(global_seed)  # what model init, new rows or dropout would do to the global RNG
    torch.rand(global_seed + 1)
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    return [i for batch in loader for i in batch["index"].tolist()]


@pytest.mark.parametrize("strategy", ["random", "group_by_length"])
def test_order_ignores_the_global_rng(strategy, tmp_path):
    a = first_epoch(strategy, tmp_path, global_seed=1)
    b = first_epoch(strategy, tmp_path, global_seed=2)
    assert sorted(a) == list(range(40)) and a == b
    assert a != list(range(40))  # shuffled all the same
    assert first_epoch(strategy, tmp_path, global_seed=1, seed=1) != a  # another seed, another order


def test_epochs_differ_and_repeat():
    s = SeededSampler(50, seed=3)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == sorted(e1) == list(range(50)) and e0 != e1
    s.set_epoch(0)
    assert list(s) == e0  # a resumed epoch replays its order, whatever ran before


def test_length_grouped_order_groups_lengths():
    lengths = [(7 * i) % 23 for i in range(64)]
    s = SeededSampler(64, seed=0, lengths=lengths, group_size=4)
    order = list(s)
    assert sorted(order) == list(range(64))
    # within each mega-batch (50 steps' worth, here the whole set) lengths are sorted longest first
    assert lengths[order[0]] == max(lengths)
    with pytest.raises(ValueError, match="lengths"):
        SeededSampler(3, seed=0, lengths=[1, 2])
