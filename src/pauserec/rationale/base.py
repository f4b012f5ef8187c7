"""What every rationale provider shares: the request, the teacher's prompt, and the target-quoting filter.

A rationale explains, for one training example, why the history leads to the target. Acquisition pipelines let the
teacher see the target (that is how they obtain a rationale at all); the rationale must still not *quote* the
target's title, or reasoning SFT would teach the model to recite answers it cannot know at inference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

SYSTEM = "You explain product recommendations in one short sentence."
INSTRUCTION = (
    "A customer bought these products, oldest first:\n{history}\nTheir next purchase was: {target}.\n"
    "In one sentence, say what in their history points to that kind of product. Describe the kind of product; "
    "do not name it."
)
_WORD = re.compile(r"[a-z0-9]+")
TEACHER_HISTORY = 6  # the teacher reads the most recent items only: prefill is most of its cost
TEACHER_TITLE_CHARS = 80
QUOTE_WORDS = 4  # a run of this many consecutive title words in a rationale counts as quoting the title


@dataclass(frozen=True)
class RationaleRequest:
    """One training example as a provider sees it (item texts, not ids)."""

    key: str  # the example's key (Example.key)
    history: tuple[Mapping[str, Any], ...]  # item fields, oldest first
    target: Mapping[str, Any] = field(default_factory=dict)

    def messages(self) -> list[dict[str, str]]:
        """The chat a teacher model answers: the most recent ``TEACHER_HISTORY`` titles (cut to
        ``TEACHER_TITLE_CHARS``) and the target's title."""
        from ..data.text import item_title

        recent = self.history[-TEACHER_HISTORY:]
        history = "\n".join(f"- {item_title(f)[:TEACHER_TITLE_CHARS]}" for f in recent)
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": INSTRUCTION.format(history=history, target=item_title(self.target))},
        ]


class Provider(Protocol):
    """Turns requests into rationale texts, one per request, in order."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes its output (provider, model, decoding settings): recorded and part of cache keys."""

    def generate(self, requests: Sequence[RationaleRequest], progress: bool = False) -> list[str]: ...


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def quotes_title(rationale: str, title: str) -> bool:
    """Whether ``rationale`` contains ``QUOTE_WORDS`` consecutive words of ``title`` (the whole title if shorter);
    case and punctuation are ignored."""
    title_words, text_words = _words(title), _words(rationale)
    n = min(QUOTE_WORDS, len(title_words))
    if n == 0:
        return False
    grams = {tuple(title_words[i : i + n]) for i in range(len(title_words) - n + 1)}
    return any(tuple(text_words[i : i + n]) in grams for i in range(len(text_words) - n + 1))


def clean_rationale(text: str) -> str:
    """One line, trimmed (teachers add newlines, quotes and leftover chat markers)."""
    text = text.replace("<think>", " ").replace("</think>", " ")
    return " ".join(text.split()).strip().strip('"').strip()
