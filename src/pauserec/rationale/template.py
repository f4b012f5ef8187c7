"""``template`` rationales: built from item metadata, no model. Cheap, deterministic, training only.

The sentence names what the history shares with the target: categories that occur in both (most specific first) and
a brand the user bought before. It never contains the target's title.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .base import RationaleRequest


def _categories(fields: Mapping[str, Any]) -> list[str]:
    raw = fields.get("categories") or ""
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    return [p.strip() for p in parts if str(p).strip()]


def template_rationale(history: Sequence[Mapping[str, Any]], target: Mapping[str, Any]) -> str:
    """A one-sentence rationale from the categories and brands the history shares with the target."""
    seen = Counter(c for f in history for c in set(_categories(f)))
    target_cats = _categories(target)
    shared = [c for c in reversed(target_cats) if seen[c]]  # most specific first
    brand = str(target.get("brand") or "").strip()
    parts = []
    if shared:
        parts.append(f"The user keeps buying {shared[0]} products" + (f" within {shared[-1]}" if len(shared) > 1 else ""))
    elif target_cats:
        parts.append(f"The user may now branch out into {target_cats[-1]}")
    if brand and any(str(f.get("brand") or "").strip() == brand for f in history):
        parts.append(f"and has bought from {brand} before")
    if not parts:
        return ""
    return " ".join(parts) + ", so a similar product fits next."


class TemplateProvider:
    """Rationales from metadata (:func:`template_rationale`)."""

    def settings(self) -> dict[str, Any]:
        return {"provider": "template", "model": None, "version": 1}

    def generate(self, requests: Sequence[RationaleRequest], progress: bool = False) -> list[str]:
        return [template_rationale(r.history, r.target) for r in requests]
