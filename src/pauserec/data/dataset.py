"""The one in-memory dataset every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import read_json, stable_hash, write_json


@dataclass(frozen=True)
class Dataset:
    """Users' time-ordered item sequences and the items' text fields.

    Items and users keep their external ids (strings); internally an item is its index in ``item_ids``.

    Attributes:
        name: dataset name (e.g. ``"Scientific"``).
        item_ids: external item ids; position = internal item index.
        item_fields: per item, its text fields (``title``, ``brand``, ``categories``, ``description``, ...).
        user_ids: external user ids; position = internal user index.
        sequences: per user, internal item indices in time order (oldest first).
        notes: what the reader did (e.g. ``{"dropped_short_users": 3}``), reported to the user.
        timestamps: per user, the time of each interaction (seconds, aligned with ``sequences``, non-decreasing),
            where the source has them (RecBole with a timestamp column, raw Amazon reviews); None otherwise (LC-Rec
            JSON: time order without a clock). Read by the temporal split only.
    """

    name: str
    item_ids: list[str]
    item_fields: list[dict[str, str]]
    user_ids: list[str]
    sequences: list[list[int]]
    notes: dict[str, int | str] = field(default_factory=dict)
    timestamps: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.item_fields):
            raise DataError(f"{len(self.item_ids)} item ids but {len(self.item_fields)} item records")
        if len(self.user_ids) != len(self.sequences):
            raise DataError(f"{len(self.user_ids)} user ids but {len(self.sequences)} sequences")
        if self.timestamps is not None:
            self._check_timestamps(self.timestamps)

    def _check_timestamps(self, timestamps: list[list[float]]) -> None:
        if len(timestamps) != len(self.sequences):
            raise DataError(f"{len(timestamps)} timestamp lists but {len(self.sequences)} sequences")
        for user, (seq, times) in enumerate(zip(self.sequences, timestamps)):
            if len(seq) != len(times):
                raise DataError(f"user {self.user_ids[user]!r}: {len(seq)} items but {len(times)} timestamps")
            if any(b < a for a, b in zip(times, times[1:])):
                raise DataError(f"user {self.user_ids[user]!r}: timestamps are not in time order")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def content_hash(self) -> str:
        """Hash of sequences, item ids and item texts (and timestamps, only where there are any: a dataset without
        them keeps the hash it always had): artifacts built from this data carry it."""
        parts: list = [self.item_ids, self.item_fields, self.user_ids, self.sequences]
        return stable_hash(parts if self.timestamps is None else [*parts, self.timestamps])

    def stats(self) -> dict[str, float | int | str]:
        lengths = sorted(len(s) for s in self.sequences)
        n = len(lengths)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "seq_len_min": lengths[0] if n else 0,
            "seq_len_median": lengths[n // 2] if n else 0,
            "seq_len_mean": round(sum(lengths) / n, 3) if n else 0.0,
            "seq_len_max": lengths[-1] if n else 0,
            "content_hash": self.content_hash(),
            "timestamps": self.timestamps is not None,
        }

    # --- persistence: the prepared dataset is one JSON file -------------------------------------

    def save(self, path: str | Path) -> None:
        write_json(
            path,
            {
                "name": self.name,
                "content_hash": self.content_hash(),
                "item_ids": self.item_ids,
                "item_fields": self.item_fields,
                "user_ids": self.user_ids,
                "sequences": self.sequences,
                "notes": self.notes,
                **({} if self.timestamps is None else {"timestamps": self.timestamps}),
            },
            indent=None,
        )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        try:
            raw = read_json(path)
            ds = cls(
                name=raw["name"],
                item_ids=raw["item_ids"],
                item_fields=raw["item_fields"],
                user_ids=raw["user_ids"],
                sequences=raw["sequences"],
                notes=raw.get("notes", {}),
                timestamps=raw.get("timestamps"),
            )
        except FileNotFoundError:
            raise DataError("prepared dataset not found (run `pauserec prepare` first)", path=path) from None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a prepared pauserec dataset ({e})", path=path) from None
        if raw.get("content_hash") not in (None, ds.content_hash()):
            raise DataError("content hash does not match the stored one (file edited or corrupted)", path=path)
        return ds
