"""SID grounding: the explicit-CoT pipeline's first stage, aligning the new SID tokens with language.

Three tasks, each a chat turn whose answer carries the loss (LC-Rec's alignment tasks, in our prompt format):

* ``item2sid``: the item's text (title, brand, categories; 100 characters each) -> its SID;
* ``sid2title``: an SID -> the item's title (and the end-of-turn token);
* ``history_titles``: the last ``HISTORY_ITEMS`` items of a training history written as SIDs beside titles -> the
  next item's SID (training examples only: no validation or test target is ever shown).

``ground.tasks`` sets how many passes over each task's pool one training set holds (1.0 = every item or training
example once). A fraction ``ground.heldout_items`` of the items is left out of ``item2sid``; validation is NDCG@10 (and Recall@10)
of decoding those held-out items' SIDs from their text with the trie-constrained decoder (an alignment metric,
never a recommendation metric). The run directory is a normal training run: ``pauserec train ... --set
model.backbone=RUN/model`` continues from it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arms import DirectArm
from ..model.chat import chat_text
from ..arms.base import IGNORE
from ..config import RunConfig, TextConfig
from ..data.split import Example, training_users_subset
from ..data.text import item_title, render_item_text
from ..recommend import recommend_from_prompts
from ..prompt import PromptBuilder
from .batches import sid_softmax
from .run import fit, load_trainable_model, open_run, unit_data, write_main
from .trainer import VALIDATION_METRICS, sharded_validation

ITEM2SID = "Which item is this?\n{text}"
ITEM_TEXT = TextConfig(fields=["title", "brand", "categories"], max_chars_per_field=100)  # short: rows stay ~60 tokens
HISTORY_ITEMS = 5  # history_titles shows the most recent items only: titles make long prompts
SID2TITLE = "What is the title of item {sid}?"


class GroundingTasks:
    """Builds the grounding rows (``input_ids``, ``labels``) with the run's tokenizer and chat template."""

    def __init__(self, cfg: RunConfig, prompts: PromptBuilder, titled: PromptBuilder):
        self.cfg, self.prompts, self.titled = cfg, prompts, titled
        self.tok = prompts.tokenizer

    def _chat(self, question: str) -> list[int]:
        messages = [{"role": "system", "content": self.cfg.model.system_prompt}, {"role": "user", "content": question}]
        text = chat_text(self.tok, messages, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def item_prompt(self, item: int) -> list[int]:
        fields = self.prompts.dataset.item_fields[item]
        return self._chat(ITEM2SID.format(text=render_item_text(fields, ITEM_TEXT)))

    def item2sid(self, item: int) -> dict[str, list[int]]:
        return _answer(self.item_prompt(item), self.prompts.sid_ids(item))

    def sid2title(self, item: int) -> dict[str, list[int]]:
        title = item_title(self.prompts.dataset.item_fields[item]) or "(untitled)"
        answer = self.tok(title, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
        return _answer(self._chat(SID2TITLE.format(sid=self.prompts.catalog.sid_string(item))), answer)

    def history_titles(self, ex: Example) -> dict[str, list[int]]:
        return _answer(self.titled.ids(ex.history[-HISTORY_ITEMS:]), self.prompts.sid_ids(ex.target))


def _answer(prompt: list[int], answer: list[int]) -> dict[str, list[int]]:
    return {"input_ids": [*prompt, *answer], "labels": [IGNORE] * len(prompt) + list(answer)}


def _passes(pool: list, weight: float, rng: random.Random) -> list:
    """``weight`` passes over ``pool``: whole passes, then a random part of one more."""
    whole, part = int(weight), weight - int(weight)
    return pool * whole + rng.sample(pool, round(part * len(pool)))


def split_heldout_items(n_items: int, fraction: float) -> tuple[list[int], list[int]]:
    """Items held out of ``item2sid`` (sorted) and the others (in the fixed shuffled order the task rows draw them
    in): ``range(n_items)`` shuffled by ``random.Random(0)``, its first ``int(fraction * n_items)`` held out."""
    items = list(range(n_items))
    random.Random(0).shuffle(items)
    n_heldout = int(fraction * len(items))
    return sorted(items[:n_heldout]), items[n_heldout:]


def grounding_rows(cfg: RunConfig, tasks: GroundingTasks, items: list[int], examples: list[Example]) -> tuple[list[dict], dict[str, int]]:
    """The task mix as rows, shuffled with ``cfg.seed``; also the number of rows per task."""
    rng = random.Random(cfg.seed)
    build = {"item2sid": (tasks.item2sid, items), "sid2title": (tasks.sid2title, list(range(tasks.prompts.catalog.n_items))),
             "history_titles": (tasks.history_titles, examples)}
    rows, counts = [], {}
    for name, weight in cfg.ground.tasks.items():
        make, pool = build[name]
        chosen = _passes(pool, weight, rng)
        rows.extend(make(x) for x in chosen)
        counts[name] = len(chosen)
    rng.shuffle(rows)
    return rows, counts


@dataclass
class GroundingSetup:
    """Everything grounding builds before its first step: the model (trainable policy applied; the whole
    vocabulary matrix trains, the task labels include text), its tokenizer, the SID token ids per level, the task
    builder, the held-out items, the rows per task, the training set (one unit per row) and its collator, and the
    SID loss normalisation."""

    model: torch.nn.Module
    tokenizer: Any
    level_ids: list[torch.Tensor]
    tasks: GroundingTasks
    heldout: list[int]
    counts: dict[str, int]
    train_set: Any
    collator: Any
    softmax: Any


def build_grounding(cfg: RunConfig, dataset, catalog, split) -> GroundingSetup:
    """The grounding setup of ``cfg`` on a loaded data directory (what ``pauserec ground`` and the pipeline cost
    benchmark share)."""
    model, tokenizer, level_ids = load_trainable_model(cfg, dataset, catalog, [])
    prompts = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, show_titles=False)
    titled = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, show_titles=True)
    heldout, seen = split_heldout_items(dataset.n_items, cfg.ground.heldout_items)
    tasks = GroundingTasks(cfg, prompts, titled)
    examples = training_users_subset(split.train, cfg.train.max_users)
    rows, counts = grounding_rows(cfg, tasks, seen, examples)
    train_set, collator = unit_data(cfg, [[row] for row in rows], tokenizer.pad_token_id)
    softmax = sid_softmax(cfg.train.loss, level_ids, len(tokenizer), catalog.trie)
    return GroundingSetup(model, tokenizer, level_ids, tasks, heldout, counts, train_set, collator, softmax)


