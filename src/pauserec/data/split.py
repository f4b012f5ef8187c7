"""Leave-one-out split: last item = test target, second to last = validation target, the rest = training."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SplitConfig
from ..errors import DataError
from ..io import stable_hash
from .dataset import Dataset


@dataclass(frozen=True)
class Example:
    """One prediction task: after ``history`` (item indices, oldest first), the user chose ``target``."""

    user: int
    history: tuple[int, ...]
    target: int

    @property
    def key(self) -> str:
        """Stable identity of the example within its dataset (keys e.g. its rationale on disk)."""
        return stable_hash([self.user, list(self.history), self.target])


@dataclass(frozen=True)
class Split:
    train: list[Example]
    valid: list[Example]
    test: list[Example]

    def part(self, name: str) -> list[Example]:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split part {name!r} (train, valid or test)")
        return getattr(self, name)

    def content_hash(self) -> str:
        return stable_hash(
            {k: [(e.user, e.history, e.target) for e in self.part(k)] for k in ("train", "valid", "test")}
        )


def training_users_subset(examples: list[Example], max_users: int | None) -> list[Example]:
    """All training examples, or those of a fixed random subset of ``max_users`` users.

    The subset is drawn with a fixed seed (0), not the run's seed: every arm and every seed trains on the same
    users, and a rationale set acquired for them serves all runs.
    """
    import random

    users = sorted({e.user for e in examples})
    if max_users is None or max_users >= len(users):
        return list(examples)
    keep = set(random.Random(0).sample(users, max_users))
    return [e for e in examples if e.user in keep]


def leave_one_out(dataset: Dataset, cfg: SplitConfig) -> Split:
    """Split every user's sequence; deterministic (users in dataset order).

    With ``sliding_window`` every prefix of the training part (length >= 1) yields an example whose target
    is the next training item; otherwise only the last one does. Histories keep the ``max_history``
    most recent items. The validation history is the training part; the test history adds the validation item.
    """
    train, valid, test = [], [], []
    n = cfg.max_history
    for user, seq in enumerate(dataset.sequences):
        if len(seq) < 3:
            raise DataError(f"user {dataset.user_ids[user]!r} has {len(seq)} interactions; leave-one-out needs >= 3")
        train_part = seq[:-2]
        starts = range(1, len(train_part)) if cfg.sliding_window else range(max(1, len(train_part) - 1), len(train_part))
        for t in starts:
            train.append(Example(user, tuple(train_part[:t][-n:]), train_part[t]))
        valid.append(Example(user, tuple(train_part[-n:]), seq[-2]))
        test.append(Example(user, tuple(seq[:-1][-n:]), seq[-1]))
    return Split(train, valid, test)
