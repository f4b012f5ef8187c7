"""Item text: one string per item from its fields, the same for embeddings and prompts."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from ..config import TextConfig

_WHITESPACE = re.compile(r"\s+")


def clean_text(value: object) -> str:
    """HTML entities decoded (``&amp;`` -> ``&``), runs of whitespace (newlines, tabs) collapsed to one space."""
    if value is None:
        return ""
    return _WHITESPACE.sub(" ", html.unescape(str(value))).strip()


def field_label(name: str) -> str:
    """``"release_year"`` -> ``"Release year"``."""
    return name.replace("_", " ").strip().capitalize()


def render_item_text(fields: Mapping[str, object], cfg: TextConfig) -> str:
    """The configured fields in order as ``"Title: ...; Brand: ...; Categories: ...; Description: ..."``.

    Each value is cleaned (:func:`clean_text`) and cut to ``cfg.max_chars_per_field`` characters; empty or absent
    fields are left out.
    """
    parts = []
    for name in cfg.fields:
        value = clean_text(fields.get(name))[: cfg.max_chars_per_field].rstrip()
        if value:
            parts.append(f"{field_label(name)}: {value}")
    return "; ".join(parts)


def item_title(fields: Mapping[str, object]) -> str:
    """The item's title, cleaned (entities decoded, whitespace collapsed); empty string if it has none."""
    return clean_text(fields.get("title"))
