"""The prompt every arm reads: the user's history written as SIDs, in the backbone's chat template.

Every arm gets exactly the same prompt (titles, when shown, are shown to all arms alike).
"""

from __future__ import annotations

from collections.abc import Sequence

from .data.dataset import Dataset
from .data.text import item_title
from .sid.catalog import SIDCatalog

# The instruction comes before the history, so it belongs to the head that all examples of a batch share (computed
# once under prefix-tree packing and in the decoder); after the history only the chat template's turn switch follows
# (6 tokens on SmolLM2, instead of 12 with the instruction there), and that tail is paid once per training example.
INSTRUCTION = "Recommend the next item for a user who interacted with these items, oldest first:\n{history}"


class PromptBuilder:
    """Builds prompt token ids from a history of item indices, and SID token ids of items.

    Args:
        tokenizer: a Hugging Face tokenizer that already holds the catalogue's SID tokens.
        catalog: the SID catalogue.
        dataset: for item titles (only read when ``show_titles``).
        system_prompt: the chat template's system message (short: every token is prefill cost).
        show_titles: write ``<a_1><b_2><c_3> (title)`` per item instead of the SID alone.
    """

    def __init__(self, tokenizer, catalog: SIDCatalog, dataset: Dataset, system_prompt: str, show_titles: bool):
        self.tokenizer, self.catalog, self.dataset = tokenizer, catalog, dataset
        self.system_prompt, self.show_titles = system_prompt, show_titles
        vocab = tokenizer.get_vocab()
        self._sid_ids = [[vocab[t] for t in catalog.sid_tokens(i)] for i in range(catalog.n_items)]
        self._head_tail = None if show_titles else self._split_template()

    def item_text(self, item: int) -> str:
        sid = self.catalog.sid_string(item)
        return f"{sid} ({item_title(self.dataset.item_fields[item])})" if self.show_titles else sid

    def text(self, history: Sequence[int]) -> str:
        """The prompt as text, ending with the assistant turn's opening (where the arm's segment starts).
        SIDs follow each other directly (each level has its own tokens, so an item's first code marks its start);
        with titles, one item per line."""
        return self._render(("\n" if self.show_titles else "").join(self.item_text(i) for i in history))

    def ids(self, history: Sequence[int]) -> list[int]:
        """The prompt's token ids: ``tokenizer(text(history))``. Without titles they are assembled from the
        template's head and tail, tokenized once, and the items' SID ids (the history holds special tokens
        only, which the tokenizer never merges with their neighbours; checked against the text path at start)."""
        if self._head_tail is None:
            return self.tokenizer(self.text(history), add_special_tokens=False)["input_ids"]
        head, tail = self._head_tail
        return head + [t for item in history for t in self._sid_ids[item]] + tail

    def _render(self, history_text: str) -> str:
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": INSTRUCTION.format(history=history_text)},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _split_template(self) -> tuple[list[int], list[int]] | None:
        """``(head ids, tail ids)`` around the history, or None where assembling would differ from tokenizing the
        text (then :meth:`ids` tokenizes every prompt)."""
        marker = "\x00history\x00"
        rendered = self._render(marker)
        if rendered.count(marker) != 1:
            return None
        before, after = rendered.split(marker)
        encode = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        head_tail = (encode(before), encode(after))
        probe = list(range(min(3, self.catalog.n_items)))
        assembled = head_tail[0] + [t for i in probe for t in self._sid_ids[i]] + head_tail[1]
        return head_tail if assembled == encode(self.text(probe)) else None

    def sid_ids(self, item: int) -> list[int]:
        """Token ids of an item's SID, level by level. Length L."""
        return self._sid_ids[item]
