"""Chat-template rendering that is the same on every day and for every family's template.

Every prompt pauserec writes goes through :func:`chat_text`, which smooths over two ways the released templates
differ from ChatML:

* **The date.** Llama-3.2's template writes ``Today Date: <today>`` from ``strftime_now`` unless the variable
  ``date_string`` is given: a model trained on one day would be decoded on a prompt that differs from the next day
  on. ``date_string`` is always passed, :data:`PINNED_DATE` (transformers 5 does not let a template variable
  replace ``strftime_now`` itself; a template that calls it without a ``date_string`` escape is logged).
* **The system message.** Gemma-2's template refuses a system role; Mistral-v0.3's writes it into the *last* user
  turn only, so it vanishes from a conversation that ends with an assistant turn (the prompt layout's open
  assistant turn). Where the template raises, or the rendered text does not contain the system message, the
  system message is folded into the first user turn (``system + "\\n\\n" + user``, as Gemma-3's own template does).
  Templates that write a system turn (ChatML, Llama-3, Phi-3) and Gemma-3 render exactly as before.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

#: The date every prompt carries where a template asks for today's (Llama-3.1's own default).
PINNED_DATE = datetime.date(2024, 7, 26)
log = logging.getLogger(__name__)


DATE_STRING = PINNED_DATE.strftime("%d %b %Y")  # "26 Jul 2024", Llama-3's format


def fold_system(messages: Sequence[dict]) -> list[dict]:
    """``[system, user, ...]`` -> ``[user(system + "\\n\\n" + user), ...]`` (unchanged without a system message)."""
    messages = [dict(m) for m in messages]
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}" if system else rest[0]["content"]
        return rest
    return [{"role": "user", "content": system}, *rest]


def chat_text(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """``tokenizer.apply_chat_template(messages, tokenize=False)`` with the date pinned and the system message
    folded into the first user turn where the template refuses or drops it (module docstring)."""
    from jinja2.exceptions import TemplateError

    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and "strftime_now" in template and "date_string" not in template:
        log.warning("the chat template writes today's date (strftime_now) with no date_string to pin it: "
                    "prompts rendered on different days differ")
    kw = dict(tokenize=False, add_generation_prompt=add_generation_prompt, date_string=DATE_STRING)
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        try:
            text = tokenizer.apply_chat_template(messages, **kw)
        except TemplateError:
            text = None
        if text is not None and messages[0]["content"] in text:
            return text
        messages = fold_system(messages)
    return tokenizer.apply_chat_template(messages, **kw)
