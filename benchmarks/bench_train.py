"""Training-loop benchmark, side by side in one run on the same model and examples:

* ``naive``   random batches, padded to the longest, LM head over every position (``model(labels=...)``);
* ``bare``    a hand-written loop over the *same* length-grouped batches and loss as ours (forward, backward, AdamW);
* ``ours``    the Hugging Face Trainer path pauserec trains with (``SFTTrainer``), on those batches.

Reports real (non-padding) tokens/s, padding fraction, the Trainer's overhead vs the bare loop, and peak memory.

    .venv/bin/python benchmarks/bench_train.py --data runs/foundation/scientific --steps 12
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import step_times, write_result
from transformers.trainer_pt_utils import LengthGroupedSampler

from pauserec import pipeline
from pauserec.arms import make_arm
from pauserec.config import build_config
from pauserec.eval.cost import peak_memory_bytes
from pauserec.model.backbone import load_backbone
from pauserec.model.vocab import extend_vocabulary, token_ids_by_level
from pauserec.prompt import PromptBuilder
from pauserec.report import markdown_table
from pauserec.train.batches import RightPadCollator, SFTDataset, label_window_loss, sid_softmax
from pauserec.precision import bf16_enabled
from pauserec.train.run import training_arguments
from pauserec.train.trainer import SFTTrainer


def timed_loop(model, batches, loss_fn, bf16: bool) -> dict[str, float]:
    """Forward + backward + AdamW step per batch; the first batch is a warm-up and is not timed."""
    times, _ = step_times(model, batches, loss_fn, bf16)
    seconds = sum(times[1:])
    real = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    padded = sum(b["attention_mask"].numel() for b in batches[1:])
    return {"seconds": seconds, "steps": len(batches) - 1, "real_tokens": real, "padded_tokens": padded,
            "real_tokens_per_s": real / seconds, "padding_fraction": 1 - real / padded,
            "s_per_step": seconds / (len(batches) - 1)}


def full_head_loss(model, batch):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def memory_probe(cfg, batch_size: int, length: int, bf16: bool) -> None:
    """One full fine-tuning step (forward, backward, AdamW) on a ``batch_size x length`` batch; prints peak bytes."""
    model, tok = load_backbone(cfg.model.backbone, cfg.cache_dir)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    timed_loop(model, [batch, batch], full_head_loss, bf16)
    print(peak_memory_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="data directory with sids.json (required)")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--name", default="bench-train")
    ap.add_argument("--memory-probe", type=int, nargs=2, metavar=("BATCH", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        cfg = build_config(overrides=args.set)
        return memory_probe(cfg, *args.memory_probe, bf16_enabled(cfg.train.bf16))
    if not args.data:
        ap.error("--data is required")

    cfg = build_config(overrides=["train.packing=none", f"train.batch_size={args.batch_size}", f"train.max_steps={args.steps + 1}",
                                  f"train.eval_every={10**6}", *args.set])
    dataset = pipeline.load_dataset(args.data)
    catalog = pipeline.load_catalog(args.data, dataset)
    split = pipeline.load_split(dataset, cfg)
    model, tok = load_backbone(cfg.model.backbone, cfg.cache_dir)
    arm = make_arm(cfg.arm)
    extend_vocabulary(model, tok, catalog.all_tokens() + arm.new_tokens(), noise_std=cfg.model.new_row_noise)
    arm.bind(tok)
    prompts = PromptBuilder(tok, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    n = (args.steps + 1) * args.batch_size
    g = torch.Generator().manual_seed(0)
    pool = [split.train[i] for i in torch.randperm(len(split.train), generator=g)[: 50 * n].tolist()]
    data = SFTDataset(pool, prompts, arm)
    collate = RightPadCollator(tok.pad_token_id)
    bf16 = bf16_enabled(cfg.train.bf16)

    # the same length-grouped order the Trainer uses
    order = list(LengthGroupedSampler(args.batch_size, dataset=data, generator=torch.Generator().manual_seed(cfg.seed)))
    grouped = [collate([data[j] for j in order[i : i + args.batch_size]]) for i in range(0, n, args.batch_size)]
    naive = [collate([data[j] for j in range(i, i + args.batch_size)]) for i in range(0, n, args.batch_size)]

    results = {}
    init = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    results["naive"] = timed_loop(model, naive, full_head_loss, bf16)
    model.load_state_dict(init)
    softmax = sid_softmax(cfg.train.loss, token_ids_by_level(tok, catalog), len(tok), catalog.trie)
    results["bare"] = timed_loop(model, grouped, lambda m, b: label_window_loss(m, b, softmax)[0], bf16)
    model.load_state_dict(init)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = SFTTrainer(model=model, args=training_arguments(cfg, Path(tmp)), train_dataset=data,
                             eval_dataset=[0], data_collator=collate, validate=lambda m: {"recall@10": 0.0, "ndcg@10": 0.0},
                             softmax=softmax)
        trainer.args.save_strategy = "no"
        trainer.args.load_best_model_at_end = False
        trainer.args.disable_tqdm = True
        marks = []

        from transformers import TrainerCallback

        class Mark(TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                marks.append((time.perf_counter(), trainer.real_tokens, trainer.padded_tokens))

        trainer.add_callback(Mark())
        trainer.train()
    (t1, r1, p1), (t2, r2, p2) = marks[0], marks[-1]
    results["ours"] = {"seconds": t2 - t1, "steps": len(marks) - 1, "real_tokens": r2 - r1, "padded_tokens": p2 - p1,
                       "real_tokens_per_s": (r2 - r1) / (t2 - t1), "padding_fraction": 1 - (r2 - r1) / (p2 - p1),
                       "s_per_step": (t2 - t1) / (len(marks) - 1)}
    probe = subprocess.run([sys.executable, __file__, "--memory-probe", "8", "128", *sum([["--set", o] for o in args.set], [])],
                           capture_output=True, text=True, check=True)
    overhead = results["bare"]["real_tokens_per_s"] / results["ours"]["real_tokens_per_s"] - 1
    summary = {"trainer_overhead_vs_bare": overhead,
               "speedup_vs_naive": results["ours"]["real_tokens_per_s"] / results["naive"]["real_tokens_per_s"],
               "peak_memory_gb": peak_memory_bytes() / 1e9,
               "peak_memory_gb_full_step_8x128": int(probe.stdout.strip().splitlines()[-1]) / 1e9, "bf16": bf16, "batch_size": args.batch_size,
               "mean_tokens_per_example": data.n_tokens() / len(data)}
    header = ["loop", "s/step", "real tokens/s", "padding"]
    rows = [[k, f"{v['s_per_step']:.2f}", f"{v['real_tokens_per_s']:.0f}", f"{v['padding_fraction']:.1%}"]
            for k, v in results.items()]
    md = markdown_table(header, rows) + "\n" + markdown_table(list(summary), [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in summary.values()]])
    write_result(args.name, {"config": cfg.model_dump(mode="json"), "loops": results, "summary": summary}, md)
    print(md)


if __name__ == "__main__":
    main()
