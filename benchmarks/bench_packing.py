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

from common import load_recipe, step_times, write_result

from pauserec.report import markdown_table
from pauserec.train.batches import RightPadCollator, label_window_loss
from pauserec.train.packing import PrefixTreeCollator, UnitCollator, pack_sequences, tree_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--users", type=int, default=16, help="users (training units) per step")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per method (after one warm-up step)")
    ap.add_argument("--caps", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="bench-packing")
    args = ap.parse_args()
    recipe = load_recipe(args.data, args.set)
    model, softmax, units, bf16 = recipe.model, recipe.softmax, recipe.units, recipe.bf16
    rng = random.Random(0)
    steps = [[units[rng.randrange(len(units))] for _ in range(args.users)] for _ in range(args.steps + 1)]
    pad = recipe.tokenizer.pad_token_id

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
    times, _ = step_times(model, batches, lambda m, b: loss_fn(m, b, softmax)[0], bf16)
    timed_batches = batches[1:]
    tokens = sum(int(b["real_tokens"]) if "real_tokens" in b else int(b["attention_mask"].sum()) for b in timed_batches)
    positions = sum(b["input_ids"].numel() for b in timed_batches)
    n = len(timed_batches)
    return {"seconds": sum(times[1:]), "tokens_per_step": tokens / n, "positions_per_step": positions / n,
            "shape": str(tuple(batches[-1]["input_ids"].shape))}


if __name__ == "__main__":
    main()
