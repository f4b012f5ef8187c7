"""History exclusion: rank only items the user has not interacted with yet.

RecBole's full-sort evaluation does this by default; the generative (TIGER / LC-Rec) protocols do not. It is an
evaluation option (``eval.exclude_history``) applied identically to every model: popularity and SASRec drop the
items from their score vector, the trie-constrained decoders prune them from the trie per user, so no beam is
ever spent on an excluded item.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.dataset import Dataset
from ..data.split import Example
from ..errors import PauseRecError

# where the target sits in each user's sequence, per evaluated split part (leave-one-out)
_TARGET_OFFSET = {"valid": 2, "test": 1}


def seen_items(dataset: Dataset, examples: Sequence[Example], part: str) -> list[frozenset[int]]:
    """Per example, every item the user interacted with before its target: the whole sequence, not only the
    (``split.max_history``-truncated) history the model reads. ``part`` is ``"valid"`` or ``"test"``."""
    if part not in _TARGET_OFFSET:
        raise PauseRecError(f"history exclusion is defined for the valid and test parts, not {part!r}")
    offset = _TARGET_OFFSET[part]
    out = []
    for ex in examples:
        seq = dataset.sequences[ex.user]
        if seq[-offset] != ex.target:
            raise PauseRecError(
                f"user {dataset.user_ids[ex.user]!r}: the {part} target is not item {len(seq) - offset} of the "
                "sequence (not a leave-one-out example?)"
            )
        out.append(frozenset(seq[:-offset]))
    return out


def exclusions(dataset: Dataset, examples: Sequence[Example], part: str, enabled: bool) -> list[frozenset[int]] | None:
    """:func:`seen_items` when ``enabled`` (``eval.exclude_history``), else None (rank the whole catalogue)."""
    return seen_items(dataset, examples, part) if enabled else None
