"""World-knowledge verbalization: how much a model still knows about the catalogue's items in plain language.

Two multiple-choice probes, scored by likelihood (the sum of the log-probabilities of each option's tokens as the
assistant's answer to the question, through the model's chat template; the highest wins):

* ``category``: an item's title -> its category one level below the catalogue-wide top level (options: the true
  category and ``n_options - 1`` distractor categories of other items, drawn with the seed; the question does not
  list them: each is scored as the answer). ``category_calibrated`` scores the same options by
  ``log p(option | question) - log p(option | the question without the item)``, which removes how likely an
  option's words are anyway (a 135M model's raw sums mostly prefer short, frequent category names);
* ``similar``: which of two items is more similar to item X: one sharing X's most specific (leaf) category, one
  from another category one level below the top. Scored the other way round: each candidate fills the question
  'Name a product similar to "{candidate}".' and the candidate under which X's title is the more likely answer wins
  (the answer is the same text under both, so no calibration is needed). The direct form (X in the question, both
  titles listed as A and B, each scored as the answer) left the base SmolLM2-135M at chance (0.51 [0.42, 0.61] on
  100 Scientific items, 0.46 calibrated): it cannot tell a loss of knowledge from none.

Both run on the same fixed seeded sample of items, items held out of grounding (``ground.heldout_items``) first.
Each model's accuracy comes with a percentile-bootstrap 95% interval over probes; a few greedy one-line
descriptions of the same items show side by side what the models say in their own words.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..data.text import item_title
from ..eval.metrics import bootstrap_interval
from ..report import markdown_table
from .loading import ModelSpec, StudyData, heldout_set, iter_models, probe_items, write_outputs
from .scoring import chat_ids, greedy_answers, option_logprobs

CATEGORY_LEVEL = 1  # 0 is the catalogue-wide top category (e.g. "Industrial & Scientific")
TITLE_WORDS = 12  # titles in questions and options are cut to this many words
DESCRIBE = "Describe this product in one sentence: {title}"
CATEGORY_QUESTION = "Which category does this product belong to? Answer with the category name only."
SIMILAR_QUESTION = 'Name a product similar to "{option}".'
PROBE_KINDS = ("category", "category_calibrated", "similar")


@dataclass(frozen=True)
class Probe:
    """One multiple-choice question about ``item``; ``answer`` indexes the true option. ``null_question`` (the
    question without the item) calibrates the options' scores: ``log p(option | question) - log p(option |
    null_question)`` removes how likely an option's words are anyway (its length, its frequency). With
    ``fixed_answer`` the roles turn: each option fills the ``{option}`` slot of ``question``, and the option under
    which ``fixed_answer`` is the most likely answer wins."""

    kind: str
    item: int
    question: str
    options: tuple[str, ...]
    answer: int
    null_question: str | None = None
    fixed_answer: str | None = None


def categories(fields: Mapping[str, Any]) -> list[str]:
    """An item's category path, top level first (``"A,B,C"`` or a list)."""
    raw = fields.get("categories") or ""
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    return [str(p).strip() for p in parts if str(p).strip()]


def short_title(fields: Mapping[str, Any], words: int = TITLE_WORDS) -> str:
    return " ".join(item_title(fields).split()[:words])


def _category(fields: Mapping[str, Any]) -> str | None:
    path = categories(fields)
    return path[CATEGORY_LEVEL] if len(path) > CATEGORY_LEVEL else None


def _leaf(fields: Mapping[str, Any]) -> str | None:
    path = categories(fields)
    return path[-1] if len(path) > CATEGORY_LEVEL else None


def probe_candidates(dataset: Dataset) -> list[int]:
    """Items with a title and a category below the top level: the ones both probes can ask about."""
    return [i for i, f in enumerate(dataset.item_fields) if item_title(f) and _category(f)]


def category_probes(dataset: Dataset, items: Sequence[int], n_options: int = 4, seed: int = 0) -> list[Probe]:
    """One ``category`` probe per item (items without a category are skipped)."""
    rng = random.Random(seed)
    pool = sorted({c for f in dataset.item_fields if (c := _category(f))})
    probes = []
    for i in items:
        fields = dataset.item_fields[i]
        true = _category(fields)
        others = [c for c in pool if c != true]
        if true is None or not others:
            continue
        options = [true, *rng.sample(others, min(n_options - 1, len(others)))]
        rng.shuffle(options)
        question = f'Product: "{short_title(fields)}"\n{CATEGORY_QUESTION}'
        probes.append(Probe("category", i, question, tuple(options), options.index(true), CATEGORY_QUESTION))
    return probes


