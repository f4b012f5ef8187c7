"""Training step time against the machine's limit, side by side in one run on the same packed batches.

Configurations, each in its own process (the allocator setting is process-wide), in alternating rounds so that a
drifting machine slows all of them alike:

* ``hf-bare``   the plain Hugging Face model, a hand-written loop: forward over the packed rows (tree mask, depth
                positions), full-vocabulary cross-entropy at the labelled nodes, backward, fused AdamW;
* ``before``    the pauserec trainer (``SFTTrainer``) as it was: ``train.vocab_rows=all``, ``train.cpu_allocator=system``;
* ``+allocator`` ``train.cpu_allocator=reuse`` added;
* ``now``       the default recipe (``train.vocab_rows=active`` and, on a CPU, eager attention added);
* ``now, system allocator``: the default recipe less ``train.cpu_allocator=reuse`` (what that lever adds on top);
* ``now, backbone attention``: the default recipe with the backbone's SDPA instead of ``train.attention=auto``'s
  eager attention on a CPU (what that lever adds on top).

The floor: the machine's bf16 matmul rate at the model's shapes, measured here, times the step's matmul work
(6 x non-embedding parameters per real token, plus the head over the SID codes at the labelled nodes), plus the
optimizer's memory traffic (fused AdamW reads parameter, gradient and two moments and writes three: 28 bytes per
trainable fp32 parameter) at the measured copy bandwidth. Every configuration's seconds per step are reported as a
multiple of that floor and of ``hf-bare``; the per-step losses of ``before`` and ``now`` are compared (same
batches, same order: they must agree within bf16 tolerance).

    .venv/bin/python benchmarks/bench_train.py runs/data/sci --warmup 3 --steps 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import load_recipe, machine_limits, train_step_floor, trainer_loop, write_result

from pauserec.report import markdown_table
from pauserec.artifacts import environment

BEFORE = ["train.vocab_rows=all", "train.cpu_allocator=system", "train.attention=backbone"]
CONFIGS = {
    "hf-bare": BEFORE,
    "before": BEFORE,
    "+allocator": ["train.vocab_rows=all", "train.cpu_allocator=reuse", "train.attention=backbone"],
    "now": [],  # + vocab rows + eager attention on a CPU: the default recipe
    "now, system allocator": ["train.cpu_allocator=system"],  # what the allocator adds on top of vocab rows
    "now, backbone attention": ["train.attention=backbone"],  # what eager attention (auto on a CPU) adds
}


def child(args) -> None:
    """One configuration: warm-up + timed steps; prints one JSON line (per-step seconds, losses, tokens)."""
    n = args.warmup + args.steps
    r = load_recipe(args.data, [f"train.max_steps={n}", f"train.eval_every={10**6}", "train.logging_steps=1",
                                *CONFIGS[args.child], *args.set])
    from pauserec.train.packing import tree_nll
    from pauserec.train.trainer import SeededSampler

    b = r.cfg.train.batch_size
    order = SeededSampler(len(r.units), r.cfg.seed).order(0)
    batches = [r.collate([r.units[j] for j in order[i * b:(i + 1) * b]]) for i in range(n)]
    tokens = [int(x["real_tokens"]) for x in batches]
    if args.child == "hf-bare":
        seconds, losses = bare_loop(r.model, batches, r.bf16, tree_nll)
    else:
        seconds, losses, _ = trainer_loop(r, n)
    print(json.dumps({"seconds": seconds, "losses": losses, "tokens": tokens,
                      "labelled": [int((x["labels"] != -100).sum()) for x in batches],
                      "trainable": sum(p.numel() for p in r.model.parameters() if p.requires_grad),
                      "non_embedding": sum(p.numel() for name, p in r.model.named_parameters() if "embed" not in name
                                           and "lm_head" not in name and "trained_rows" not in name),
                      "hidden": r.model.config.hidden_size, "intermediate": r.model.config.intermediate_size,
                      "codes": int(r.softmax.codes().numel())}))


def bare_loop(model, batches, bf16: bool, tree_nll) -> tuple[list[float], list[float]]:
    """Forward (full-vocabulary head at the labelled nodes), backward, fused AdamW, per batch."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7, fused=True)
    model.train()
    seconds, losses = [], []
    for batch in batches:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            nll, _, w = tree_nll(model, batch, None)
            loss = (nll * w).sum() / w.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return seconds, losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--set", action="append", default=[], help="config overrides for every configuration")
    ap.add_argument("--name", default="bench-train")
    ap.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    machine = environment()
    runs: dict[str, list[dict]] = {c: [] for c in args.configs}
    for _ in range(args.rounds):
        for c in args.configs:
            cmd = [sys.executable, __file__, str(Path(args.data).resolve()), "--child", c, "--warmup", str(args.warmup),
                   "--steps", str(args.steps), *sum([["--set", o] for o in args.set], [])]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
            if out.returncode:
                sys.exit(f"{c} failed:\n{out.stderr[-3000:]}")
            runs[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(c, f"{statistics.median(runs[c][-1]['seconds'][args.warmup:]):.3f} s/step", flush=True)
    first = next(iter(runs.values()))[0]
    limits = machine_limits(first["hidden"], first["intermediate"])
    report(args, runs, limits, machine)


def step_floor(run: dict, limits: dict, warmup: int) -> float:
    """Seconds per step at the machine's limit for the timed steps of ``run`` (mean over them)."""
    tokens = statistics.mean(run["tokens"][warmup:])
    labelled = statistics.mean(run["labelled"][warmup:])
    return train_step_floor(tokens, run["codes"] * labelled, run["non_embedding"], run["hidden"], run["trainable"], limits)


def report(args, runs: dict[str, list[dict]], limits: dict, machine: dict) -> None:
    w = args.warmup
    per_step = {c: statistics.median([s for r in rs for s in r["seconds"][w:]]) for c, rs in runs.items()}
    floors = {c: step_floor(rs[0], limits, w) for c, rs in runs.items()}
    bare = per_step.get("hf-bare")
    rows = []
    for c, s in per_step.items():
        tokens = statistics.mean(runs[c][0]["tokens"][w:])
        rows.append([c, f"{s:.3f}", f"{tokens / s:.0f}", f"{s / floors[c]:.2f}", f"{s / bare:.2f}" if bare else "-",
                     f"{per_step['before'] / s:.2f}" if "before" in per_step else "-"])
    md = markdown_table(["configuration", "s/step (median)", "real tokens/s", "x floor", "x hf-bare", "speed-up vs before"], rows)
    loss_gap = None
    if "before" in runs and "now" in runs:
        a, b = runs["before"][0]["losses"], runs["now"][0]["losses"]
        loss_gap = max(abs(x - y) / abs(x) for x, y in zip(a, b))
        md += f"\nPer-step losses, before vs now (same batches): largest relative difference {loss_gap:.2e} over " \
              f"{len(a)} steps; before {[round(x, 4) for x in a[:5]]}..., now {[round(x, 4) for x in b[:5]]}...\n"
    floor_s = next(iter(floors.values()))
    md += f"\nFloor per step: {floor_s:.3f} s (bf16 matmul at the model's shapes " \
          f"{limits['bf16_model_shapes_flops'] / 1e9:.0f} GFLOP/s, copy bandwidth " \
          f"{limits['copy_bytes_per_s'] / 1e9:.1f} GB/s; {statistics.mean(first_tokens(runs, w)):.0f} real tokens per " \
          f"step). Matmul rates (GFLOP/s): " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in limits["matmul_flops"].items()) \
          + f".\n\n{args.rounds} rounds x {args.steps} timed steps (after {w} warm-up) per configuration, alternating.\n"
    write_result(args.name, {"per_step_seconds": per_step, "floor_seconds": floors, "limits": limits,
                             "loss_max_relative_difference": loss_gap, "runs": runs,
                             "configs": {c: CONFIGS[c] for c in runs}}, md, machine)
    print(md)


def first_tokens(runs: dict, w: int) -> list[int]:
    return next(iter(runs.values()))[0]["tokens"][w:]


if __name__ == "__main__":
    main()
