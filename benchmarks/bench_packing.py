"""Prefix-tree packing vs one example per row, side by side in one run on the same model and the same examples.

Each step takes ``--users`` random users with all their sliding-window examples (up to ``max_user_examples``):

* ``padded``        one example per row, right-padded, length-sorted (``train.packing=none``);
* ``tree-N``        the same examples as prefix trees in rows of at most N tokens (``train.packing=prefix_tree``),
                    the rows balanced (as the trainer packs);
* ``tree-N-greedy`` the same, rows filled greedily (full rows, then a short last one padded to their width).

Reports training examples per second (forward + backward + AdamW step, bf16 autocast where supported), tokens
computed per step and the speed-up over ``padded``. The losses are equal (``tests/test_packing.py``); only the cost
differs.

    .venv/bin/python benchmarks/bench_packing.py runs/foundation/scientific --users 16 --steps 4
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from common import write_result

from pauserec import pipeline
from pauserec.arms import make_arm
from pauserec.config import build_config
from pauserec.model.backbone import load_backbone
from pauserec.model.vocab import extend_vocabulary, token_ids_by_level
from pauserec.prompt import PromptBuilder
from pauserec.report import markdown_table
from pauserec.train.batches import LevelSoftmax, RightPadCollator, label_window_loss
from pauserec.train.packing import PrefixTreeCollator, UnitCollator, pack_sequences, tree_loss
from pauserec.precision import bf16_enabled
from pauserec.train.run import training_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--users", type=int, default=16, help="users (training units) per step")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per method (after one warm-up step)")
    ap.add_argument("--caps", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="bench-packing")
    args = ap.parse_args()
    cfg = build_config(overrides=args.set)
    dataset = pipeline.load_dataset(args.data)
    catalog = pipeline.load_catalog(args.data, dataset)
    split = pipeline.load_split(dataset, cfg)
    model, tokenizer = load_backbone(cfg.model.backbone, cfg.cache_dir)
    arm = make_arm(cfg.arm)
    extend_vocabulary(model, tokenizer, catalog.all_tokens() + arm.new_tokens(), noise_std=cfg.model.new_row_noise, seed=0)
    arm.bind(tokenizer)
    softmax = LevelSoftmax(token_ids_by_level(tokenizer, catalog), len(tokenizer))
    prompts = PromptBuilder(tokenizer, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    units, _ = training_data(cfg, split.train, prompts, arm, tokenizer.pad_token_id)
    rng = random.Random(0)
    steps = [[units[rng.randrange(len(units))] for _ in range(args.users)] for _ in range(args.steps + 1)]
    bf16 = bf16_enabled(cfg.train.bf16)
    pad = tokenizer.pad_token_id

    def padded(step):
        rows = sorted((r for u in step for r in u), key=lambda r: len(r["input_ids"]))
        return RightPadCollator(pad)(rows)

    methods = {"padded": (padded, label_window_loss)}
    for cap in args.caps:
        methods[f"tree-{cap}-greedy"] = (
            lambda step, c=cap: UnitCollator(PrefixTreeCollator(pad, c, pack_sequences))(step), tree_loss)
        methods[f"tree-{cap}"] = (lambda step, c=cap: UnitCollator(PrefixTreeCollator(pad, c))(step), tree_loss)
    results = {name: timed(model, [collate(s) for s in steps], loss_fn, softmax, bf16)
               for name, (collate, loss_fn) in methods.items()}
    n_examples = sum(len(u) for s in steps[1:] for u in s)
    for r in results.values():
        r["examples_per_second"] = n_examples / r["seconds"]
    base = results["padded"]["examples_per_second"]
    table = [[name, f"{r['examples_per_second']:.1f}", f"{r['examples_per_second'] / base:.2f}x",
              f"{r['tokens_per_step']:.0f}", f"{r['positions_per_step']:.0f}", r["shape"]] for name, r in results.items()]
    md = markdown_table(["method", "examples/s", "vs padded", "tokens computed/step", "positions incl. padding/step",
                         "last batch shape"], table)
    md += f"\n{args.users} users per step ({n_examples / args.steps:.1f} examples per step on average), {args.steps} " \
          f"timed steps per method after one warm-up, bf16 autocast {bf16}.\n"
    write_result(args.name, {"data": args.data, "users_per_step": args.users, "steps": args.steps,
                             "examples_timed": n_examples, "methods": results}, md)
    print(md)


def timed(model, batches, loss_fn, softmax, bf16: bool) -> dict:
    """Forward + backward + AdamW step per batch; the first is a warm-up and is not timed."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    model.train()
    seconds, tokens, positions = 0.0, 0, 0
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = loss_fn(model, batch, softmax)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            seconds += time.perf_counter() - t0
            tokens += int(batch["real_tokens"]) if "real_tokens" in batch else int(batch["attention_mask"].sum())
            positions += batch["input_ids"].numel()
    n = len(batches) - 1
    return {"seconds": seconds, "tokens_per_step": tokens / n, "positions_per_step": positions / n,
            "shape": str(tuple(batches[-1]["input_ids"].shape))}


if __name__ == "__main__":
    main()
