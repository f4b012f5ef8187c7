"""Where one default-recipe training step spends its time: torch.profiler around the real ``SFTTrainer`` on the
real packed batches (the first steps of the real training order), ops grouped into the categories below.

    .venv/bin/python benchmarks/profile_step.py runs/data/sci --warmup 3 --steps 8

Categories (by op name, self CPU time, so nothing is counted twice): matmuls, attention (SDPA and its backward,
mask handling), elementwise (norms, rotary, activations, adds, ...), dtype casts (autocast's weight and activation
copies), embedding (lookup and its dense backward), the LM head's gather and loss, the optimizer (fused AdamW,
gradient zeroing and clipping), and "outside ops" (wall time of the step not spent in any profiled op: Python,
Trainer bookkeeping, the collator). A checkpoint write is timed on its own (``save_model`` + optimizer state).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from common import load_recipe, write_result
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from pauserec.report import markdown_table
from pauserec.artifacts import environment
from pauserec.train.cpu_memory import freed_memory_kept
from pauserec.train.run import training_arguments, training_attention
from pauserec.train.trainer import SFTTrainer

CATEGORIES = [  # (category, substrings of aten op names), first match wins
    ("optimizer", ("adam", "optimizer", "zero_", "clip_grad", "_foreach", "norm_except", "linalg_vector_norm")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "masked_fill", "where",
                   "logical", "bitwise", "softmax")),
    ("matmul", ("mm", "matmul", "linear", "addmm", "bmm", "baddbmm")),
    ("dtype casts", ("_to_copy", "copy_", "to", "_autocast")),
    ("embedding", ("embedding",)),
    ("head and loss", ("cross_entropy", "nll_loss", "log_softmax", "logsumexp", "gather", "index", "take")),
    ("elementwise", ("mul", "add", "sub", "div", "pow", "rsqrt", "mean", "silu", "neg", "cat", "cos", "sin",
                     "exp", "sum", "fill", "sigmoid", "tanh", "clamp", "threshold", "native_layer_norm", "rms")),
]


def category(name: str) -> str:
    """The category of an aten op name (see :data:`CATEGORIES`); "other ops" where none matches."""
    op = name.lower().removeprefix("aten::")
    for cat, keys in CATEGORIES:
        if any(k == op or op.startswith(k) or f"_{k}" in op or k in op.split("_") for k in keys):
            return cat
    return "other ops"


class Window(TrainerCallback):
    """Profile steps ``warmup`` .. ``warmup + steps`` of the Trainer; record each step's wall time."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.prof: profile | None = None
        self.t0 = 0.0
        self.step_seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.warmup:
            self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=False)
            self.prof.__enter__()
            self.t_window = time.perf_counter()
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self.warmup < state.global_step <= self.warmup + self.steps:
            self.step_seconds.append(time.perf_counter() - self.t0)
        if state.global_step == self.warmup + self.steps and self.prof is not None:
            self.window_seconds = time.perf_counter() - self.t_window
            self.prof.__exit__(None, None, None)
            control.should_training_stop = True


def categorise(prof: profile) -> tuple[dict[str, float], list[tuple[str, float, int]]]:
    """Self CPU seconds per category (aten ops only) and the top ops ``(name, seconds, calls)``."""
    by_cat: dict[str, float] = defaultdict(float)
    ops = []
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        seconds = e.self_cpu_time_total / 1e6
        by_cat[category(e.key)] += seconds
        ops.append((e.key, seconds, e.count))
    return dict(by_cat), sorted(ops, key=lambda o: -o[1])[:25]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], help="config overrides (default: the default recipe)")
    ap.add_argument("--name", default="profile-step")
    args = ap.parse_args()
    machine = environment()

    r = load_recipe(args.data, [f"train.max_steps={args.warmup + args.steps + 1}", f"train.eval_every={10**6}", *args.set])
    window = Window(args.warmup, args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        targs = training_arguments(r.cfg, Path(tmp))
        targs.save_strategy, targs.load_best_model_at_end, targs.disable_tqdm = "no", False, True
        trainer = SFTTrainer(model=r.model, args=targs, train_dataset=r.units, eval_dataset=[0],
                             data_collator=r.collate, validate=lambda m: {}, softmax=r.softmax, callbacks=[window], attention=training_attention(r.cfg))
        tokens0 = trainer.real_tokens
        with freed_memory_kept(r.cfg.train.cpu_allocator == "reuse"):
            trainer.train()
        t0 = time.perf_counter()
        trainer.save_model(str(Path(tmp) / "ckpt"))
        trainer._save_optimizer_and_scheduler(str(Path(tmp) / "ckpt"))
        save_seconds = time.perf_counter() - t0
    by_cat, top = categorise(window.prof)
    wall = window.window_seconds
    by_cat["outside ops (Python, Trainer, collator)"] = wall - sum(by_cat.values())
    n = args.steps
    rows = [[c, f"{s / n * 1000:.0f}", f"{s / wall:.1%}"] for c, s in sorted(by_cat.items(), key=lambda kv: -kv[1])]
    rows.append(["**step (wall)**", f"{wall / n * 1000:.0f}", "100%"])
    md = markdown_table(["category", "ms per step", "share"], rows)
    md += f"\nCheckpoint write (weights + optimizer state), once: {save_seconds:.1f} s.  \n"
    md += f"Steps profiled: {n} (after {args.warmup} warm-up), {r.cfg.train.batch_size} users per step, " \
          f"{(trainer.real_tokens - tokens0) / (args.warmup + n):.0f} real tokens per step on average, " \
          f"bf16 {r.bf16}, threads {torch.get_num_threads()}.\n\nTop ops (self CPU):\n\n"
    md += markdown_table(["op", "ms per step", "calls per step"],
                         [[k, f"{s / n * 1000:.1f}", f"{c / n:.0f}"] for k, s, c in top])
    write_result(args.name, {"config": r.cfg.model_dump(mode="json"), "ms_per_step": {c: s / n * 1000 for c, s in by_cat.items()},
                             "step_seconds": window.step_seconds, "checkpoint_write_seconds": save_seconds,
                             "top_ops": top}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
