"""A disk cache of rationales (SQLite: every write is an atomic transaction, so a killed run loses nothing that
was committed and never leaves a torn entry). Keyed by a hash of the prompt and the provider's settings."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..io import stable_hash


def cache_key(messages: Any, settings: Mapping[str, Any]) -> str:
    """Same prompt, provider, model and decoding settings -> same key."""
    return stable_hash({"messages": messages, "settings": dict(settings)}, length=32)


class RationaleCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS rationale (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        found: dict[str, str] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, text FROM rationale WHERE key IN ({marks})", chunk).fetchall())
        return found

    def put_many(self, entries: Mapping[str, str]) -> None:
        with self._connect() as db:  # one transaction: all or nothing
            db.executemany("INSERT OR REPLACE INTO rationale (key, text) VALUES (?, ?)", list(entries.items()))