def similarity_probes(dataset: Dataset, items: Sequence[int], seed: int = 0) -> list[Probe]:
    """One ``similar`` probe per item that has another item in its leaf category (others are skipped)."""
    rng = random.Random(seed)
    by_leaf: dict[str, list[int]] = {}
    with_category = []
    for j, f in enumerate(dataset.item_fields):
        if item_title(f) and _category(f):
            by_leaf.setdefault(_leaf(f), []).append(j)
            with_category.append(j)
    probes = []
    for i in items:
        fields = dataset.item_fields[i]
        same = [j for j in by_leaf.get(_leaf(fields), []) if j != i and short_title(dataset.item_fields[j]) != short_title(fields)]
        far = [j for j in with_category if _category(dataset.item_fields[j]) != _category(fields)
               and _leaf(dataset.item_fields[j]) != _leaf(fields)]
        if not same or not far or not _category(fields):
            continue
        near = rng.choice(same)
        pair = [near, rng.choice(far)]
        rng.shuffle(pair)
        options = tuple(short_title(dataset.item_fields[j]) for j in pair)
        probes.append(Probe("similar", i, SIMILAR_QUESTION, options, pair.index(near),
                            fixed_answer=f'"{short_title(fields)}"'))
    return probes


def option_scores(model, tokenizer, probes: Sequence[Probe], calibrate: bool = False, batch_size: int = 16) -> list[np.ndarray]:
    """Per probe, ``(n_options,)`` sums of the options' token log-probabilities after the question; with
    ``calibrate``, minus the same after the probe's ``null_question`` (scored once per distinct pair)."""
    def encode(option: str) -> list[int]:
        return tokenizer(option, add_special_tokens=False)["input_ids"]

    prompts, options, owner = [], [], []  # a fixed-answer probe is one prompt per option, each with one "option"
    for k, p in enumerate(probes):
        if p.fixed_answer is None:
            prompts.append(chat_ids(tokenizer, p.question))
            options.append([encode(o) for o in p.options])
            owner.append(k)
        else:
            for o in p.options:
                prompts.append(chat_ids(tokenizer, p.question.format(option=o)))
                options.append([encode(p.fixed_answer)])
                owner.append(k)
    flat = option_logprobs(model, prompts, options, tokenizer.pad_token_id, batch_size)
    scores: list[list[float]] = [[] for _ in probes]
    for k, s in zip(owner, flat):
        scores[k].extend(s)
    if not calibrate:
        return [np.array(s) for s in scores]
    if any(p.null_question is None or p.fixed_answer is not None for p in probes):
        raise ValueError("calibration needs every probe's null_question (and no fixed answer)")
    nulls = sorted({p.null_question for p in probes})
    null_options = {q: sorted({o for p in probes if p.null_question == q for o in p.options}) for q in nulls}
    null_scores = option_logprobs(model, [chat_ids(tokenizer, q) for q in nulls],
                                  [[encode(o) for o in null_options[q]] for q in nulls], tokenizer.pad_token_id, batch_size)
    null = {(q, o): s for q, ss in zip(nulls, null_scores) for o, s in zip(null_options[q], ss)}
    return [np.array(s) - np.array([null[(p.null_question, o)] for o in p.options]) for s, p in zip(scores, probes)]


def score_probes(model, tokenizer, probes: Sequence[Probe], calibrate: bool = False, batch_size: int = 16) -> np.ndarray:
    """Whether the model's highest-scoring option is the true one, per probe: ``(n_probes,)`` bool."""
    scores = option_scores(model, tokenizer, probes, calibrate, batch_size)
    return np.array([int(np.argmax(s)) == p.answer for s, p in zip(scores, probes)], dtype=bool)


def accuracy(correct: np.ndarray, seed: int = 0, n_resamples: int = 1000) -> dict[str, float]:
    """Mean of a ``(n,)`` 0/1 array with its percentile-bootstrap 95% interval."""
    values = correct.astype(np.float64)
    lo, hi = bootstrap_interval(values, n_resamples, seed)
    return {"mean": float(values.mean()) if len(values) else float("nan"), "ci_low": lo, "ci_high": hi,
            "n": int(len(values))}


