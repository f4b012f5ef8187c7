"""Interaction filters: iterative k-core and the minimum sequence length that leave-one-out needs.

Both work on ``{user_id: [item_id, ...]}`` mappings (time-ordered sequences) and return new mappings in the same
user order; the input is never modified.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from ..errors import DataError

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
