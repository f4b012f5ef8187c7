"""Whole-pipeline cost of each arm: every stage timed in one process, in alternating rounds, on the same data.

Stages (round r runs every stage once, in this order, then round r+1: a drifting machine slows them all alike):

* ``train:ARM``  the SFT step of each arm (``direct``, ``pause:K``, ``cot``) at the grid's settings (8 users per
  step, lr 5e-4; ``--set`` adds overrides), through the real ``SFTTrainer`` (:func:`common.trainer_loop`: the
  trainer's own per-step work is part of the cost). A fresh Trainer per round over the model built once (its AdamW
  state is allocated in the warm-up steps), the same batches in the same order every round (the seeded sampler's
  first steps). Unit: a real token (positions computed, no padding). cot's SFT model is the backbone with the SID
  and think tokens, as the grounded model it starts from in the grid is (same shapes, same step cost); it trains on
  template rationales (acquired first, untimed) or ``--rationales DIR``.
* ``ground``      the cot pipeline's SID grounding step at cot-scientific.yaml's settings (32 rows x grad_accum 2,
  task mix ``{item2sid: 2, sid2title: 1, history_titles: 0.2}``), same trainer. Unit: a real token.
* ``acquire:local`` / ``acquire:template``  rationale acquisition on a fixed random sample of training requests:
  the local teacher (packaged SmolLM2-135M-Instruct, greedy, 24 new tokens, as cot-scientific-05ep.yaml) and the
  metadata template. Unit: a rationale (one per training example in a full run; generation is paced by
  ``max_new_tokens`` and the batch, not by a rationale's length).
* ``infer:ARM``   inference per user through ``pauserec.recommend.recommend``, on fixed validation users (never
  test), beams and batch from the config. Models: the training models (untrained backbone with the arm's tokens,
  a few steps in), or trained runs (``--run ARM=DIR``). An untrained cot model never closes its rationale, so it
  writes ``--cot-rationale-tokens`` (default 20: the mean generated length of the committed trained cot cell,
  benchmarks/results/bench-arm-latency-cot.json). Unit: a user.

Each stage's rate is the median over rounds of (seconds / units) of its timed part. Its full-run units are counted
exactly from the data: the real collator over the real sampler order for every step of the grid's budget (2,280
SFT steps x 8 users; 300 grounding steps x 64 rows), one rationale per training example. A pipeline's cost is the
sum of its stages' rate x full-run units: ``direct`` and ``pause:K`` are their SFT stage; ``cot`` is grounding +
local-teacher acquisition + SFT, ``cot-template`` the same with template acquisition. Each stage's seconds are
also compared with the machine's bf16 matmul floor (:func:`common.train_step_floor`, :func:`common.forward_floor`).

    MALLOC_MMAP_THRESHOLD_=4194304 .venv/bin/python benchmarks/bench_pipeline_cost.py runs/data/sci \\
        --arms direct pause:1 pause:2 pause:4 cot --rounds 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from common import Recipe, forward_floor, load_recipe, machine_limits, train_step_floor, trainer_loop, write_result

from pauserec.arms import make_arm
from pauserec.artifacts import DataDir, environment, load_trained
from pauserec.config import build_config
from pauserec.data.split import training_users_subset
from pauserec.eval.evaluate import select_users
from pauserec.model.vocab import token_ids_by_level
from pauserec.prompt import PromptBuilder
from pauserec.recommend import recommend
from pauserec.report import markdown_table
from pauserec.train.trainer import SeededSampler
from pauserec.train.vocab_rows import trained_rows

#: cot-scientific.yaml's shared ``set:`` as it bears on a training step (the full run: 2,280 steps x 8 users).
GRID_SFT = ["train.batch_size=8", "train.max_steps=2280", "train.lr=0.0005"]
#: cot-scientific.yaml's grounding stage (its header): 300 steps of 32 rows x 2, at the grid's learning rate.
GRID_GROUND = ["train.batch_size=32", "train.grad_accum=2", "train.max_steps=300", "train.lr=0.0005",
               "ground.tasks={item2sid: 2, sid2title: 1, history_titles: 0.2}"]
#: cot-scientific-05ep.yaml's local teacher: greedy, 24 new tokens, 128 prompts per generate call.
GRID_TEACHER = ["rationale.provider=local", "rationale.max_new_tokens=24", "rationale.batch_size=128"]
#: The rationale length of a trained cot cell (benchmarks/results/bench-arm-latency-cot.json: 20.0 tokens/user).
COT_RATIONALE_TOKENS = 20
PAPER = {"training_saved": 0.65, "inference_faster": 0.713}  # PauseRec vs explicit CoT: "up to 65%", "71.3%"


# --- the schedule ------------------------------------------------------------------------------------------------

def alternating(stages: list[str], rounds: int) -> list[tuple[int, str]]:
    """``(round, stage)`` in run order: every stage once per round, rounds one after another (A B C A B C)."""
    return [(r, s) for r in range(rounds) for s in stages]


def run_rounds(stages: dict[str, Callable[[], dict]], rounds: int, log: Callable[[str], None] = print
               ) -> dict[str, list[dict]]:
    """Call each stage once per round in :func:`alternating` order; per stage, its records in round order. A record
    has ``seconds`` (timed) and ``units`` (tokens, rationales or users in that time), and what the stage adds."""
    records: dict[str, list[dict]] = {s: [] for s in stages}
    for r, s in alternating(list(stages), rounds):
        rec = stages[s]()
        records[s].append(rec)
        log(f"round {r} {s}: {1e3 * rec['seconds'] / rec['units']:.4g} ms/unit ({rec['units']:g} units)")
    return records


# --- what a full run trains on -----------------------------------------------------------------------------------

def step_units(n_units: int, seed: int, batch: int, grad_accum: int, steps: int) -> Iterator[list[list[int]]]:
    """The training units of each optimizer step of a run, as the Trainer draws them: epoch ``e`` is the
    :class:`SeededSampler` order ``e`` cut into micro-batches of ``batch`` (the last one shorter), and a step takes
    ``grad_accum`` consecutive micro-batches (the epoch's last step those that are left). Yields ``steps`` steps,
    each a list of micro-batches of unit indices."""
    sampler, done, epoch = SeededSampler(n_units, seed), 0, 0
    while done < steps:
        order = sampler.order(epoch)
        micro = [order[i:i + batch] for i in range(0, n_units, batch)]
        for i in range(0, len(micro), grad_accum):
            if done == steps:
                return
            yield micro[i:i + grad_accum]
            done += 1
        epoch += 1


def batch_counts(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """``(real tokens, labelled nodes)`` of one collated batch (prefix-tree rows or padded rows)."""
    real = int(batch["real_tokens"]) if "real_tokens" in batch else int(batch["attention_mask"].sum())
    return real, int((batch["labels"] != -100).sum())


def step_counts(r: Recipe, steps: int) -> list[tuple[int, int]]:
    """``(real tokens, labelled nodes)`` of each of the first ``steps`` optimizer steps of ``r``'s run: its real
    collator over its real sampler order (exact, not an estimate)."""
    t = r.cfg.train
    out = []
    for micro in step_units(len(r.units), r.cfg.seed, t.batch_size, t.grad_accum, steps):
        counts = [batch_counts(r.collate([r.units[j] for j in mb])) for mb in micro]
        out.append((sum(c[0] for c in counts), sum(c[1] for c in counts)))
    return out


def full_run_tokens(r: Recipe) -> dict[str, int]:
    """Real tokens and labelled nodes of ``r``'s whole run (``train.max_steps`` steps)."""
    counts = step_counts(r, r.cfg.train.max_steps)
    return {"steps": len(counts), "real_tokens": sum(c[0] for c in counts), "labelled": sum(c[1] for c in counts)}


# --- the stages ----------------------------------------------------------------------------------------------------

def model_facts(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts of the floor formulas: trainable, non-embedding, hidden size, vocabulary rows, and the head
    columns a labelled node computes (the SID codes with ``train.vocab_rows=active``, else the whole vocabulary)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    return {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "non_embedding": sum(p.numel() for n, p in model.named_parameters()
                                 if "embed" not in n and "lm_head" not in n and "trained_rows" not in n),
            "hidden": model.config.hidden_size, "intermediate": model.config.intermediate_size, "vocab": vocab}


@dataclass
class TrainStage:
    """Optimizer steps of one recipe: ``warmup`` untimed, then ``steps`` timed, through the real trainer."""

    recipe: Recipe
    warmup: int
    steps: int
    head_columns: int = 0
    counts: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = step_counts(self.recipe, self.warmup + self.steps)
        codes = int(self.recipe.softmax.codes().numel())
        self.head_columns = codes if trained_rows(self.recipe.model) is not None else model_facts(self.recipe.model)["vocab"]

    def __call__(self) -> dict:
        seconds, losses, counted = trainer_loop(self.recipe, self.warmup + self.steps)
        if counted != [c[0] for c in self.counts]:  # the trainer drew other batches than the ones counted
            raise RuntimeError(f"trainer counted {counted} real tokens per step, the sampler order gives "
                               f"{[c[0] for c in self.counts]}")
        w = self.warmup
        tokens, labelled = [c[0] for c in self.counts[w:]], [c[1] for c in self.counts[w:]]
        return {"seconds": sum(seconds[w:]), "units": sum(tokens), "step_seconds": seconds[w:],
                "tokens": tokens, "labelled": labelled, "losses": losses}

    def floor_per_unit(self, limits: dict) -> float:
        """Seconds per real token at the machine's limit over the timed steps."""
        f = model_facts(self.recipe.model)
        timed = self.counts[self.warmup:]
        floor = sum(train_step_floor(t, lab * self.head_columns, f["non_embedding"], f["hidden"], f["trainable"], limits)
                    for t, lab in timed)
        return floor / sum(t for t, _ in timed)


@dataclass
class AcquireStage:
    """One provider's rationales for a fixed sample of requests (after an untimed warm-up on two of them)."""

    provider: Any
    requests: list
    tokenizer: Any = None  # the teacher's (local provider): prompt and generated tokens are counted with it
    model: Any = None

    def __call__(self) -> dict:
        self.provider.generate(self.requests[:2])
        t0 = time.perf_counter()
        texts = self.provider.generate(self.requests)
        rec = {"seconds": time.perf_counter() - t0, "units": len(self.requests)}
        if self.tokenizer is not None:
            rec["prompt_tokens"], rec["generated_tokens"] = self.token_counts(texts)
        return rec

    def token_counts(self, texts: list[str]) -> tuple[int, int]:
        """Prompt tokens (the chat the teacher reads) and generated tokens (each text re-encoded: special tokens
        such as the end of turn are not counted)."""
        from pauserec.model.chat import chat_text

        tok = self.tokenizer
        prompts = [chat_text(tok, r.messages(), add_generation_prompt=True) for r in self.requests]
        n_prompt = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        return n_prompt, sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)

    def floor_per_unit(self, limits: dict, rec: dict) -> float | None:
        """Seconds per rationale at the bf16 matmul limit: the teacher's forward over prompt and generated tokens,
        its head over the whole vocabulary once per generated token and per prompt (padding not counted)."""
        if self.model is None:
            return None
        f = model_facts(self.model)
        head = f["vocab"] * (rec["generated_tokens"] + rec["units"])
        return forward_floor(rec["prompt_tokens"] + rec["generated_tokens"], head, f["non_embedding"], f["hidden"],
                             limits) / rec["units"]


@dataclass
class InferStage:
    """``recommend`` for fixed users (after an untimed warm-up on the first decode batch of them)."""

    model: Any
    prompts: PromptBuilder
    arm: Any
    catalog: Any
    examples: list
    decode: Any

    def __call__(self) -> dict:
        self.model.eval()
        level_ids = token_ids_by_level(self.prompts.tokenizer, self.catalog)
        pad = self.prompts.tokenizer.pad_token_id
        with torch.inference_mode():
            recommend(self.model, self.prompts, self.arm, self.catalog, level_ids,
                      self.examples[:self.decode.batch_size], self.decode, pad)
            t0 = time.perf_counter()
            recs = recommend(self.model, self.prompts, self.arm, self.catalog, level_ids, self.examples, self.decode, pad)
            seconds = time.perf_counter() - t0
        return {"seconds": seconds, "units": len(self.examples), "prefill_tokens": recs.prefill_tokens,
                "think_tokens": recs.think_tokens, "decode_tokens": recs.decode_tokens}

    def floor_per_unit(self, limits: dict, rec: dict) -> float:
        """Seconds per user at the bf16 matmul limit: the non-embedding forward over every token fed (prefill,
        rationale, beam steps); the head is left out, so this is a lower bound."""
        f = model_facts(self.model)
        fed = rec["prefill_tokens"] + rec["think_tokens"] + rec["decode_tokens"]
        return forward_floor(fed, 0, f["non_embedding"], f["hidden"], limits) / rec["units"]


# --- building the stages -------------------------------------------------------------------------------------------

def arm_overrides(spec: str, rationales: str | None) -> list[str]:
    """``direct`` | ``pause:K`` | ``cot`` -> the config overrides of that arm."""
    name, _, k = spec.partition(":")
    if name == "pause" and k.isdigit():
        return ["arm.name=pause", f"arm.pause_tokens={k}"]
    if name in ("direct", "cot") and not k:
        return [f"arm.name={name}", *([f"arm.rationales={rationales}"] if name == "cot" else [])]
    raise SystemExit(f"unknown arm {spec!r}: use direct, pause:K (K a count) or cot")


def template_rationales(data: str, out: Path, overrides: list[str]) -> str:
    """Template rationales for every training example, acquired into ``out`` (untimed, cached under ``out``)."""
    from pauserec.rationale.acquire import acquire_rationales

    cfg = build_config(overrides=[*overrides, "rationale.provider=template", f"cache_dir={out / 'cache'}"])
    acquire_rationales(cfg, data, out / "rationales", progress=False)
    return str(out / "rationales")


def grounding_recipe(data: str, overrides: list[str]) -> Recipe:
    """The grounding stage's setup as ``pauserec ground`` builds it."""
    from pauserec.precision import bf16_enabled
    from pauserec.train.grounding import build_grounding

    cfg = build_config(overrides=overrides)
    d = DataDir(data)
    g = build_grounding(cfg, d.dataset(), d.catalog(), d.split(cfg))
    return Recipe(cfg, g.model, g.tokenizer, g.softmax, g.train_set, g.collator, bf16_enabled(cfg.train.bf16))


def rationale_requests(data: str, cfg, n: int) -> tuple[list, int]:
    """A fixed random sample (seed 0) of ``n`` training requests, and how many training examples a full run
    acquires for (one rationale each)."""
    from pauserec.rationale.base import RationaleRequest

    d = DataDir(data)
    dataset = d.dataset()
    examples = training_users_subset(d.split(cfg).train, cfg.train.max_users)
    sample = [examples[i] for i in sorted(random.Random(0).sample(range(len(examples)), min(n, len(examples))))]
    fields = dataset.item_fields
    return [RationaleRequest(e.key, tuple(fields[i] for i in e.history), fields[e.target]) for e in sample], len(examples)


def inference_stage(recipe: Recipe, run_dir: Path | None, data: str, users: int, cot_tokens: int) -> InferStage:
    """The arm's inference on fixed validation users: a trained run's model and arm, or the training recipe's;
    every arm decodes with the benchmark's ``decode`` settings (the recipe's config)."""
    if run_dir is not None:
        trained = load_trained(run_dir)
        cfg, model, tok = trained.cfg, trained.model, trained.tokenizer
    else:
        cfg, model, tok = recipe.cfg, recipe.model, recipe.tokenizer
        if cfg.arm.name == "cot":  # untrained: the rationale runs to its budget, so the budget is its length
            cfg = cfg.model_copy(update={"arm": cfg.arm.model_copy(update={"max_rationale_tokens": cot_tokens})})
    d = DataDir(data)
    dataset, catalog = d.dataset(), d.catalog()
    examples = select_users(d.split(recipe.cfg).valid, users, recipe.cfg.eval.subset_seed)
    prompts = PromptBuilder(tok, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    return InferStage(model, prompts, make_arm(cfg).bind(tok), catalog, examples, recipe.cfg.decode)


# --- the whole pipeline --------------------------------------------------------------------------------------------

def stage_rate(records: list[dict]) -> float:
    """Median over rounds of seconds per unit."""
    return statistics.median(r["seconds"] / r["units"] for r in records)


def pipeline_costs(rates: dict[str, float], units: dict[str, float], pipelines: dict[str, list[str]]) -> dict:
    """Per pipeline: each stage's rate (s/unit), full-run units and seconds (their product), and the total."""
    out = {}
    for name, stages in pipelines.items():
        parts = {s: {"s_per_unit": rates[s], "units": units[s], "seconds": rates[s] * units[s]} for s in stages}
        out[name] = {"stages": parts, "total_seconds": sum(p["seconds"] for p in parts.values())}
    return out


def ratios(values: dict[str, float], reference: str) -> dict[str, float | None]:
    """Each value divided by the reference's (None where the reference is absent)."""
    ref = values.get(reference)
    return {k: (v / ref if ref else None) for k, v in values.items()}


def paper_ratios(train_s: dict[str, float], infer_s: dict[str, float], cot: str = "cot") -> dict:
    """The paper's two cost claims from our numbers, for each pause arm against ``cot``:

    * ``training_saved`` = 1 - pause's whole-pipeline training seconds / cot's (paper: up to 0.65);
    * ``inference_faster`` = 1 - pause's seconds per user / cot's (time saved per user; paper: 0.713), beside
      ``inference_speedup`` = cot's / pause's (users per second, as a multiple).

    ``best`` holds each one's largest value over the pause arms (the paper's "up to")."""
    pauses = [a for a in train_s if a.startswith("pause")]
    per = {a: {"training_saved": 1 - train_s[a] / train_s[cot], "inference_faster": 1 - infer_s[a] / infer_s[cot],
               "inference_speedup": infer_s[cot] / infer_s[a]} for a in pauses}
    best = {k: max(v[k] for v in per.values()) for k in ("training_saved", "inference_faster", "inference_speedup")}
    return {"per_arm": per, "best": best if per else {}, "paper": PAPER}


# --- main ----------------------------------------------------------------------------------------------------------

def build_stages(args, tmp: Path) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """Every stage (callables in round order), each stage's full-run units, and facts for the report; template
    rationales for cot's SFT (without ``--rationales``) are acquired into ``tmp``."""
    base = [*GRID_SFT, *args.set]
    runs = dict(r.split("=", 1) for r in args.run)
    rationales = args.rationales
    if "cot" in args.arms and rationales is None:
        rationales = template_rationales(args.data, tmp, base)
    train, infer, units, facts = {}, {}, {}, {"rationales": args.rationales or "template, acquired for the run"}
    for spec in args.arms:
        t0 = time.perf_counter()
        r = load_recipe(args.data, [*base, *arm_overrides(spec, rationales)])
        train[f"train:{spec}"] = TrainStage(r, args.warmup, args.steps)
        units[f"train:{spec}"] = full_run_tokens(r)["real_tokens"]
        infer[f"infer:{spec}"] = inference_stage(r, Path(runs[spec]) if spec in runs else None, args.data,
                                                 args.users, args.cot_rationale_tokens)
        print(f"built {spec}: {units[f'train:{spec}']} real tokens in a full run ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    extra = {}
    if "cot" in args.arms:
        t0 = time.perf_counter()
        g = grounding_recipe(args.data, [*GRID_GROUND, *args.ground_set])
        extra["ground"] = TrainStage(g, args.ground_warmup, args.ground_steps)
        units["ground"] = full_run_tokens(g)["real_tokens"]
        extra.update(acquisition_stages(args, base, units))
        print(f"built ground and acquisition: {units['ground']} grounding tokens, {units['acquire:local']} rationales "
              f"in a full run ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {**train, **extra, **infer}, units, facts


def acquisition_stages(args, base: list[str], units: dict[str, float]) -> dict[str, AcquireStage]:
    """The local teacher and the template on the same fixed sample of training requests."""
    from pauserec.rationale.acquire import make_provider
    from pauserec.rationale.template import TemplateProvider

    cfg = build_config(overrides=[*base, *GRID_TEACHER, f"rationale.batch_size={args.teacher_batch}"])
    requests, n_examples = rationale_requests(args.data, cfg, args.rationale_sample)
    local = make_provider(cfg)
    model, tok = local.teacher()
    units["acquire:local"] = units["acquire:template"] = n_examples
    return {"acquire:local": AcquireStage(local, requests, tok, model),
            "acquire:template": AcquireStage(TemplateProvider(), requests)}


def pipelines_of(arms: list[str]) -> dict[str, list[str]]:
    """Each arm's stages in a full run; cot twice: with the local teacher's and with template rationales."""
    out = {a: [f"train:{a}"] for a in arms if a != "cot"}
    if "cot" in arms:
        out["cot"] = ["ground", "acquire:local", "train:cot"]
        out["cot-template"] = ["ground", "acquire:template", "train:cot"]
    return out


def summarise(stages: dict, records: dict[str, list[dict]], units: dict[str, float], arms: list[str],
              limits: dict) -> dict:
    """Rates, floors, pipeline costs, ratios and the paper's ratios (everything the report prints)."""
    rates = {s: stage_rate(rs) for s, rs in records.items()}
    floors = {}
    for s, st in stages.items():
        f = st.floor_per_unit(limits) if isinstance(st, TrainStage) else st.floor_per_unit(limits, records[s][0])
        floors[s] = None if f is None else f / rates[s]
    costs = pipeline_costs(rates, units, pipelines_of(arms))
    totals = {a: c["total_seconds"] for a, c in costs.items()}
    infer = {a: rates[f"infer:{a}"] for a in arms}
    out = {"rates": rates, "floor_fraction": floors, "full_run_units": units, "pipelines": costs,
           "train_ratio_to_direct": ratios(totals, "direct"), "train_ratio_to_cot": ratios(totals, "cot"),
           "inference_s_per_user": infer, "inference_ratio_to_cot": ratios(infer, "cot")}
    if "cot" in arms and any(a.startswith("pause") for a in arms):
        out["paper_ratios"] = paper_ratios(totals, infer)
    return out


UNIT = {"train": "token", "ground": "token", "acquire": "rationale", "infer": "user"}


def report(s: dict, records: dict[str, list[dict]], args) -> str:
    """The Markdown tables: stages, pipelines, inference, the paper's ratios."""
    rows = []
    for st, rate in s["rates"].items():
        per_round = [r["seconds"] / r["units"] for r in records[st]]
        fl = s["floor_fraction"][st]
        rows.append([st, UNIT[st.split(":")[0]], f"{rate * 1e3:.4g}", f"{min(per_round) * 1e3:.4g}-{max(per_round) * 1e3:.4g}",
                     f"{records[st][0]['units']:g}", f"{s['full_run_units'].get(st, '-')}", "-" if fl is None else f"{fl:.2f}"])
    md = "## Stages\n\n" + markdown_table(["stage", "unit", "ms/unit (median of rounds)", "range over rounds",
                                            "units timed per round", "units in a full run", "floor / measured"], rows)
    prows = []
    for a, c in s["pipelines"].items():
        parts = "; ".join(f"{st} {p['s_per_unit'] * 1e3:.3g} ms x {p['units']:.4g} = {p['seconds'] / 3600:.2f} h"
                          for st, p in c["stages"].items())
        rd, rc = s["train_ratio_to_direct"][a], s["train_ratio_to_cot"].get(a)
        prows.append([a, parts, f"{c['total_seconds'] / 3600:.2f}", f"{rd:.2f}" if rd else "-", f"{rc:.2f}" if rc else "-"])
    md += "\n## Whole-pipeline training cost (full run at the grid's budget)\n\n" + markdown_table(
        ["arm", "stages (rate x full-run units)", "total h", "/ direct", "/ cot"], prows)
    irows = []
    for a, sec in s["inference_s_per_user"].items():
        rec = records[f"infer:{a}"][0]
        rc = s["inference_ratio_to_cot"].get(a)
        irows.append([a, f"{sec * 1e3:.1f}", f"{rec['prefill_tokens'] / rec['units']:.1f}",
                      f"{rec['think_tokens'] / rec['units']:.1f}", f"{rc:.3f}" if rc else "-"])
    md += "\n## Inference\n\n" + markdown_table(["arm", "ms/user (median of rounds)", "prefill tokens/user",
                                                 "generated rationale tokens/user", "/ cot"], irows)
    if "paper_ratios" in s:
        md += paper_text(s["paper_ratios"])
    md += f"\n{args.rounds} rounds, alternating; SFT {args.steps} timed steps (after {args.warmup} warm-up), grounding " \
          f"{args.ground_steps} (after {args.ground_warmup}), {args.rationale_sample} rationale requests, " \
          f"{args.users} validation users; untrained cot rationale {args.cot_rationale_tokens} tokens.\n"
    return md


def paper_text(p: dict) -> str:
    """The paper's ratios beside ours, with how each of ours is defined."""
    rows = [[a, f"{v['training_saved']:.1%}", f"{v['inference_faster']:.1%}", f"{v['inference_speedup']:.2f}x"]
            for a, v in p["per_arm"].items()]
    b = p["best"]
    rows.append(["paper (best)", f"up to {PAPER['training_saved']:.0%}", f"{PAPER['inference_faster']:.1%}", "-"])
    rows.append(["ours (best)", f"{b['training_saved']:.1%}", f"{b['inference_faster']:.1%}", f"{b['inference_speedup']:.2f}x"])
    return "\n## The paper's ratios beside ours\n\n" + markdown_table(
        ["pause arm vs cot", "training time saved", "inference time saved per user", "inference speed-up"], rows) + \
        "\nTraining time saved = 1 - pause's whole-pipeline training seconds / cot's (cot: grounding + local-teacher " \
        "acquisition + SFT, each stage's measured rate x its tokens or rationales in a full run). Inference time " \
        "saved = 1 - pause's seconds per user / cot's (the paper's \"faster\" read as time saved; the speed-up is " \
        "cot's seconds per user / pause's).\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json), e.g. runs/data/sci")
    ap.add_argument("--arms", nargs="+", default=["direct", "pause:1", "pause:2", "pause:4", "cot"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="untimed SFT steps per round")
    ap.add_argument("--steps", type=int, default=8, help="timed SFT steps per round")
    ap.add_argument("--ground-warmup", type=int, default=1)
    ap.add_argument("--ground-steps", type=int, default=3)
    ap.add_argument("--rationale-sample", type=int, default=64, help="training requests the teacher answers per round")
    ap.add_argument("--teacher-batch", type=int, default=64, help="prompts per generate call (the grid: 128)")
    ap.add_argument("--users", type=int, default=64, help="validation users decoded per arm per round")
    ap.add_argument("--cot-rationale-tokens", type=int, default=COT_RATIONALE_TOKENS,
                    help="rationale length of an untrained cot model at inference (its budget, </think> included)")
    ap.add_argument("--rationales", help="a `pauserec rationales` directory for cot's SFT (default: template, acquired here)")
    ap.add_argument("--run", action="append", default=[], metavar="ARM=DIR",
                    help="decode this trained run for ARM's inference stage (repeatable)")
    ap.add_argument("--set", action="append", default=[], help="config override of every SFT stage")
    ap.add_argument("--ground-set", action="append", default=[], help="config override of the grounding stage")
    ap.add_argument("--name", default="pipeline-cost-scientific")
    args = ap.parse_args()
    unknown = {r.split("=", 1)[0] for r in args.run} - set(args.arms)
    if unknown or any("=" not in r for r in args.run):
        raise SystemExit(f"--run takes ARM=DIR with ARM one of --arms {args.arms}: got {args.run}")
    machine = environment()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pipeline-cost-") as tmp:
        stages, units, facts = build_stages(args, Path(tmp))
        setup_s = time.perf_counter() - t0
        records = run_rounds(stages, args.rounds)
    first = next(st for st in stages.values() if isinstance(st, TrainStage))
    f = model_facts(first.recipe.model)
    limits = machine_limits(f["hidden"], f["intermediate"])
    summary = summarise(stages, records, units, args.arms, limits)
    md = report(summary, records, args)
    wall = time.perf_counter() - t0
    md += f"\nWall time: {wall:.0f} s ({setup_s:.0f} s building the stages and counting the full runs' tokens).\n"
    write_result(args.name, {**summary, "records": records, "limits": limits, "arms": args.arms, **facts,
                             "wall_seconds": wall, "setup_seconds": setup_s}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
