"""Decoder benchmark: our trie-constrained beam search vs Hugging Face ``generate`` + ``prefix_allowed_tokens_fn``,
against the physical floor (one bare prefill of the same prompts), measured side by side in one run.

Examples::

    # smoke test, seconds
    python benchmarks/bench_decode.py --tiny --users 8 --out /tmp/bench_decode.json
    # the real thing: an HF checkpoint whose tokenizer already contains the SID tokens
    python benchmarks/bench_decode.py --model runs/x/checkpoint --catalog cache/.../sids.json \\
        --users 64 --beams 10 --batch-sizes 1 16 --out benchmarks/results/decode_smollm2.json

    # the bf16 floor: a trained run's real test prompts at batch 1, fp32 and bf16 interleaved user by user
    python benchmarks/bench_decode.py --run runs/ttq/packed --dtype-compare --users 100 --beams 10 \
        --out benchmarks/results/bench-decode-bf16.json

Prompts are ~``--prompt-len`` tokens made of random SID histories (a few fixed text tokens + SIDs of random items).
Every method decodes the same prompts in the same length-grouped, left-padded batches; each is warmed up once
before timing. Parity: our top-K vs HF's top-K per user, as sets (exact) and up to ties at the cut-off.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pauserec.decode import BeamResult, batched_beam_search, left_pad
from pauserec.decode.reference import hf_beam_search
from pauserec.io import write_json
from pauserec.sid.catalog import SIDCatalog, build_trie, sid_token

TIE_TOL = 1e-3


# ------------------------------------------------------------------------------------------------------------------
# model, catalogue, prompts


def synthetic_codes(n_items: int, level_sizes: list[int], seed: int) -> np.ndarray:
    """``n_items`` distinct random SIDs."""
    rng = np.random.default_rng(seed)
    total = int(np.prod(level_sizes))
    if n_items > total:
        raise SystemExit(f"--items {n_items} exceeds the {total} possible SIDs")
    flat = rng.choice(total, size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, level_sizes), axis=1).astype(np.int64)


def tiny_model(level_sizes: list[int], seed: int) -> tuple[Any, list[list[int]], list[int], int]:
    """A tiny random Llama whose vocabulary ends with the SID tokens. Returns model, level ids, text ids, pad id."""
    from transformers import LlamaConfig, LlamaForCausalLM

    n_text = 200
    vocab = n_text + sum(level_sizes)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1, pad_token_id=0, bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg)
    level_ids, start = [], n_text
    for size in level_sizes:
        level_ids.append(list(range(start, start + size)))
        start += size
    return model, level_ids, list(range(3, n_text)), 0


def hf_model(path: str, catalog_levels: list[int], dtype: str) -> tuple[Any, list[list[int]], list[int], int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    level_ids = []
    for d, size in enumerate(catalog_levels):
        names = [sid_token(d, c) for c in range(size)]
        ids = tok.convert_tokens_to_ids(names)
        missing = [n for n, i in zip(names, ids, strict=True) if i is None or i == tok.unk_token_id]
        if missing:
            raise SystemExit(f"{path}: the tokenizer lacks {len(missing)} SID tokens (e.g. {missing[:3]})")
        level_ids.append(list(ids))
    text_ids = tok("The user bought these items in order:", add_special_tokens=False)["input_ids"]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return model, level_ids, text_ids, int(pad)


def real_prompts(model_path: str, data_dir: str, n_users: int, seed: int) -> list[list[int]]:
    """The chat-template prompts pauserec decodes for a fixed random subset of validation users."""
    from transformers import AutoTokenizer

    from pauserec.artifacts import DataDir
    from pauserec.config import RunConfig
    from pauserec.eval.evaluate import select_users
    from pauserec.prompt import PromptBuilder

    cfg = RunConfig()
    data = DataDir(data_dir)
    dataset, catalog = data.dataset(), data.catalog()
    builder = PromptBuilder(AutoTokenizer.from_pretrained(model_path), catalog, dataset, cfg.model.system_prompt, False)
    examples = select_users(data.split(cfg).valid, n_users, seed)
    return [builder.ids(e.history) for e in examples]


def make_prompts(n_users: int, codes: np.ndarray, level_ids: list[list[int]], text_ids: list[int], prompt_len: int,
                 seed: int) -> list[list[int]]:
    """Random SID histories of about ``prompt_len`` tokens (history length varies by +-2 items)."""
    rng = np.random.default_rng(seed)
    n_levels = codes.shape[1]
    head = list(text_ids[:4])
    base_hist = max(1, (prompt_len - len(head)) // n_levels)
    prompts = []
    for _ in range(n_users):
        n_hist = max(1, base_hist + int(rng.integers(-2, 3)))
        items = rng.integers(0, len(codes), size=n_hist)
        sid = [level_ids[d][int(codes[i, d])] for i in items for d in range(n_levels)]
        prompts.append(head + sid)
    return prompts


# ------------------------------------------------------------------------------------------------------------------
# the three methods, on identical batches


def batches(prompts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Length-grouped batches of prompt indices (longest first), the grouping ``batched_beam_search`` uses."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def run_ours(model, prompts, trie, level_ids, beams, bs, pad) -> BeamResult:
    return batched_beam_search(model, prompts, trie, level_ids, num_beams=beams, batch_size=bs, pad_token_id=pad)


def run_hf(model, prompts, trie, level_ids, beams, bs, pad) -> BeamResult:
    out = BeamResult(items=[[] for _ in prompts], scores=[[] for _ in prompts])
    for idx in batches(prompts, bs):
        ids, mask = left_pad([prompts[i] for i in idx], pad)
        res = hf_beam_search(model, ids, mask, trie, level_ids, num_beams=beams, pad_token_id=pad)
        for j, i in enumerate(idx):
            out.items[i], out.scores[i] = res.items[j], res.scores[j]
        out.prefill_tokens += res.prefill_tokens
        out.prefill_padded_tokens += res.prefill_padded_tokens
        out.decode_tokens += res.decode_tokens
        out.steps += res.steps
    return out


def run_prefill(model, prompts, bs, pad) -> BeamResult:
    """The floor: one forward over each prompt batch, filling a KV cache, nothing else."""
    from transformers import DynamicCache

    out = BeamResult()
    body = model.base_model
    with torch.inference_mode():
        for idx in batches(prompts, bs):
            ids, mask = left_pad([prompts[i] for i in idx], pad)
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            body(input_ids=ids, attention_mask=mask, position_ids=pos, cache=DynamicCache(config=model.config),
                 use_cache=True)
            out.prefill_tokens += int(mask.sum())
            out.prefill_padded_tokens += ids.numel()
    return out


def timed(fn, *args) -> tuple[float, Any]:
    t0 = time.perf_counter()
    res = fn(*args)
    return time.perf_counter() - t0, res


def parity(a: BeamResult, b: BeamResult) -> dict[str, float]:
    """Share of users whose top-K item sets agree exactly, and up to ties at the cut-off (and score agreement)."""
    exact = ties = 0
    max_diff = 0.0
    for ia, sa, ib, sb in zip(a.items, a.scores, b.items, b.scores, strict=True):
        if set(ia) == set(ib):
            exact += 1
            ties += 1
        elif len(ia) == len(ib) and np.allclose(sorted(sa), sorted(sb), atol=TIE_TOL, rtol=0):
            ties += 1  # different items with the same scores: a tie at the cut-off
        common = set(ia) & set(ib)
        da, db = dict(zip(ia, sa, strict=True)), dict(zip(ib, sb, strict=True))
        if common:
            max_diff = max(max_diff, max(abs(da[i] - db[i]) for i in common))
    n = max(len(a.items), 1)
    return {"exact_set_rate": exact / n, "up_to_ties_rate": ties / n, "max_score_diff_common_items": max_diff}


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=False)
    src.add_argument("--model", help="HF checkpoint directory whose tokenizer contains the SID tokens")
    src.add_argument("--tiny", action="store_true", help="a tiny random Llama (smoke test)")
    ap.add_argument("--catalog", help="an SIDCatalog JSON (SIDCatalog.load); default: a synthetic catalogue")
    ap.add_argument("--items", type=int, default=2000, help="synthetic catalogue: number of items")
    ap.add_argument("--level-sizes", type=int, nargs="+", default=[32, 32, 32],
                    help="synthetic catalogue: codes per level")
    ap.add_argument("--data", help="a data directory: decode its real validation prompts (needs --model and the "
                    "directory's own catalogue) instead of synthetic ones")
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--beams", type=int, default=10)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--prompt-len", type=int, default=53, help="approximate prompt length in tokens")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--skip-hf", action="store_true", help="do not run the HF generate baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/bench_decode.json")
    ap.add_argument("--run", help="a trained run directory: with --dtype-compare, decode its real test prompts")
    ap.add_argument("--dtype-compare", action="store_true",
                    help="with --run: fp32 vs bf16 at batch 1 (interleaved per user), with the bare-prefill floor of "
                    "each, top-K agreement and the paired Recall@K difference")
    ap.add_argument("--recall-users", type=int, default=500,
                    help="--dtype-compare: test users decoded (batch 16) in both dtypes for the paired Recall@K")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dtype_compare:
        if not args.run:
            raise SystemExit("--dtype-compare needs --run RUN")
        return dtype_comparison(args, argv)
    if not (args.model or args.tiny):
        ap.error("one of --model, --tiny (or --run with --dtype-compare) is required")
    if args.catalog:
        cat = SIDCatalog.load(args.catalog)
        codes, level_sizes = cat.codes, list(cat.level_sizes)
        cat_desc = {"path": args.catalog, "hash": cat.content_hash()}
    else:
        level_sizes = list(args.level_sizes)
        codes = synthetic_codes(args.items, level_sizes, args.seed)
        cat_desc = {"synthetic": True, "seed": args.seed}
    cat_desc.update(n_items=int(len(codes)), level_sizes=level_sizes)
    trie = build_trie(codes, level_sizes)

    if args.tiny:
        model, level_ids, text_ids, pad = tiny_model(level_sizes, args.seed)
        model_desc = "tiny-random-llama"
    else:
        model, level_ids, text_ids, pad = hf_model(args.model, level_sizes, args.dtype)
        model_desc = args.model
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    if args.data:
        prompts = real_prompts(args.model, args.data, args.users, args.seed)
    else:
        prompts = make_prompts(args.users, codes, level_ids, text_ids, args.prompt_len, args.seed + 1)
    n_users = len(prompts)
    lens = [len(p) for p in prompts]
    print(f"model {model_desc} ({n_params / 1e6:.1f}M params), {len(codes)} items, levels {level_sizes}, "
          f"{n_users} users, prompt length {min(lens)}-{max(lens)} (mean {np.mean(lens):.1f}), beams {args.beams}, "
          f"torch threads {torch.get_num_threads()}", flush=True)

    methods = {
        "prefill": lambda bs: run_prefill(model, prompts, bs, pad),
        "ours": lambda bs: run_ours(model, prompts, trie, level_ids, args.beams, bs, pad),
    }
    if not args.skip_hf:
        methods["hf"] = lambda bs: run_hf(model, prompts, trie, level_ids, args.beams, bs, pad)

    # warm-up once (each method, each batch size, on one batch's worth of users)
    warm = prompts[: max(args.batch_sizes)]
    for bs in args.batch_sizes:
        run_prefill(model, warm, bs, pad)
        run_ours(model, warm, trie, level_ids, args.beams, bs, pad)
        if not args.skip_hf:
            run_hf(model, warm, trie, level_ids, args.beams, bs, pad)

    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, int], BeamResult] = {}
    for bs in args.batch_sizes:
        for name, fn in methods.items():
            seconds, res = timed(fn, bs)
            results[name, bs] = res
            rows.append({
                "method": name, "batch_size": bs, "seconds": seconds, "per_user_s": seconds / n_users,
                "users_per_s": n_users / seconds, **res.cost(),
            })
            print(f"  {name:8s} batch {bs:3d}: {seconds:8.3f} s  ({seconds / n_users * 1e3:8.2f} ms/user)", flush=True)

    by = {(r["method"], r["batch_size"]): r for r in rows}
    for r in rows:
        bs = r["batch_size"]
        r["x_bare_prefill"] = r["seconds"] / by["prefill", bs]["seconds"]
        if ("hf", bs) in by:
            r["hf_over_this"] = by["hf", bs]["seconds"] / r["seconds"]

    agreement: dict[str, Any] = {}
    for bs in args.batch_sizes:
        if ("hf", bs) in results:
            agreement[f"ours_vs_hf@{bs}"] = parity(results["ours", bs], results["hf", bs])
    if len(args.batch_sizes) > 1:
        b0 = args.batch_sizes[0]
        for bs in args.batch_sizes[1:]:
            agreement[f"ours@{b0}_vs_ours@{bs}"] = parity(results["ours", b0], results["ours", bs])

    print()
    header = f"{'method':8s} {'batch':>5s} {'s/user':>10s} {'users/s':>9s} {'x prefill':>10s} {'HF/this':>8s} " \
             f"{'prefill tok':>11s} {'decode tok':>10s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        hf_ratio = f"{r['hf_over_this']:8.2f}" if "hf_over_this" in r else f"{'-':>8s}"
        print(f"{r['method']:8s} {r['batch_size']:5d} {r['per_user_s']:10.4f} {r['users_per_s']:9.2f} "
              f"{r['x_bare_prefill']:10.2f} {hf_ratio} {r['prefill_tokens']:11d} {r['decode_tokens']:10d}")
    print()
    for k, v in agreement.items():
        print(f"parity {k}: exact sets {v['exact_set_rate']:.3f}, up to ties {v['up_to_ties_rate']:.3f}, "
              f"max score diff {v['max_score_diff_common_items']:.2e}")

    import transformers

    report = {
        "benchmark": "decode",
        "command": list(sys.argv) if argv is None else ["benchmarks/bench_decode.py", *argv],
        "python": sys.executable,
        "git_revision": git_revision(),
        "config": vars(args),
        "model": {"name": model_desc, "params": n_params, "dtype": str(next(model.parameters()).dtype)},
        "catalog": cat_desc,
        "prompts": {"users": n_users, "min_len": min(lens), "max_len": max(lens), "mean_len": float(np.mean(lens))},
        "rows": rows,
        "parity": agreement,
        "environment": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    }
    write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return report



# ------------------------------------------------------------------------------------------------------------------
# the bf16 floor: the same trained model and decoder, weights and activations in bf16


def _load_run_pair(run_dir: str, beams: int):
    """The run loaded as the service loads it (fp32), a bf16 copy of its model, and the run's test examples."""
    import copy

    from pauserec.artifacts import RunDir
    from pauserec.serve.service import load_recommender

    rec = load_recommender(run_dir, dtype="float32", beams=beams)
    bf16 = copy.deepcopy(rec.model).to(torch.bfloat16).eval()
    test = RunDir(run_dir).data().split(rec.cfg).test
    return rec, {"float32": rec.model, "bfloat16": bf16}, test


