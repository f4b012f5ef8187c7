"""Collision policies: make every item's SID unique.

* ``"extra_level"`` (TIGER): append a level whose code is the item's rank, by item index, within its group
  of identical SIDs (0 for unique items). The new level's size is the largest group size; the level is
  always appended (size 1 when nothing collides) so the SID length depends only on the policy.
* ``"reassign"``: in each group of items sharing an SID, the item closest to its last-level centroid keeps
  its code (ties: lowest item index); every other item moves to its nearest last-level code that no item
  uses under the same ``(L-1)``-prefix. Movers are processed in ascending order of distance to their current
  code (ties: item index), so the result is deterministic. Untouched items keep their codes. If some prefix
  holds more items than the last level has codes, nothing can make it unique: a DataError advises
  ``extra_level`` or a bigger codebook (checked before anything moves).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, DataError
from .quantization import Quantization

Policy = Literal["reassign", "extra_level"]


def group_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group items by identical rows of ``codes`` ``(n, L)``: (group id per item ``(n,)``, group sizes)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def items_sharing(codes: np.ndarray) -> int:
    """Number of items whose SID row equals another item's."""
    gid, counts = group_ids(codes)
    return int((counts[gid] > 1).sum())


def resolve_collisions(q: Quantization, policy: Policy) -> tuple[np.ndarray, list[int], dict[str, Any]]:
    """Apply ``policy`` to ``q.codes`` ``(n, L)``.

    Returns:
        codes: ``(n, L)`` for reassign, ``(n, L + 1)`` for extra_level; all rows unique.
        level_sizes: the matching level sizes.
        report: ``policy``, ``collisions_before`` / ``collisions_after`` (items sharing an SID),
            ``colliding_groups_before``, ``items_moved`` (reassign: items whose code changed; extra_level:
            items given a non-zero extra code), ``mean_moved_rank`` / ``max_moved_rank`` (reassign: rank of
            the new code among the item's last-level codes sorted by distance, 0 = nearest; None if none moved).
    """
    if policy == "extra_level":
        codes, sizes, moved, ranks = _extra_level(q.codes, q.level_sizes)
    elif policy == "reassign":
        codes, sizes, moved, ranks = _reassign(q)
    else:
        raise ConfigError(f"unknown collision policy {policy!r}; use 'reassign' or 'extra_level'")
    gid, counts = group_ids(q.codes)
    report = {
        "policy": policy,
        "collisions_before": int((counts[gid] > 1).sum()),
        "colliding_groups_before": int((counts > 1).sum()),
        "collisions_after": items_sharing(codes),
        "items_moved": moved,
        "mean_moved_rank": float(np.mean(ranks)) if len(ranks) else None,
        "max_moved_rank": int(np.max(ranks)) if len(ranks) else None,
    }
    return codes, sizes, report


def _extra_level(codes: np.ndarray, level_sizes: list[int]) -> tuple[np.ndarray, list[int], int, list[int]]:
    """Append each item's rank (by index) within its identical-SID group as a new last level."""
    gid, counts = group_ids(codes)
    rank = np.zeros(len(codes), dtype=np.int64)
    order = np.argsort(gid, kind="stable")  # items grouped, index order within a group
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.zeros(0, dtype=np.int64)
    rank[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    new_size = int(counts.max()) if len(counts) else 1
    return np.column_stack([codes, rank]), [*level_sizes, new_size], int((rank > 0).sum()), []


def _reassign(q: Quantization) -> tuple[np.ndarray, list[int], int, list[int]]:
    """Move all but the closest item of each colliding group to the nearest free code under its prefix."""
    codes, dist = q.codes.copy(), q.last_level_distances
    n, c_last = len(codes), q.level_sizes[-1]
    prefix_codes = codes[:, :-1] if codes.shape[1] > 1 else np.zeros((n, 1), dtype=np.int64)
    _, prefix = np.unique(prefix_codes, axis=0, return_inverse=True)
    prefix = prefix.reshape(-1)
    _check_capacity(prefix, prefix_codes, c_last)
    taken = np.zeros((int(prefix.max(initial=-1)) + 1, c_last), dtype=bool)
    taken[prefix, codes[:, -1]] = True
    own_dist = dist[np.arange(n), codes[:, -1]]
    movers = _movers(codes, own_dist)
    ranks: list[int] = []
    for i in movers:
        order = np.argsort(dist[i], kind="stable")
        free = order[~taken[prefix[i], order]]
        new = int(free[0])
        taken[prefix[i], new] = True
        codes[i, -1] = new
        ranks.append(int(np.flatnonzero(order == new)[0]))
    return codes, list(q.level_sizes), len(movers), ranks


def _movers(codes: np.ndarray, own_dist: np.ndarray) -> list[int]:
    """Items that must move: every member of a colliding group except its closest (ties: lowest index),
    sorted by (distance to own code, item index)."""
    gid, counts = group_ids(codes)
    idx = np.arange(len(codes))
    by_group = np.lexsort((idx, own_dist, gid))  # group, then distance, then index
    first_of_group = np.ones(len(codes), dtype=bool)
    first_of_group[1:] = gid[by_group][1:] != gid[by_group][:-1]
    movers = by_group[~first_of_group & (counts[gid[by_group]] > 1)]
    return [int(i) for i in movers[np.lexsort((movers, own_dist[movers]))]]


def _check_capacity(prefix: np.ndarray, prefix_codes: np.ndarray, c_last: int) -> None:
    """Raise DataError if some (L-1)-prefix holds more items than there are last-level codes."""
    counts = np.bincount(prefix)
    if len(counts) and counts.max() > c_last:
        worst = int(counts.argmax())
        example = prefix_codes[int(np.flatnonzero(prefix == worst)[0])].tolist()
        raise DataError(
            f"{int(counts.max())} items share the SID prefix {example} but the last level has only {c_last} codes, "
            "so 'reassign' cannot make them unique; use sid.collision=extra_level or a larger sid.codebook_size"
        )
