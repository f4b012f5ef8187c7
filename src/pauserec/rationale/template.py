"""``template`` rationales: built from item metadata, no model. Cheap, deterministic, training only.

The sentence names what the history shares with the target (the most specific common category, a brand bought before)
and the target's kind (its most specific category): the reasoning step an explicit rationale is meant to teach.
It never quotes the target's title (the acquisition stage filters any that would).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import RationaleRequest


def _categories(fields: Mapping[str, Any]) -> list[str]:
    raw = fields.get("categories") or ""
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    return [p.strip() for p in parts if str(p).strip()]


def template_rationale(history: Sequence[Mapping[str, Any]], target: Mapping[str, Any]) -> str:
    """One sentence: the most specific category the history shares with the target, a brand bought before, and
    the target's own most specific category. The top-level category (shared by a whole catalogue) is skipped."""
    target_cats = _specific(_categories(target))
    if not target_cats:
        return ""
    seen = {c for f in history for c in _categories(f)}
    shared = next((c for c in reversed(target_cats) if c in seen), None)
    text = f"The user keeps buying in {shared}" if shared else "The user moves to a new kind of product"
    brand = str(target.get("brand") or "").strip()
    if brand and any(str(f.get("brand") or "").strip() == brand for f in history):
        text += f" and likes {brand}"
    return f"{text}; next: {target_cats[-1]}."


def _specific(categories: list[str]) -> list[str]:
    """Categories below the top level (all of them when there is only one)."""
    return categories[1:] if len(categories) > 1 else categories


class TemplateProvider:
    """Rationales from metadata (:func:`template_rationale`)."""

    def settings(self) -> dict[str, Any]:
        return {"provider": "template", "model": None, "version": 2}

    def generate(self, requests: Sequence[RationaleRequest], progress: bool = False) -> list[str]:
        return [template_rationale(r.history, r.target) for r in requests]