def _decode(rec, model, examples) -> Any:
    from pauserec.recommend import recommend

    with torch.inference_mode():
        return recommend(model, rec.prompts, rec.arm(rec.default_pauses), rec.catalog, rec.level_ids, examples,
                         rec.decode_cfg.model_copy(update={"batch_size": 16}), rec.tokenizer.pad_token_id)


def _interleaved_batch1(rec, models: dict[str, Any], examples) -> dict[str, dict[str, list]]:
    """Per user: decode and bare-prefill in each dtype at batch 1, the dtype order alternating user by user
    (so background load on a shared machine hits both alike)."""
    from pauserec.data.split import Example

    arm = rec.arm(rec.default_pauses)
    pad = rec.tokenizer.pad_token_id
    out = {d: {"decode_s": [], "prefill_s": [], "items": []} for d in models}
    names = list(models)
    for u, ex in enumerate(examples):
        one = [Example(user=ex.user, history=ex.history, target=ex.target)]
        prompt = [arm.inference_prefix(rec.prompts.ids(ex.history))]
        for d in (names if u % 2 == 0 else names[::-1]):
            t_dec, res = timed(_decode, rec, models[d], one)
            t_pre, _ = timed(run_prefill, models[d], prompt, 1, pad)
            out[d]["decode_s"].append(t_dec)
            out[d]["prefill_s"].append(t_pre)
            out[d]["items"].append(res.items[0])
    return out