def knowledge_analysis(specs: Sequence[ModelSpec], data: StudyData, out: str | Path, *, cache_dir: str | Path,
                       n_items: int = 200, n_options: int = 4, describe: int = 3, seed: int = 0,
                       heldout_fraction: float = 0.05, batch_size: int = 16) -> dict[str, Any]:
    """Probe every model on the same items; write ``OUT/knowledge.{json,md,png}``; return the JSON table."""
    dataset = data.dataset
    items = probe_items(probe_candidates(dataset), dataset.n_items, heldout_fraction, n_items, seed)
    probes = {"category": category_probes(dataset, items, n_options, seed),
              "similar": similarity_probes(dataset, items, seed)}
    described = items[:describe]
    questions = [DESCRIBE.format(title=short_title(dataset.item_fields[i])) for i in described]
    rows = []
    for spec, model, tokenizer in iter_models(specs, cache_dir):
        row: dict[str, Any] = {"model": spec.name, "path": spec.path}
        row["category"] = accuracy(score_probes(model, tokenizer, probes["category"], False, batch_size), seed)
        row["category_calibrated"] = accuracy(score_probes(model, tokenizer, probes["category"], True, batch_size), seed)
        row["similar"] = accuracy(score_probes(model, tokenizer, probes["similar"], False, batch_size), seed)
        row["descriptions"] = greedy_answers(model, tokenizer, questions) if questions else []
        rows.append(row)
    heldout = heldout_set(dataset.n_items, heldout_fraction)
    chance = float(np.mean([1 / len(p.options) for p in probes["category"]])) if probes["category"] else None
    table = {
        "analysis": "knowledge",
        "data_dir": str(data.data_dir),
        "items": len(items),
        "items_heldout_of_grounding": sum(i in heldout for i in items),
        "probes": {k: len(v) for k, v in probes.items()},
        "chance": {"category": chance, "category_calibrated": chance, "similar": 0.5},
        "seed": seed,
        "described_items": [{"item": dataset.item_ids[i], "title": short_title(dataset.item_fields[i])} for i in described],
        "models": rows,
        "examples": {k: [{"question": p.question, "options": list(p.options), "answer": p.answer} for p in v[:2]]
                     for k, v in probes.items()},
    }
    paths = write_outputs(out, "knowledge", table, knowledge_markdown(table), knowledge_figure(table))
    table["files"] = {k: str(v) for k, v in paths.items()}
    return table


def _fmt(m: Mapping[str, float]) -> str:
    return f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def knowledge_markdown(table: Mapping[str, Any]) -> str:
    """Accuracy per model and probe, then the generated descriptions side by side."""
    header = ["model", *(f"{k} accuracy (95% CI)" for k in PROBE_KINDS), "probes"]
    rows = [[r["model"], *(_fmt(r[k]) for k in PROBE_KINDS), " / ".join(str(r[k]["n"]) for k in PROBE_KINDS)]
            for r in table["models"]]
    chance = table["chance"]
    text = (f"World knowledge: {table['items']} items ({table['items_heldout_of_grounding']} held out of grounding), "
            f"likelihood-scored probes; chance: category {chance['category'] or float('nan'):.3f}, similar 0.5.\n\n")
    text += markdown_table(header, rows)
    if table["described_items"]:
        text += "\nGreedy one-line descriptions (24 tokens):\n\n"
        desc_rows = []
        for k, item in enumerate(table["described_items"]):
            for r in table["models"]:
                desc_rows.append([item["title"], r["model"], r["descriptions"][k].replace("|", "\\|").replace("\n", " ")])
        text += markdown_table(["item", "model", "description"], desc_rows)
    return text


def knowledge_figure(table: Mapping[str, Any]):
    """Accuracy per model (bars, 95% intervals), one group per probe, chance as dashed lines."""
    from matplotlib.figure import Figure

    models = [r["model"] for r in table["models"]]
    fig = Figure(figsize=(max(5.0, 1.3 * len(models) + 2), 4.0), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(PROBE_KINDS)
    x = np.arange(len(models))
    for k, kind in enumerate(PROBE_KINDS):
        mean = np.array([r[kind]["mean"] for r in table["models"]])
        err = np.array([[m - r[kind]["ci_low"] for m, r in zip(mean, table["models"])],
                        [r[kind]["ci_high"] - m for m, r in zip(mean, table["models"])]])
        ax.bar(x + (k - (len(PROBE_KINDS) - 1) / 2) * width, mean, width, yerr=err, capsize=3, label=kind,
               color=f"C{k}")
        chance = table["chance"].get(kind)
        if chance is not None:
            ax.axhline(chance, color=f"C{k}", linestyle="--", linewidth=1)
    ax.set_xticks(x, models, rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"World knowledge ({table['items']} items; dashed: chance)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(PROBE_KINDS), fontsize=8)
    return fig
