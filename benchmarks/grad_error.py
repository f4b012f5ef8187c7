"""How far each bf16 training configuration's gradient is from an fp32 reference, on the same real batches.

For each of the first ``--batches`` default-recipe batches (the real training order, prefix-tree packed), the loss and
the gradient of every trainable parameter are computed once in fp32 (no autocast, SDPA: the reference) and then
under each configuration below, from the same weights; reported: the relative L2 error of the whole gradient vector
``|g - g_fp32| / |g_fp32|`` and the loss difference. It decides whether an attention kernel or a precision lever is
"exact within bf16 tolerance": a lever whose error is the size of bf16 autocast's own (SDPA) adds no error beyond what
bf16 training already has.

* ``bf16 autocast, sdpa``: the backbone's attention (torch's CPU flash kernel: fp32 scores inside);
* ``bf16 autocast, eager``: matmul, add the tree mask, softmax in fp32 (``train.attention=eager``; scores rounded to
  bf16 before the softmax);
* ``bf16 weights, eager``: the model's weights in bf16 (no autocast; what fp32 master weights would train).

    .venv/bin/python benchmarks/grad_error.py runs/data/sci --batches 4
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch
from common import load_recipe, write_result

from pauserec.artifacts import environment
from pauserec.report import markdown_table
from pauserec.train.packing import attention_implementation, tree_nll
from pauserec.train.trainer import SeededSampler

CONFIGS = {  # name: (autocast, attention, weights in bf16)
    "bf16 autocast, sdpa": (True, "sdpa", False),
    "bf16 autocast, eager": (True, "eager", False),
    "bf16 weights, eager": (False, "eager", True),
}


def loss_and_grad(model, batch, softmax, autocast: bool, attention: str) -> tuple[float, torch.Tensor]:
    """The batch's mean SID loss and the flattened fp32 gradient of every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), attention_implementation(model, attention):
        nll, _, w = tree_nll(model, batch, softmax)
        loss = (nll.float() * w).sum() / w.sum()
    loss.backward()
    return loss.item(), torch.cat([p.grad.float().flatten() for p in params])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="prepared data directory (dataset.json + sids.json)")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="config overrides")
    ap.add_argument("--name", default="grad-error")
    args = ap.parse_args()
    machine = environment()
    # the whole vocabulary matrix trains here, so every configuration's gradient has the same parameters
    r = load_recipe(args.data, ["train.vocab_rows=all", *args.set])
    b = r.cfg.train.batch_size
    order = SeededSampler(len(r.units), r.cfg.seed).order(0)
    batches = [r.collate([r.units[j] for j in order[i * b:(i + 1) * b]]) for i in range(args.batches)]
    models = {"fp32": r.model.train()}
    for name, (_, _, bf16_weights) in CONFIGS.items():
        if bf16_weights:
            models[name] = copy.deepcopy(r.model).to(torch.bfloat16).train()
    per: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    for batch in batches:
        ref_loss, ref = loss_and_grad(models["fp32"], batch, r.softmax, False, "sdpa")
        for name, (autocast, attention, bf16_weights) in CONFIGS.items():
            model = models[name] if bf16_weights else models["fp32"]
            loss, grad = loss_and_grad(model, batch, r.softmax, autocast, attention)
            per[name].append((((grad - ref).norm() / ref.norm()).item(), loss - ref_loss))
    rows = [[name, f"{statistics.mean(e for e, _ in v):.4f}", f"{max(e for e, _ in v):.4f}",
             f"{statistics.mean(abs(d) for _, d in v):.5f}"] for name, v in per.items()]
    md = markdown_table(["configuration", "gradient rel. error (mean)", "(max)", "|loss - fp32 loss| (mean)"], rows)
    md += f"\nReference: fp32 weights, no autocast, SDPA; {args.batches} default-recipe batches of {b} users " \
          f"(first steps of the training order), the same weights for every configuration.\n"
    write_result(args.name, {"config": r.cfg.model_dump(mode="json"),
                             "per_batch": {k: [{"grad_rel_error": e, "loss_diff": d} for e, d in v]
                                           for k, v in per.items()}}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