def _recall(items: list[list[int]], targets: list[int], k: int) -> np.ndarray:
    return np.array([float(t in row[:k]) for row, t in zip(items, targets, strict=True)])


def _same_sets(a: list[list[int]], b: list[list[int]], k: int) -> float:
    return float(np.mean([set(x[:k]) == set(y[:k]) for x, y in zip(a, b, strict=True)])) if a else float("nan")


def _overlap(a: list[list[int]], b: list[list[int]], k: int) -> float:
    """Mean share of the top-K that two rankings of the same users have in common."""
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b, strict=True)])) if a else float("nan")


def dtype_comparison(args, argv: list[str] | None) -> dict[str, Any]:
    """fp32 vs bf16 on a trained run: batch-1 latency (decoder and bare-prefill floor, interleaved), the share of
    users with the same top-K set, and the paired Recall@K difference on ``--recall-users`` test users."""
    from pauserec.eval.compare import paired_difference
    from pauserec.eval.evaluate import select_users
    from pauserec.artifacts import environment

    k = args.beams
    rec, models, test = _load_run_pair(args.run, args.beams)
    lat_users = select_users(test, args.users, args.seed)
    recall_users = select_users(test, args.recall_users, args.seed + 1)
    print(f"run {args.run} ({rec.cfg.arm.name}), beam {k}, {len(lat_users)} latency users, {len(recall_users)} "
          f"recall users, torch threads {torch.get_num_threads()}", flush=True)
    for d in models:  # warm-up: one batch-1 decode and prefill per dtype
        _interleaved_batch1(rec, {d: models[d]}, lat_users[:2])
    t0 = time.perf_counter()
    lat = _interleaved_batch1(rec, models, lat_users)
    print(f"  batch-1 latency pass: {time.perf_counter() - t0:.0f} s", flush=True)

    rows, ranked = [], {}
    for d, m in lat.items():
        dec, pre = np.array(m["decode_s"]), np.array(m["prefill_s"])
        rows.append({"method": "ours", "dtype": d, "batch_size": 1, "users": len(dec), "per_user_s": float(dec.mean()),
                     "median_s": float(np.median(dec)), "p90_s": float(np.quantile(dec, 0.9))})
        rows.append({"method": "prefill", "dtype": d, "batch_size": 1, "users": len(pre),
                     "per_user_s": float(pre.mean()), "median_s": float(np.median(pre)),
                     "p90_s": float(np.quantile(pre, 0.9))})
    for d, model in models.items():
        t, res = timed(_decode, rec, model, recall_users)
        ranked[d] = res.items
        rows.append({"method": "ours", "dtype": d, "batch_size": 16, "users": len(recall_users),
                     "per_user_s": t / len(recall_users), "median_s": None, "p90_s": None})
        print(f"  batch-16 pass {d}: {t:.0f} s", flush=True)
    by = {(r["method"], r["dtype"], r["batch_size"]): r for r in rows}
    for r in rows:
        r["x_fp32_same_method"] = r["per_user_s"] / by[r["method"], "float32", r["batch_size"]]["per_user_s"]
    # the noise floor of the set criterion: the same fp32 model, batch 1 vs batch 16 (padding and kernel shapes differ)
    fp32_batched = _decode(rec, models["float32"], lat_users).items
    targets = [e.target for e in recall_users]
    recall = {d: _recall(ranked[d], targets, k) for d in ranked}
    summary = {
        "bf16_over_fp32_batch1_mean": by["ours", "bfloat16", 1]["per_user_s"] / by["ours", "float32", 1]["per_user_s"],
        "bf16_over_fp32_batch1_median": by["ours", "bfloat16", 1]["median_s"] / by["ours", "float32", 1]["median_s"],
        # each user's bf16 time over its fp32 time, measured back to back: robust to load that comes and goes
        "bf16_over_fp32_batch1_per_user_median": float(np.median(
            np.array(lat["bfloat16"]["decode_s"]) / np.array(lat["float32"]["decode_s"]))),
        "same_topk_set_batch1": _same_sets(lat["float32"]["items"], lat["bfloat16"]["items"], k),
        "same_topk_set_recall_users": _same_sets(ranked["float32"], ranked["bfloat16"], k),
        "topk_overlap_recall_users": _overlap(ranked["float32"], ranked["bfloat16"], k),
        "same_topk_set_fp32_batch1_vs_batch16": _same_sets(lat["float32"]["items"], fp32_batched, k),
        "same_top1_recall_users": _same_sets(ranked["float32"], ranked["bfloat16"], 1),
        f"recall@{k}": {d: float(v.mean()) for d, v in recall.items()},
        f"recall@{k}_paired_bf16_minus_fp32": paired_difference(recall["float32"], recall["bfloat16"], 2000, args.seed),
        "goal": "bf16 batch-1 latency <= 0.55x fp32; same top-K set for >= 95% of users; paired Recall@K interval "
                "contains 0",
    }
    print()
    print(f"{'method':8s} {'dtype':9s} {'batch':>5s} {'ms/user':>9s} {'median':>8s} {'x fp32':>7s}")
    for r in rows:
        med = f"{r['median_s'] * 1e3:8.1f}" if r["median_s"] is not None else f"{'-':>8s}"
        print(f"{r['method']:8s} {r['dtype']:9s} {r['batch_size']:5d} {r['per_user_s'] * 1e3:9.1f} {med} "
              f"{r['x_fp32_same_method']:7.3f}")
    print({k_: v for k_, v in summary.items() if k_ != "goal"})
    report = {
        "benchmark": "decode-dtype",
        "command": list(sys.argv) if argv is None else ["benchmarks/bench_decode.py", *argv],
        "run": args.run, "arm": rec.cfg.arm.name, "beams": k, "config": vars(args),
        "rows": rows, "summary": summary,
        "per_user_batch1_s": {d: {"decode": m["decode_s"], "prefill": m["prefill_s"]} for d, m in lat.items()},
        "environment": {**environment(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
    }
    write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
