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
from typing import Any

import torch
from common import load_recipe, step_times, write_result

from pauserec.report import markdown_table
from pauserec.artifacts import environment
from pauserec.train.packing import tree_loss
from pauserec.train.trainer import SeededSampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json)")
    ap.add_argument("--warmup", type=int, default=3, help="steps before timing (compilation happens here)")
    ap.add_argument("--steps", type=int, default=15, help="timed steps")
    ap.add_argument("--set", action="append", default=[], help="config overrides (default: the default recipe)")
    ap.add_argument("--name", default="bench-compile")
    args = ap.parse_args()

    r = load_recipe(args.data, args.set)
    model, b, bf16 = r.model, r.cfg.train.batch_size, r.bf16
    order = SeededSampler(len(r.units), r.cfg.seed).order(0)
    batches = [r.collate([r.units[j] for j in order[i * b:(i + 1) * b]]) for i in range(args.warmup + args.steps)]

    init = {k: v.clone() for k, v in model.state_dict().items()}
    loss = lambda m, batch: tree_loss(m, batch, r.softmax)[0]  # noqa: E731
    eager, eager_loss = step_times(model, batches, loss, bf16, fused=True)
    model.load_state_dict(init)
    compiled, compiled_loss = step_times(torch.compile(model, dynamic=True), batches, loss, bf16, fused=True)
    record = {"config": r.cfg.model_dump(mode="json"), "eager": eager, "compiled": compiled, "warmup": args.warmup,
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
