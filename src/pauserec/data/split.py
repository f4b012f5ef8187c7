"""Splits of a dataset into training, validation and test examples: one function per protocol, one dispatcher.

:func:`make_split` is what every caller uses (``DataDir.split``: the LLM arms, popularity, SASRec, HSTU, TIGER), so
every model reads the identical split of ``split.kind``:

* :func:`leave_one_out`: per user, last item = test target, second to last = validation target, the rest =
  training. One validation and one test example per user.
* :func:`temporal` (MiniOneRec's protocol): every (history -> next item) sample of every user, ordered globally by
  the target's time, cut 8:1:1 (``split.fractions``). A user can have many validation and test examples; a user's
  samples of one part are consecutive in its sequence, since its own targets are in time order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..config import SplitConfig
from ..errors import DataError
from ..io import stable_hash
from .dataset import Dataset


@dataclass(frozen=True)
class Example:
    """One prediction task: after ``history`` (item indices, oldest first), the user chose ``target``.

    ``position``: the index of ``target`` in the user's whole sequence (None for an example not made by a split,
    e.g. a served request); what the user saw before it is ``sequence[:position]``, all of it, not only the
    ``split.max_history`` items shown.
    """

    user: int
    history: tuple[int, ...]
    target: int
    position: int | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """Stable identity of the example within its dataset (keys e.g. its rationale on disk)."""
        return stable_hash([self.user, list(self.history), self.target])


@dataclass(frozen=True)
class Split:
    """The three parts, the protocol that made them, and per user how much of its sequence training may read.

    ``train_ends[u]``: the training part of user ``u`` is ``sequence[:train_ends[u]]`` (leave-one-out: all but the
    last two items; temporal: up to the last training target, 0 when the user has none). Models that train on
    whole sequences (popularity counts, SASRec, HSTU) read exactly that.
    """

    train: list[Example]
    valid: list[Example]
    test: list[Example]
    train_ends: tuple[int, ...] = ()
    protocol: dict[str, Any] = field(default_factory=lambda: {"kind": "leave_one_out"})

    def part(self, name: str) -> list[Example]:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split part {name!r} (train, valid or test)")
        return getattr(self, name)

    def training_sequences(self, dataset: Dataset) -> list[list[int]]:
        """Per user, the items training may read, in order (``sequence[:train_ends[u]]``)."""
        return [list(seq[:end]) for seq, end in zip(dataset.sequences, self.train_ends, strict=True)]

    def content_hash(self) -> str:
        parts = ("train", "valid", "test")
        if self.protocol.get("kind") == "leave_one_out":  # the hash every leave-one-out result recorded
            return stable_hash({k: [(e.user, e.history, e.target) for e in self.part(k)] for k in parts})
        return stable_hash({"protocol": self.protocol,
                            **{k: [(e.user, e.history, e.target, e.position) for e in self.part(k)] for k in parts}})


def training_users_subset(examples: list[Example], max_users: int | None) -> list[Example]:
    """All training examples, or those of a fixed random subset of ``max_users`` users.

    The subset is drawn with a fixed seed (0), not the run's seed: every arm and every seed trains on the same
    users, and a rationale set acquired for them serves all runs.
    """
    users = sorted({e.user for e in examples})
    if max_users is None or max_users >= len(users):
        return list(examples)
    keep = set(random.Random(0).sample(users, max_users))
    return [e for e in examples if e.user in keep]


def make_split(dataset: Dataset, cfg: SplitConfig) -> Split:
    """The split ``cfg.kind`` makes of ``dataset``: the one entry point of every model."""
    if cfg.kind == "temporal":
        return temporal(dataset, cfg)
    return leave_one_out(dataset, cfg)


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
            train.append(Example(user, tuple(train_part[:t][-n:]), train_part[t], t))
        valid.append(Example(user, tuple(train_part[-n:]), seq[-2], len(seq) - 2))
        test.append(Example(user, tuple(seq[:-1][-n:]), seq[-1], len(seq) - 1))
    ends = tuple(len(seq) - 2 for seq in dataset.sequences)
    return Split(train, valid, test, ends, cfg.protocol())


def sample_order(dataset: Dataset) -> tuple[list[tuple[int, int]], str]:
    """Every ``(user, position)`` sample (position >= 1: a target after a history of at least one item), in the
    temporal split's global order, and the name of that order.

    With timestamps (``"timestamp"``): by the target's time, ties by user then position (MiniOneRec's stable sort
    of users in file order). Without (``"relative_position"``): by the target's position divided by its user's
    last position (1/(n-1), ..., 1), ties by a fixed random order of the users (``random.Random(0)``), so that
    which users' last items fall into the test part does not follow their ids.
    """
    samples = [(u, t) for u, seq in enumerate(dataset.sequences) for t in range(1, len(seq))]
    if dataset.timestamps is not None:
        times = dataset.timestamps
        return sorted(samples, key=lambda s: (times[s[0]][s[1]], s[0], s[1])), "timestamp"
    users = list(range(dataset.n_users))
    random.Random(0).shuffle(users)
    rank = {u: r for r, u in enumerate(users)}
    lengths = [len(seq) for seq in dataset.sequences]
    return sorted(samples, key=lambda s: (s[1] / (lengths[s[0]] - 1), rank[s[0]], s[1])), "relative_position"


def temporal(dataset: Dataset, cfg: SplitConfig) -> Split:
    """MiniOneRec's split: the samples of :func:`sample_order`, the first ``int(n * f_train)`` training, up to
    ``int(n * (f_train + f_valid))`` validation, the rest test; each history = the user's previous
    ``max_history`` items. Every part is kept in the global order."""
    order, name = sample_order(dataset)
    n = len(order)
    cut1 = int(n * cfg.fractions[0])
    cut2 = int(n * (cfg.fractions[0] + cfg.fractions[1]))
    if not 0 < cut1 < cut2 < n:
        raise DataError(f"{n} samples cannot be cut {list(cfg.fractions)} into three non-empty parts (split.fractions)")
    h = cfg.max_history
    seqs = dataset.sequences
    parts = [[Example(u, tuple(seqs[u][max(0, t - h):t]), seqs[u][t], t) for u, t in chunk]
             for chunk in (order[:cut1], order[cut1:cut2], order[cut2:])]
    ends = [0] * dataset.n_users
    for ex in parts[0]:
        ends[ex.user] = max(ends[ex.user], ex.position + 1)
    return Split(parts[0], parts[1], parts[2], tuple(ends), {**cfg.protocol(), "order": name})
