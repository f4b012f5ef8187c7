"""Train one arm: backbone + vocabulary + trainable policy + SFT, keeping the weights ``train.select`` names.

The run directory receives ``checkpoints/`` (Trainer checkpoints, for ``--resume``), ``model/`` (the
kept weights as a plain HF checkpoint + tokenizer, LoRA merged), ``train_log.json`` and ``train_cost.json``.
The same machinery (:func:`open_run`, :func:`load_trainable_model`, :func:`fit`) trains the SID-grounding stage
(:mod:`.grounding`) on its own rows and validation.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from .. import dist
from ..arms import Arm, get_arm, make_arm
from ..artifacts import DataDir, RunDir, tokenizer_hash
from ..artifacts.lineage import upstream_stages
from ..config import RunConfig
from ..data.split import training_users_subset
from ..data.text import item_title
from ..errors import PauseRecError
from ..eval.cost import peak_memory_bytes, reset_peak_memory
from ..eval.evaluate import select_users
from ..eval.exclusion import exclusions
from ..recommend import recommend
from ..io import write_json
from ..model.backbone import load_backbone
from ..model.params import apply_trainable_policy, count_parameters, save_plain_checkpoint
from ..model.sid_init import init_sid_rows_from_text
from ..model.vocab import extend_vocabulary, token_ids_by_level
from ..precision import bf16_enabled
from ..prompt import PROMPT_LAYOUT, PromptBuilder, check_prompt_layout
from . import vocab_rows
from .cpu_memory import freed_memory_kept
from .batches import RightPadCollator, SFTDataset, sid_softmax
from .packing import PrefixTreeCollator, UnitCollator, UserChunkDataset
from .trainer import (
    SELECTION_METRIC,
    EvaluateAtEnd,
    FailOnNonFinite,
    SFTTrainer,
    StopAfter,
    best_validation,
    last_complete_checkpoint,
    sharded_validation,
)


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """``train.batch_size`` (global: summed over the ranks) -> each rank's micro-batch; refuses a split that is
    not even, which would make N ranks train on another batch than one process."""
    if batch_size % world_size:
        raise PauseRecError(f"train.batch_size={batch_size} is the global batch: it must divide evenly over the "
                            f"{world_size} ranks (choose a multiple of {world_size})")
    return batch_size // world_size


def batch_facts(cfg: RunConfig) -> dict[str, int]:
    """The batch semantics of ``train_cost.json``: world size, each rank's micro-batch and the global batch per
    optimizer step (``train.batch_size`` x ``train.grad_accum``), in training units (users or examples)."""
    world = dist.world_size()
    return {"world_size": world, "per_rank_batch_size": per_rank_batch_size(cfg.train.batch_size, world),
            "global_batch_size": cfg.train.batch_size * cfg.train.grad_accum}


def training_arguments(cfg: RunConfig, output_dir: Path) -> TrainingArguments:
    t = cfg.train
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        per_device_train_batch_size=per_rank_batch_size(t.batch_size, dist.world_size()),
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        warmup_steps=math.ceil(t.warmup_ratio * t.max_steps),
        weight_decay=t.weight_decay,
        lr_scheduler_type="cosine",
        optim="adamw_torch_fused",  # one fused kernel: 0.05 s instead of 0.24 s per step for 135M parameters on 2 cores
        bf16=bf16_enabled(t.bf16),
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps",
        eval_steps=t.eval_every,
        save_strategy="steps",
        save_steps=t.eval_every,
        save_total_limit=t.save_total_limit,
        save_only_model=not t.resumable,
        # select=final: no best checkpoint tracked, kept or reloaded; the Trainer ends on the last step's weights
        load_best_model_at_end=t.select == "validation_best",
        metric_for_best_model=SELECTION_METRIC if t.select == "validation_best" else None,
        greater_is_better=True if t.select == "validation_best" else None,
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must show (and stop the run: FailOnNonFinite)
        report_to="none",
        train_sampling_strategy="random" if t.packing == "prefix_tree" else "group_by_length",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # every trainable parameter gets a gradient each step, some outside the module's forward (the trained
        # vocabulary rows' logits): DDP's unused-parameter search would mark those ready before their gradient exists
        ddp_find_unused_parameters=False,
        seed=cfg.seed,
        disable_tqdm=False,
    )


def training_data(cfg: RunConfig, examples, prompts: PromptBuilder, arm, pad_token_id: int):
    """The training set and its collator for ``cfg.train.packing``: one unit per user (all of its examples)."""
    rows = SFTDataset(examples, prompts, arm)
    by_user: dict[int, list] = {}
    for ex, row in zip(examples, rows.rows):
        by_user.setdefault(ex.user, []).append(row)
    return unit_data(cfg, list(by_user.values()), pad_token_id)


def unit_data(cfg: RunConfig, units: list[list[dict]], pad_token_id: int):
    """Rows grouped in training units -> ``(dataset, collator)``: prefix-tree packed units, or single padded rows."""
    if cfg.train.packing == "none":
        return SFTDataset.from_rows([row for unit in units for row in unit]), RightPadCollator(pad_token_id)
    dataset = UserChunkDataset(units, cfg.train.max_user_examples)
    return dataset, UnitCollator(PrefixTreeCollator(pad_token_id, cfg.train.max_row_tokens))


def open_run(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, resume: bool, kind: str,
             upstream: Mapping[str, str] | None = None):
    """Load the data directory and create (or, with ``resume``, check) the run directory, with its lineage
    (``lineage.json``: the backbone run and the ``upstream`` stages, e.g. the arm's rationales, hashed).
    Returns ``(run, dataset, catalog, split)``."""
    data = DataDir(data_dir)
    dataset, catalog, split = data.dataset(), data.catalog(), data.split(cfg)
    facts = {"kind": kind, **data.facts(split, catalog=True), "prompt_layout": PROMPT_LAYOUT}
    run_dir = Path(run_dir)
    dist.init()  # several ranks (torchrun, accelerate launch): join their group before the first barrier
    if resume:
        if not cfg.train.resumable:
            raise PauseRecError(f"{run_dir} was trained with train.resumable=false: its checkpoints hold weights only, "
                                "so it cannot be resumed; train it again")
        run = RunDir(run_dir)
        check_prompt_layout(run.env(), f"run {run_dir}")
        for key in ("dataset_hash", "catalog_hash", "split_hash"):
            run.check_fact(key, facts[key])
    elif (run_dir / "checkpoints").exists():
        raise PauseRecError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out")
    dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    if dist.is_main():  # rank 0 alone writes the run's files; the others wait and open what it wrote
        run = RunDir.create(run_dir, cfg, **facts)
        if not (resume and run.lineage() is not None):  # a resumed run keeps what it was first built from
            run.record_lineage(upstream_stages(cfg.model.backbone, upstream or {}))
    dist.barrier()
    return RunDir(run_dir), dataset, catalog, split


def load_model(cfg: RunConfig, dataset, catalog, extra_tokens: list[str]):
    """Backbone with the catalogue's SID tokens and ``extra_tokens`` added (rows of SID tokens that are new get the
    configured init; a backbone that already knows them, e.g. a grounded model, keeps its rows).
    Returns ``(model, tokenizer, new_ids, level_ids)``; the trainable policy is not applied yet."""
    model, tokenizer = load_backbone(cfg.model.backbone, cfg.cache_dir)
    new_ids = extend_vocabulary(
        model, tokenizer, catalog.all_tokens() + extra_tokens, noise_std=cfg.model.new_row_noise, seed=cfg.seed
    )
    level_ids = token_ids_by_level(tokenizer, catalog)
    sid_rows_are_new = set(int(i) for ids in level_ids for i in ids) <= set(new_ids)
    if cfg.model.sid_init == "title" and sid_rows_are_new:
        titles = [item_title(fields) for fields in dataset.item_fields]
        init_sid_rows_from_text(model, tokenizer, catalog, level_ids, titles, scale=cfg.model.new_row_noise)
    return model, tokenizer, new_ids, level_ids


def load_trainable_model(cfg: RunConfig, dataset, catalog, extra_tokens: list[str]):
    """:func:`load_model` with the trainable policy ``cfg.model.trainable`` applied (what training and grounding
    start from). Returns ``(model, tokenizer, level_ids)``."""
    model, tokenizer, new_ids, level_ids = load_model(cfg, dataset, catalog, extra_tokens)
    return apply_trainable_policy(model, cfg.model.trainable, new_ids, cfg.model), tokenizer, level_ids


def checkpoint_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """``(bytes of one Trainer checkpoint, bytes of the weights alone)``: the weights plus AdamW's two fp32 moments
    per trainable parameter (SmolLM2-135M fully trained: 0.54 GB + 1.08 GB)."""
    weights = trainable = 0
    for p in model.parameters():
        weights += p.numel() * p.element_size()
        trainable += p.numel() if p.requires_grad else 0
    return weights + 2 * 4 * trainable, weights


def training_attention(cfg: RunConfig) -> str | None:
    """The attention implementation of packed training forwards for ``train.attention`` (None: the backbone's);
    ``auto``: eager where training runs on the CPU (no CUDA device), the backbone's on a GPU."""
    if cfg.train.attention == "auto":
        return None if torch.cuda.is_available() else "eager"
    return None if cfg.train.attention == "backbone" else cfg.train.attention


def check_free_disk(folder: Path, model: torch.nn.Module, cfg: RunConfig) -> None:
    """Refuse to start training whose checkpoints will not fit on the disk: a disk that fills mid-run costs every
    step since the last checkpoint, and the checkpoint being written is torn. Counts the checkpoints the run keeps at
    once (``train.save_total_limit`` + the one being written), less those already there, plus the final model."""
    per_checkpoint, weights = checkpoint_bytes(model)
    per_checkpoint = per_checkpoint if cfg.train.resumable else weights
    saves = math.ceil(cfg.train.max_steps / cfg.train.eval_every)
    limit = cfg.train.save_total_limit or saves  # 0: every checkpoint is kept
    if cfg.train.select == "validation_best":
        limit = max(limit, 2)  # the newest (to resume) and the best are both protected
    kept = min(saves, limit + 1)
    existing = len(list(folder.glob("checkpoint-*"))) if folder.is_dir() else 0
    needed = max(0, kept - existing) * per_checkpoint + weights
    free = shutil.disk_usage(folder if folder.is_dir() else folder.parent).free
    if free < needed:
        raise PauseRecError(
            f"{folder}: {free / 1e9:.1f} GB free on its disk, training needs about {needed / 1e9:.1f} GB "
            f"({max(0, kept - existing)} checkpoints of {per_checkpoint / 1e9:.2f} GB + the selected model): free "
            "space, lower train.save_total_limit, set train.resumable=false (weights only), or train elsewhere (--out)")


def fit(cfg: RunConfig, run: RunDir, model, tokenizer, train_set, collator, validate, softmax, resume: bool,
        extra_cost: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the Trainer (validation every ``train.eval_every`` steps; ``train.select`` says which weights are kept),
    save the kept model to ``RUN/model`` and write ``train_log.json`` and ``train_cost.json``; returns the cost summary."""
    t_start = time.perf_counter()
    if dist.is_main():
        run.pin_fact("tokenizer_hash", tokenizer_hash(tokenizer))  # a resumed run must extend the same vocabulary
    dist.barrier()
    run.check_fact("tokenizer_hash", tokenizer_hash(tokenizer))
    check_free_disk(run.path / "checkpoints", model, cfg)
    time_cap = StopAfter(60 * cfg.train.max_minutes) if cfg.train.max_minutes else None
    trainer = SFTTrainer(
        model=model,
        args=training_arguments(cfg, run.path / "checkpoints"),
        train_dataset=train_set,
        eval_dataset=[0],  # validation is `validate`, not the Trainer's loss loop
        data_collator=collator,
        processing_class=tokenizer,
        validate=validate,
        softmax=softmax,
        attention=training_attention(cfg),
        callbacks=[EvaluateAtEnd(), FailOnNonFinite(), *([time_cap] if time_cap else [])],
    )
    checkpoints = run.path / "checkpoints"
    checkpoint = last_complete_checkpoint(checkpoints) if resume and checkpoints.is_dir() else None
    reset_peak_memory()
    with freed_memory_kept(cfg.train.cpu_allocator == "reuse" and not torch.cuda.is_available()):
        trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = trainer.wall_before + time.perf_counter() - t_start  # a resumed run counts its earlier part

    table = vocab_rows.trained_rows(trainer.model)
    matrix = trainer.model.get_input_embeddings().weight
    vocab_trained = len(table.ids) if table is not None else getattr(matrix, "ds_shape", matrix.shape)[0]  # ZeRO-3
    vocab_rows.detach(trainer.model)
    params = count_parameters(trainer.model)
    counts = trainer.global_counts()  # summed over the ranks
    state = dist.full_state_dict(trainer.model, trainer.deepspeed)  # sharded: gathered onto rank 0; else None
    if dist.is_main():
        save_plain_checkpoint(trainer.model, tokenizer, run.path / "model", state_dict=state)
        write_json(run.file("train_log.json"), trainer.state.log_history)
    cost = {
        "train_seconds": train_seconds,
        "train_clock_seconds": trainer.training_seconds(),
        "steps": trainer.state.global_step,
        "train_examples": train_set.n_examples,
        "packing": cfg.train.packing,
        "example_tokens_per_epoch": train_set.n_tokens(),
        **batch_facts(cfg),
        "examples_seen": counts["examples_seen"],
        "examples_per_second": counts["examples_seen"] / max(train_seconds, 1e-9),
        "real_tokens": counts["real_tokens"],
        "padded_tokens": counts["padded_tokens"],
        "padding_fraction": 1 - counts["real_tokens"] / max(counts["padded_tokens"], 1),
        "real_tokens_per_second": counts["real_tokens"] / max(train_seconds, 1e-9),
        **kept_weights(cfg, trainer.state),
        "peak_memory_bytes": peak_memory_bytes(),
        "parameters": params,
        "vocab_rows_trained": vocab_trained,  # of the vocabulary matrix's rows (train.vocab_rows)
        "bf16": trainer.args.bf16,
        "attention": trainer.attention or "backbone",  # of the packed training forward (train.attention)
        "device": str(trainer.args.device),
        "resumed_from": checkpoint,
        "counts_from_step": trainer.counted_from_step,  # > 0: resumed from a checkpoint without logged counts
        "stopped_by_time_cap": bool(time_cap and time_cap.fired),
        **(extra_cost or {}),
    }
    write_main(run.file("train_cost.json"), cost)
    return cost


def kept_weights(cfg: RunConfig, state) -> dict[str, Any]:
    """What ``train_cost.json`` says about the weights saved as ``RUN/model``: the rule (``select``), the kept step,
    Hugging Face's best checkpoint (None under ``final``, which tracks none) and ``best_val_*``: the validation
    scores logged at the kept step (the best under ``validation_best``; the last step's under ``final``)."""
    final = cfg.train.select == "final"
    step = state.global_step if final else state.best_global_step
    return {
        "select": cfg.train.select,
        "kept_step": step,
        "best_checkpoint": state.best_model_checkpoint,
        "selection_metric": "none: the last step's weights" if final else f"validation {SELECTION_METRIC}",
        **best_validation(state.log_history, step),
    }


def write_main(path: Path, content: Any) -> None:
    """Write a run file from rank 0 alone (in one process: write it); every rank returns after it is written."""
    if dist.is_main():
        write_json(path, content)
    dist.barrier()


@dataclass
class TrainingSetup:
    """Everything training builds before its first step: the arm (bound to the tokenizer), the model with its
    trainable policy applied, the prompts, the SID token ids per level (``level_ids[l]``: LongTensor of level
    ``l``'s token ids), the training examples, their packed dataset and collator, and the SID loss normalisation."""

    arm: Arm
    model: torch.nn.Module
    tokenizer: Any
    prompts: PromptBuilder
    level_ids: list[torch.Tensor]
    examples: list
    train_set: Any
    collator: Any
    softmax: Any


def build_training(cfg: RunConfig, dataset, catalog, split) -> TrainingSetup:
    """The training setup of ``cfg`` on a loaded data directory (what ``pauserec train`` and the step-time
    benchmarks share)."""
    arm = make_arm(cfg)
    model, tokenizer, level_ids = load_trainable_model(cfg, dataset, catalog, arm.new_tokens())
    arm.bind(tokenizer)
    prompts = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    examples = training_users_subset(split.train, cfg.train.max_users)
    train_set, collator = training_data(cfg, examples, prompts, arm, tokenizer.pad_token_id)
    softmax = sid_softmax(cfg.train.loss, level_ids, len(tokenizer), catalog.trie)
    train_vocab_rows(cfg, model, train_set, softmax)
    return TrainingSetup(arm, model, tokenizer, prompts, level_ids, examples, train_set, collator, softmax)


def train_vocab_rows(cfg: RunConfig, model: torch.nn.Module, train_set, softmax) -> None:
    """``train.vocab_rows=active``: train only the vocabulary rows that can receive a gradient, where that is exact
    (:mod:`.vocab_rows`); otherwise the whole matrix trains."""
    if cfg.train.vocab_rows != "active" or dist.sharded_training_requested():  # the matrix the rows are written
        return  # into would be sharded (FSDP: mixed Tensor and DTensor) or partitioned (ZeRO-3: an empty tensor)
    ids = vocab_rows.rows_to_train(model, getattr(train_set, "units", []), softmax, policy=cfg.model.trainable,
                                   weight_decay=cfg.train.weight_decay, packed=cfg.train.packing == "prefix_tree")
    if ids is not None:
        vocab_rows.attach(model, ids)


def train(cfg: RunConfig, data_dir: str | Path, run_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg.arm`` on the data directory; returns the training cost summary."""
    t_start = time.perf_counter()
    upstream = get_arm(cfg.arm.name).upstream_stages(cfg.arm)
    run, dataset, catalog, split = open_run(cfg, data_dir, run_dir, resume, kind=f"train:{cfg.arm.name}",
                                            upstream=upstream)
    s = build_training(cfg, dataset, catalog, split)
    val_examples = select_users(split.valid, cfg.train.val_users, cfg.eval.subset_seed)
    val_exclude = exclusions(dataset, val_examples, "valid", cfg.eval.exclude_history)

    def validate(m: torch.nn.Module) -> dict[str, float]:
        def decode(start: int, stop: int) -> tuple[list[list[int]], float]:  # this rank's share of the users
            recs = recommend(m, s.prompts, s.arm, catalog, s.level_ids, val_examples[start:stop], cfg.decode,
                             s.tokenizer.pad_token_id, exclude=val_exclude and val_exclude[start:stop])
            return recs.items, recs.seconds

        return sharded_validation(decode, [e.target for e in val_examples])

    extra = {"train_users": len({e.user for e in s.examples}), **s.arm.training_report()}
    cost = fit(cfg, run, s.model, s.tokenizer, s.train_set, s.collator, validate, s.softmax, resume, extra)
    cost["total_seconds"] = time.perf_counter() - t_start
    write_main(run.file("train_cost.json"), cost)
    return cost
