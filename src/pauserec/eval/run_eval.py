"""Evaluate a trained run directory: metrics with intervals, predictions and cost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import pipeline
from ..arms import make_arm
from ..config import RunConfig
from ..io import read_json, write_json, write_jsonl
from ..model.backbone import inference_device, load_backbone
from ..model.vocab import check_vocabulary, token_ids_by_level
from ..prompt import PromptBuilder
from ..runs import RunDir, tokenizer_hash
from .cost import peak_memory_bytes, reset_peak_memory
from .pipeline_cost import pipeline_cost
from .evaluate import evaluate_rankings, user_subset
from .exclusion import exclusions
from .recommend import recommend


def evaluate_run(
    run_dir: str | Path, cfg: RunConfig | None = None, progress: bool = True, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Decode ``cfg.eval.split`` for the run's selected model; ``cfg`` defaults to the run's stored config.

    Writes ``metrics.json``, ``predictions.jsonl`` and ``cost.json`` (training cost + inference cost) into the
    run, or into ``out_dir`` (with the evaluation's own ``config.yaml`` and ``env.json``) so that an ablation,
    e.g. another inference K, leaves the run's own evaluation untouched.
    """
    run = RunDir(run_dir)
    cfg = cfg or run.config()
    dataset, catalog = pipeline.load_run_data(run)
    split = pipeline.load_split(dataset, cfg)

    model, tokenizer = load_backbone(str(run.file("model")), cfg.cache_dir)
    run.pin_fact("tokenizer_hash", tokenizer_hash(tokenizer))  # recorded by training, else by the first evaluation
    arm = make_arm(cfg.arm)
    check_vocabulary(tokenizer, catalog, arm.new_tokens())
    arm.bind(tokenizer)
    model.to(inference_device()).eval()
    prompts = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    examples, users = user_subset(split.part(cfg.eval.split), cfg.eval.max_users, cfg.eval.subset_seed)

    reset_peak_memory()
    with torch.inference_mode():
        recs = recommend(
            model, prompts, arm, catalog, token_ids_by_level(tokenizer, catalog), examples, cfg.decode,
            tokenizer.pad_token_id, progress=progress,
            exclude=exclusions(dataset, examples, cfg.eval.split, cfg.eval.exclude_history),
        )
    metrics, rows = evaluate_rankings(
        examples, recs.items, dataset, cfg.eval, scores=recs.scores, seed=cfg.seed, users=users
    )
    if recs.rationales is not None:  # the arm's generated text, kept beside its ranking
        for row, text in zip(rows, recs.rationales, strict=True):
            row["rationale"] = text
    result = {"model": cfg.arm.name, "split": cfg.eval.split, "metrics": metrics}
    train_cost_path = run.file("train_cost.json")
    cost = {
        "train": read_json(train_cost_path) if train_cost_path.exists() else None,
        "pipeline": pipeline_cost(run.path) if train_cost_path.exists() else None,
        "inference": {
            "users": len(examples),
            "seconds": recs.seconds,
            "latency_per_user_s": recs.seconds / max(len(examples), 1),
            "users_per_second": len(examples) / max(recs.seconds, 1e-9),
            "prefill_tokens": recs.prefill_tokens,
            "prefill_tokens_per_user": recs.prefill_tokens / max(len(examples), 1),
            "decode_tokens": recs.decode_tokens,
            "think_tokens": recs.think_tokens,
            "think_tokens_per_user": recs.think_tokens / max(len(examples), 1),
            "num_beams": cfg.decode.num_beams,
            "batch_size": cfg.decode.batch_size,
            "peak_memory_gb": peak_memory_bytes() / 1e9,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    }
    dest = run if out_dir is None else RunDir.create(
        out_dir, cfg, kind=f"eval:{cfg.arm.name}", evaluated_run=str(run.path), dataset_hash=dataset.content_hash(),
        catalog_hash=catalog.content_hash(),
    )
    write_jsonl(dest.file("predictions.jsonl"), rows)
    write_json(dest.file("metrics.json"), result)
    write_json(dest.file("cost.json"), cost)
    return {**result, "cost": cost}
