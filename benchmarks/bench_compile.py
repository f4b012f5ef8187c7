"""``torch.compile`` on the training step, side by side in one run: the default recipe's packed batches (the first
steps of the real training order), forward + backward + fused AdamW, eager vs compiled (inductor, dynamic shapes:
packed rows vary in width), from the same initial weights.

Reports, per step, both times; the compilations (a compiled step over 10x the eager time of the same batch) and
their seconds; the median seconds per step of the other steps for both, their ratio and the break-even step count;
and the first step's loss under both (they must agree).

    .venv/bin/python benchmarks/bench_compile.py runs/foundation/scientific --warmup 3 --steps 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from common import write_result

from pauserec import pipeline
from pauserec.arms import make_arm
from pauserec.config import build_config
from pauserec.model.params import apply_trainable_policy
from pauserec.precision import bf16_enabled
from pauserec.prompt import PromptBuilder
from pauserec.report import markdown_table
from pauserec.runs import environment
from pauserec.train.batches import sid_softmax
from pauserec.train.packing import tree_loss
from pauserec.train.run import load_model, training_data
from pauserec.train.trainer import SeededSampler


def timed_steps(model, batches, softmax, bf16: bool) -> tuple[list[float], float]:
    """Seconds of each forward + backward + AdamW step, and the first step's loss."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    times, first = [], float("nan")
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = tree_loss(model, batch, softmax)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        first = loss.item() if i == 0 else first
    return times, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json)")
    ap.add_argument("--warmup", type=int, default=3, help="steps before timing (compilation happens here)")
    ap.add_argument("--steps", type=int, default=15, help="timed steps")
    ap.add_argument("--set", action="append", default=[], help="config overrides (default: the default recipe)")
    ap.add_argument("--name", default="bench-compile")
    args = ap.parse_args()

    cfg = build_config(overrides=args.set)
    dataset = pipeline.load_dataset(args.data)
    catalog = pipeline.load_catalog(args.data, dataset)
    split = pipeline.load_split(dataset, cfg)
    arm = make_arm(cfg.arm)
    model, tok, new_ids, level_ids = load_model(cfg, dataset, catalog, arm.new_tokens())
    arm.bind(tok)
    prompts = PromptBuilder(tok, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    model = apply_trainable_policy(model, cfg.model.trainable, new_ids, cfg.model).train()
    train_set, collate = training_data(cfg, split.train, prompts, arm, tok.pad_token_id)
    order = SeededSampler(len(train_set), cfg.seed).order(0)
    b = cfg.train.batch_size
    batches = [collate([train_set[j] for j in order[i * b:(i + 1) * b]]) for i in range(args.warmup + args.steps)]
    softmax = sid_softmax(cfg.train.loss, level_ids, len(tok), catalog.trie)
    bf16 = bf16_enabled(cfg.train.bf16)

    init = {k: v.clone() for k, v in model.state_dict().items()}
    eager, eager_loss = timed_steps(model, batches, softmax, bf16)
    model.load_state_dict(init)
    compiled, compiled_loss = timed_steps(torch.compile(model, dynamic=True), batches, softmax, bf16)
    record = {"config": cfg.model_dump(mode="json"), "eager": eager, "compiled": compiled, "warmup": args.warmup,
              "first_loss": {"eager": eager_loss, "compiled": compiled_loss},
              "batch": {"users": b, "bf16": bf16, "threads": torch.get_num_threads(),
                        "row_widths": [int(x["input_ids"].shape[1]) for x in batches]}}
    report(record, args.name, environment())


def summarize(eager: list[float], compiled: list[float], warmup: int) -> dict[str, float | int | None]:
    """Per-step times of the same batches -> the comparison. A compiled step that takes over 10x the eager time of
    the same batch is a (re)compilation: dynamic shapes still recompile when a new guard fails, and packed rows vary.
    ``median_*`` is over the other timed steps; ``break_even_steps``: compilation seconds / seconds saved per step."""
    compiling = [i for i, (e, c) in enumerate(zip(eager, compiled)) if i < warmup or c > 10 * e]
    steady = [i for i in range(warmup, len(eager)) if i not in compiling]
    median = lambda xs: float(statistics.median(xs)) if xs else float("nan")  # noqa: E731
    e, c = median([eager[i] for i in steady]), median([compiled[i] for i in steady])
    compile_s = sum(compiled[i] - eager[i] for i in compiling)
    return {"median_s_per_step_eager": e, "median_s_per_step_compiled": c, "compiled_over_eager": c / e,
            "compilations": sum(1 for i in compiling if compiled[i] > 10 * eager[i]),
            "compile_seconds": compile_s, "break_even_steps": compile_s / (e - c) if e > c else None,
            "steady_steps": len(steady)}


def report(record: dict[str, Any], name: str, machine: dict[str, Any]) -> None:
    summary = summarize(record["eager"], record["compiled"], record["warmup"])
    steps = ", ".join(f"{e:.1f}/{c:.1f}" for e, c in zip(record["eager"], record["compiled"]))
    even = summary["break_even_steps"]
    md = markdown_table(["loop", "median s/step (steady steps)", "compilation s"],
                        [["eager", f"{summary['median_s_per_step_eager']:.3f}", "-"],
                         ["torch.compile", f"{summary['median_s_per_step_compiled']:.3f}",
                          f"{summary['compile_seconds']:.0f} ({summary['compilations']} compilations)"]])
    md += (f"\ncompiled / eager: {summary['compiled_over_eager']:.3f} over {summary['steady_steps']} steady steps; "
           f"break-even after {'never' if even is None else f'{even:.0f}'} steps (if nothing recompiled again); "
           f"first loss {record['first_loss']['eager']:.4f} eager, {record['first_loss']['compiled']:.4f} compiled.\n\n"
           f"Seconds per step, eager/compiled, same batches: {steps}\n")
    write_result(name, {**record, "summary": summary}, md, machine=machine)
    print(md)


if __name__ == "__main__":
    main()
