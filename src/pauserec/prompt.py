"""The prompt every arm reads: the user's history written as SIDs, in the backbone's chat template.

The user turn holds the instruction; the assistant turn *is* the history, left open, and the arm's segment
(nothing, K pauses, a rationale) and the next item's SID continue it::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{INSTRUCTION}<|im_end|>\\n<|im_start|>assistant\\n
    <a_3><b_7><c_1><a_9><b_2><c_5>          <- history, oldest first (with titles: "<sid> (title)\\n" per item)
    [arm segment] <a_4><b_1><c_8>           <- what the model is trained to write / decodes

So a user's sliding-window examples are prefixes of one another: for ``direct`` the target SID of one example is
the next history item of the following one, and prefix-tree packing (``train/packing.py``) trains all of a user's
targets as a single causal sequence, the SASRec/HSTU way, with nothing recomputed and no per-example overhead (with
the instruction after the history, each example paid the chat template's turn switch, 6-12 tokens, again). The
decoder reads exactly the same prompt. Every arm gets it alike (titles, when shown, are shown to all arms).
"""

from __future__ import annotations

from collections.abc import Sequence

from .data.dataset import Dataset
from .data.text import item_title
from .errors import ArtifactMismatchError
from .model.chat import chat_text
from .sid.catalog import SIDCatalog

# Bumped whenever the tokens of a prompt change for the same history: a model trained on one layout would be decoded
# on another without any error, only worse. Training records it in the run's env.json; runs without it are layout 1
# (trained before commit 4a5c9f7, on an earlier layout).
PROMPT_LAYOUT = "2"
INSTRUCTION = "Continue this user's history of items, oldest first, with the next item they will interact with."
_MARKER = "\x00history\x00"


class PromptBuilder:
    """Builds prompt token ids from a history of item indices, and SID token ids of items.

    Args:
        tokenizer: a Hugging Face tokenizer that already holds the catalogue's SID tokens.
        catalog: the SID catalogue.
        dataset: for item titles (only read when ``show_titles``).
        system_prompt: the chat template's system message (short: every token is prefill cost).
        show_titles: write ``<a_1><b_2><c_3> (title)`` per item, one per line, instead of the SIDs alone.
    """

    def __init__(self, tokenizer, catalog: SIDCatalog, dataset: Dataset, system_prompt: str, show_titles: bool):
        self.tokenizer, self.catalog, self.dataset = tokenizer, catalog, dataset
        self.system_prompt, self.show_titles = system_prompt, show_titles
        vocab = tokenizer.get_vocab()
        self._sid_ids = [[vocab[t] for t in catalog.sid_tokens(i)] for i in range(catalog.n_items)]
        self._head = self._render_head()
        self._head_ids = None if show_titles else self._checked_head_ids()

    def item_text(self, item: int) -> str:
        sid = self.catalog.sid_string(item)
        return f"{sid} ({item_title(self.dataset.item_fields[item])})\n" if self.show_titles else sid

    def text(self, history: Sequence[int]) -> str:
        """The prompt as text: the chat template up to the open assistant turn, then the history (where the arm's
        segment starts). SIDs follow each other directly: each level has its own tokens, so an item's first code
        marks its start."""
        return self._head + "".join(self.item_text(i) for i in history)

    def ids(self, history: Sequence[int]) -> list[int]:
        """The prompt's token ids: ``tokenizer(text(history))``. Without titles they are assembled from the head,
        tokenized once, and the items' SID ids (special tokens, which the tokenizer never merges with their
        neighbours; checked against the text path at start and in the tests)."""
        if self._head_ids is None:
            return self.tokenizer(self.text(history), add_special_tokens=False)["input_ids"]
        return self._head_ids + [t for item in history for t in self._sid_ids[item]]

    def sid_ids(self, item: int) -> list[int]:
        """Token ids of an item's SID, level by level. Length L."""
        return self._sid_ids[item]

    def _render_head(self) -> str:
        """The chat template with the system and user turns and the assistant turn opened, before its content
        (through :func:`~pauserec.model.chat.chat_text`: the same text on every day, for every family's template)."""
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": INSTRUCTION},
            {"role": "assistant", "content": _MARKER},
        ]
        rendered = chat_text(self.tokenizer, messages)  # the date pinned, a refused system turn folded in
        if rendered.count(_MARKER) != 1:
            raise ValueError("the tokenizer's chat template does not write the assistant message verbatim")
        return rendered.split(_MARKER)[0]

    def _checked_head_ids(self) -> list[int] | None:
        """The head's ids, or None where assembling would differ from tokenizing the text (then :meth:`ids`
        tokenizes every prompt)."""
        encode = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        head = encode(self._head)
        probe = list(range(min(3, self.catalog.n_items)))
        return head if head + [t for i in probe for t in self._sid_ids[i]] == encode(self.text(probe)) else None


def check_prompt_layout(env: dict, where: str) -> None:
    """Refuse to decode a run trained on another prompt layout (``env``: the run's ``env.json``)."""
    found = str(env.get("prompt_layout", "1"))
    if found != PROMPT_LAYOUT:
        raise ArtifactMismatchError(
            f"{where} was trained on prompt layout {found}, this code writes layout {PROMPT_LAYOUT} "
            "(src/pauserec/prompt.py): train it again, or evaluate it with the code it was trained with"
        )
