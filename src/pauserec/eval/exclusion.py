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


def seen_items(dataset: Dataset, examples: Sequence[Example], part: str) -> list[frozenset[int]]:
    """Per example, every item the user interacted with before its target (``sequence[:example.position]``): the
    whole past, not only the (``split.max_history``-truncated) history the model reads. ``part`` (``"valid"`` or
    ``"test"``) names the examples in errors. Under either split protocol (one or many examples per user)."""
    if part not in ("valid", "test"):
        raise PauseRecError(f"history exclusion is defined for the valid and test parts, not {part!r}")
    out = []
    for ex in examples:
        seq = dataset.sequences[ex.user]
        if ex.position is None or not 0 < ex.position < len(seq) or seq[ex.position] != ex.target:
            raise PauseRecError(
                f"user {dataset.user_ids[ex.user]!r}: a {part} example whose target is not item {ex.position} of the "
                "user's sequence (not an example of this dataset's split?)"
            )
        out.append(frozenset(seq[:ex.position]))
    return out


def exclusions(dataset: Dataset, examples: Sequence[Example], part: str, enabled: bool) -> list[frozenset[int]] | None:
    """:func:`seen_items` when ``enabled`` (``eval.exclude_history``), else None (rank the whole catalogue)."""
    return seen_items(dataset, examples, part) if enabled else None