def ground(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train the grounding tasks; the selected model lands in ``RUN/model``. Returns the cost summary."""
    t_start = time.perf_counter()
    run, dataset, catalog, split = open_run(cfg, data_dir, run_dir, resume, kind="ground")
    g = build_grounding(cfg, dataset, catalog, split)
    model, tokenizer, level_ids, tasks, heldout, counts = g.model, g.tokenizer, g.level_ids, g.tasks, g.heldout, g.counts
    val_items = heldout[: cfg.train.val_users]
    probes = [tasks.item_prompt(i) for i in val_items]

    def validate(m: torch.nn.Module) -> dict[str, float]:
        if not val_items:
            return {**{name: 0.0 for name in VALIDATION_METRICS}, "val_seconds": 0.0}

        def decode(start: int, stop: int) -> tuple[list[list[int]], float]:  # this rank's share of the probes
            recs = recommend_from_prompts(m, probes[start:stop], DirectArm(), catalog, level_ids, cfg.decode,
                                          tokenizer.pad_token_id, tokenizer)
            return recs.items, recs.seconds

        return sharded_validation(decode, val_items)

    extra = {"stage": "ground", "task_rows": counts, "heldout_items": len(heldout),
             "validation": "item2sid NDCG@10 (selection) and Recall@10 on held-out items"}
    cost = fit(cfg, run, model, tokenizer, g.train_set, g.collator, validate, g.softmax, resume, extra)
    cost["total_seconds"] = time.perf_counter() - t_start
    write_main(run.file("train_cost.json"), cost)
    return cost
