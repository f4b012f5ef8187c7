"""What the service knows about items: external ids, titles, title search and the popularity order."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..baselines.popularity import Popularity
from ..data.dataset import Dataset
from ..data.text import item_title


class UnknownItemsError(ValueError):
    """Some item ids or titles of a request are not in the catalogue (``unknown`` lists them, in request order)."""

    def __init__(self, kind: str, unknown: list[str]):
        self.kind, self.unknown = kind, unknown
        super().__init__(f"unknown item {kind}(s): {', '.join(repr(u) for u in unknown[:20])}"
                         + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""))


class ItemCatalogue:
    """Item index <-> external id and title; case-insensitive title lookup and search; training popularity."""

    def __init__(self, dataset: Dataset):
        self.ids = list(dataset.item_ids)
        self.titles = [item_title(f) or iid for f, iid in zip(dataset.item_fields, dataset.item_ids, strict=True)]
        self._index = {iid: i for i, iid in enumerate(self.ids)}
        self._by_title: dict[str, list[int]] = {}
        for i, t in enumerate(self.titles):
            self._by_title.setdefault(t.casefold(), []).append(i)
        self._words = [_words(t) for t in self.titles]
        train_parts = [seq[:-2] for seq in dataset.sequences]  # leave-one-out's training parts
        pop = Popularity(len(self.ids)).fit(train_parts)
        self.popular_order: list[int] = [int(i) for i in pop.order]
        train_part = [item for seq in train_parts for item in seq]
        self.counts = np.bincount(np.asarray(train_part, dtype=np.int64), minlength=len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def resolve_ids(self, ids: Sequence[str]) -> list[int]:
        """Item indices of external ids; raises :class:`UnknownItemsError` naming every unknown id."""
        unknown = list(dict.fromkeys(i for i in ids if i not in self._index))
        if unknown:
            raise UnknownItemsError("id", unknown)
        return [self._index[i] for i in ids]

    def resolve_titles(self, titles: Sequence[str]) -> list[int]:
        """Item indices of exact titles (case-insensitive). A title shared by several items resolves to the most
        popular of them; raises :class:`UnknownItemsError` naming every unknown title."""
        unknown = list(dict.fromkeys(t for t in titles if t.strip().casefold() not in self._by_title))
        if unknown:
            raise UnknownItemsError("title", unknown)
        return [max(self._by_title[t.strip().casefold()], key=lambda i: (self.counts[i], -i)) for t in titles]

    def search(self, query: str, limit: int) -> list[int]:
        """Items whose title has, for every word of ``query``, a word starting with it (case-insensitive: "micro
        pip" finds "Micropipette Tips"), most popular first. An empty query lists the most popular items."""
        words = _words(query)
        if not words:
            return self.popular_order[:limit]
        out = []
        for i in self.popular_order:
            if all(any(t.startswith(w) for t in self._words[i]) for w in words):
                out.append(i)
                if len(out) == limit:
                    break
        return out


def _words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of a title or a query."""
    return re.findall(r"\w+", text.casefold())
