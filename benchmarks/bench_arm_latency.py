"""Inference latency of trained arms on the same users, measured side by side in one process.

Each run directory's selected model decodes the same validation users with its own arm's prefix (pauses included,
and for ``cot`` the rationale it generates first);
the arms are timed in alternating rounds so that machine noise hits them alike. Reports seconds per user and each
arm's ratio to the first one.

    .venv/bin/python benchmarks/bench_arm_latency.py runs/grid-scientific/direct runs/grid-scientific/pause-k4 \
        --users 200 --rounds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import write_result

from pauserec.arms import make_arm
from pauserec.artifacts import environment, load_trained
from pauserec.data.split import leave_one_out
from pauserec.eval.evaluate import select_users
from pauserec.recommend import recommend
from pauserec.model.vocab import token_ids_by_level
from pauserec.prompt import PromptBuilder
from pauserec.report import markdown_table


def load_arm(run_dir: Path):
    trained = load_trained(run_dir)  # every check eval and serve make
    cfg, dataset, catalog, tok = trained.cfg, trained.data.dataset(), trained.data.catalog(), trained.tokenizer
    model = trained.model.eval()
    arm = make_arm(cfg).bind(tok)
    prompts = PromptBuilder(tok, catalog, dataset, cfg.model.system_prompt, cfg.arm.show_titles)
    return cfg, dataset, catalog, model, tok, arm, prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="bench-arm-latency")
    args = ap.parse_args()
    machine = environment()

    arms = {str(r): load_arm(r) for r in args.runs}
    first = next(iter(arms.values()))
    cfg, dataset = first[0], first[1]
    examples = select_users(leave_one_out(dataset, cfg.split).valid, args.users, cfg.seed)
    seconds = {k: [] for k in arms}
    tokens = {}
    for rnd in range(args.rounds + 1):  # round 0 warms up
        for key, (cfg_a, _, catalog, model, tok, arm, prompts) in arms.items():
            t0 = time.perf_counter()
            with torch.inference_mode():
                recs = recommend(model, prompts, arm, catalog, token_ids_by_level(tok, catalog), examples,
                                 cfg_a.decode, tok.pad_token_id)
            if rnd:
                seconds[key].append(time.perf_counter() - t0)
            tokens[key] = (recs.prefill_tokens / len(examples), recs.think_tokens / len(examples))
    base = min(seconds[next(iter(arms))])
    rows, payload = [], {}
    for key in arms:
        best = min(seconds[key])
        name = Path(key).name
        payload[name] = {"seconds_per_round": seconds[key], "best_s_per_user": best / len(examples),
                         "ratio_to_first": best / base, "prefill_tokens_per_user": tokens[key][0],
                         "think_tokens_per_user": tokens[key][1]}
        rows.append([name, f"{1000 * best / len(examples):.1f}", f"{best / base:.3f}", f"{tokens[key][0]:.1f}",
                     f"{tokens[key][1]:.1f}"])
    md = markdown_table(["arm", "ms/user (best of rounds)", "ratio to first", "prefill tokens/user",
                         "generated rationale tokens/user"], rows)
    md += f"\n{len(examples)} validation users, beams {cfg.decode.num_beams}, batch {cfg.decode.batch_size}, {args.rounds} rounds.\n"
    write_result(args.name, {"runs": [str(r) for r in args.runs], "users": len(examples), "arms": payload}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
