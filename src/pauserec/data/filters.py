"""Interaction filters: iterative k-core, the minimum sequence length that leave-one-out needs, a user sample.

The first two work on ``{user_id: [item_id, ...]}`` mappings (time-ordered sequences) and return new mappings in the
same user order; :func:`sample_users` works on a read :class:`Dataset`. The input is never modified.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from ..errors import DataError
from .dataset import Dataset

Sequences = Mapping[str, Sequence[str]]


def sequences_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group ``(user, item)`` pairs, in order, into per-user sequences (first appearance orders the users)."""
    out: dict[str, list[str]] = {}
    for user, item in pairs:
        out.setdefault(user, []).append(item)
    return out


def kcore_filter(sequences: Sequences | Iterable[tuple[str, str]], k: int) -> dict[str, list[str]]:
    """Keep the k-core: every kept user has ≥ k interactions and every kept item ≥ k interactions.

    Removing a sparse item can make a user sparse and the other way round, so the two cuts repeat until nothing
    changes. ``k <= 0`` turns filtering off (the sequences come back unchanged, empty users included).
    Accepts a ``{user: [item, ...]}`` mapping or an iterable of ``(user, item)`` pairs.
    """
    current = {u: list(s) for u, s in _as_mapping(sequences).items()}
    if k <= 0:
        return current
    while True:
        item_count = Counter(i for seq in current.values() for i in seq)
        sparse_items = {i for i, c in item_count.items() if c < k}
        pruned = {u: [i for i in s if i not in sparse_items] for u, s in current.items()} if sparse_items else current
        pruned = {u: s for u, s in pruned.items() if len(s) >= k}
        if len(pruned) == len(current) and not sparse_items:
            return pruned
        current = pruned


def drop_short_users(
    sequences: Sequences,
    min_interactions: int,
    mode: Literal["drop", "error"] = "drop",
    *,
    path: str | Path | None = None,
) -> tuple[dict[str, list[str]], int]:
    """Remove users with fewer than ``min_interactions`` interactions; return ``(kept, number dropped)``.

    With ``mode="error"`` a short user is a DataError naming the first one (in input order) and how many there are;
    ``path`` is the file the sequences came from, for the message.
    """
    if mode not in ("drop", "error"):
        raise ValueError(f"short_users must be 'drop' or 'error', not {mode!r}")
    short = [u for u, s in sequences.items() if len(s) < min_interactions]
    if short and mode == "error":
        first = short[0]
        raise DataError(
            f"user has {len(sequences[first])} interaction(s), fewer than min_interactions={min_interactions}; "
            f"{len(short)} user(s) are that short (use short_users='drop' to drop them)",
            path=path,
            key=first,
        )
    short_set = set(short)
    return {u: list(s) for u, s in sequences.items() if u not in short_set}, len(short)


def _as_mapping(sequences: Sequences | Iterable[tuple[str, str]]) -> Sequences:
    return sequences if isinstance(sequences, Mapping) else sequences_from_pairs(sequences)


def sample_users(dataset: Dataset, max_users: int, seed: int = 0) -> Dataset:
    """At most ``max_users`` users drawn with ``random.Random(seed)``, kept in their order, with their whole
    sequences; items no kept user has are dropped (the others keep their order, re-indexed from 0).

    A bound on a run's cost that does not depend on the data (``data.max_users``): a dataset with at most
    ``max_users`` users comes back unchanged. No k-core is applied again, so a kept item may have fewer than k
    interactions among the kept users.
    """
    if dataset.n_users <= max_users:
        return dataset
    kept = sorted(random.Random(seed).sample(range(dataset.n_users), max_users))
    used = sorted({i for u in kept for i in dataset.sequences[u]})
    new_index = {old: new for new, old in enumerate(used)}
    notes = {**dataset.notes, "sampled_users": f"{max_users} of {dataset.n_users} (data.max_users, seed {seed})",
             "items_without_sampled_users": dataset.n_items - len(used)}
    return Dataset(
        name=dataset.name,
        item_ids=[dataset.item_ids[i] for i in used],
        item_fields=[dataset.item_fields[i] for i in used],
        user_ids=[dataset.user_ids[u] for u in kept],
        sequences=[[new_index[i] for i in dataset.sequences[u]] for u in kept],
        notes=notes,
        timestamps=None if dataset.timestamps is None else [list(dataset.timestamps[u]) for u in kept],
    )
