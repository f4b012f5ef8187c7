"""Checkpoint-selection study (issue 41 item 1): how often each selection rule keeps the checkpoint that is best on
test, how far below it lands, and what its validation passes cost.

For every run given, every kept Trainer checkpoint (train with ``--set train.save_total_limit=0 --set
train.resumable=false``: every checkpoint, weights only) is evaluated through the one evaluation path
(:func:`pauserec.eval.contract.evaluate_ranker` with the run's own decoder settings) on

* validation: the trainer's own ``train.val_users`` users and ``--val-users`` V users (default 2,000), both drawn
  with the run's ``eval.subset_seed``; the two draws are not nested in general, so their union is decoded once and
  each set is indexed in it (the output says which). Per-user NDCG@10 as the trainer computes it;
* the same V users' teacher-forced SID loss (:func:`pauserec.train.sid_loss.sid_loss`: mean NLL of the target SID
  tokens under ``train.loss``, the logged ``sid_loss``'s definition; one forward per user, no beam search);
* test: ``--test-users`` (default: the run's ``eval.max_users``) with ``eval.subset_seed``: the grid's users.

Test is read here ONLY to measure the rules. Everything the study writes goes to ``RUN/selection/`` (a cache:
``checkpoint-N/{valid,test}/`` as ``pauserec eval`` writes them, plus ``scores.json`` / ``sid_loss.json`` written
atomically, last, so an interrupted study resumes without decoding again) and to the result; the run's ``model/``,
``train_cost.json`` and anything ``pauserec bench`` reads are left alone.

Rules, per run: ``final`` (the last checkpoint), validation-best NDCG@10 on the trainer's users, on the V users, and
the lowest validation SID loss on the V users (earliest of ties, as Hugging Face). Per rule over the runs: runs where
it kept a test-best checkpoint, mean and worst test NDCG@10 regret, and the validation seconds it needs per run
(measured here: the union pass's decoding time pro-rated to each set's users, the SID-loss forwards timed).

    .venv/bin/python benchmarks/selection_study.py runs/sel/direct/seed0 runs/sel/pause-k1/seed0 ...
    .venv/bin/python benchmarks/selection_study.py RUN ... --val-users 500 --test-users 1000 --name selection-study-small
"""

from __future__ import annotations

import argparse
import gc
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import write_result

from pauserec.artifacts import RunDir, environment, load_trained
from pauserec.config import RunConfig
from pauserec.errors import PauseRecError
from pauserec.eval.contract import evaluate_ranker
from pauserec.eval.evaluate import subset_indices
from pauserec.eval.metrics import per_user_metrics, target_ranks
from pauserec.eval.run_eval import ArmRanker
from pauserec.eval.selection import Rule, rule_summary, run_outcome
from pauserec.io import read_json, read_jsonl, stable_hash, write_json
from pauserec.report import markdown_table
from pauserec.train.batches import sid_softmax
from pauserec.train.sid_loss import sid_loss
from pauserec.train.trainer import CHECKPOINT_COMPLETE

CACHE = "selection"  # RUN/selection/checkpoint-N/
TEST_KEY = "test_ndcg@10"
RULES = {
    "final": Rule(None, "last"),
    "val_ndcg_train_users": Rule("val_train_ndcg@10", "max", "seconds_val_train"),
    "val_ndcg_V": Rule("val_V_ndcg@10", "max", "seconds_val_V"),
    "val_sid_loss_V": Rule("val_V_sid_loss", "min", "seconds_sid_loss"),
}
READ_ONLY = ("Test is read here ONLY to measure the selection rules: nothing this study writes (`RUN/selection/`, "
             "this result) is read by training, `pauserec eval` or `pauserec bench`, and each run's kept `model/` "
             "and `train_cost.json` are left as they were.")
DOES_NOT_SHOW = ("What this does not show: how the rules behave on other runs, budgets, seeds or datasets than "
                 "these, or whether the arm ranking they lead to is right; a rule's hit rate over few runs is "
                 "itself noisy, and the test users' NDCG@10 that defines the test-best checkpoint has its own "
                 "sampling error (regrets of a few thousandths are within it).")


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the run's whole Trainer checkpoints (the completion marker written), by step."""
    found = []
    for p in (run_dir / "checkpoints").glob("checkpoint-*"):
        if p.is_dir() and p.name.removeprefix("checkpoint-").isdigit() and (p / CHECKPOINT_COMPLETE).exists():
            found.append((int(p.name.removeprefix("checkpoint-")), p))
    if not found:
        raise PauseRecError(f"{run_dir} keeps no complete checkpoint: train it with --set train.save_total_limit=0 "
                            "--set train.resumable=false to keep every checkpoint's weights")
    return sorted(found)


def weights_fingerprint(folder: Path) -> list[Any]:
    """Size and modification time of a checkpoint's weight files: a retrained checkpoint is not taken from cache."""
    return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in folder.glob("*.safetensors"))


def part_config(cfg: RunConfig, part: str) -> RunConfig:
    """The run's config evaluating ``part`` on exactly the examples given (no subset drawn, no bootstrap)."""
    out = cfg.model_copy(deep=True)
    out.eval.split, out.eval.max_users, out.eval.bootstrap = part, None, 0
    return out


class Checkpoint:
    """One checkpoint of a run, loaded on first use (a fully cached checkpoint is never loaded)."""

    def __init__(self, run_dir: Path, folder: Path):
        self.run_dir, self.folder, self._trained, self._ranker = run_dir, folder, None, None

    def ranker(self) -> ArmRanker:
        if self._ranker is None:
            self._trained = load_trained(self.run_dir, weights=self.folder)
            self._ranker = ArmRanker(self._trained)
        return self._ranker

    def close(self) -> None:
        self._trained = self._ranker = None
        gc.collect()


def cached(path: Path, key: str) -> dict[str, Any] | None:
    if path.exists():
        record = read_json(path)
        if record.get("key") == key:
            return record
    return None


def ranking_pass(ck: Checkpoint, cfg: RunConfig, data, split, part: str, examples: list, dest: Path,
                 key: str) -> dict[str, Any]:
    """Per-user Recall@10 and NDCG@10 of ``examples`` (``part``'s) through :func:`evaluate_ranker`, cached."""
    record = cached(dest / "scores.json", key)
    if record is not None:
        return record
    dest.mkdir(parents=True, exist_ok=True)
    result = evaluate_ranker(ck.ranker(), part_config(cfg, part), data, RunDir(dest), None,
                             split=replace(split, **{part: examples}))
    rows = read_jsonl(dest / "predictions.jsonl")
    per_user = per_user_metrics(target_ranks([r["items"] for r in rows], [r["target"] for r in rows]), [10])
    record = {"key": key, "users": [r["user"] for r in rows], "recall@10": per_user["recall@10"].tolist(),
              "ndcg@10": per_user["ndcg@10"].tolist(), "seconds": result["cost"]["inference"]["seconds"]}
    write_json(dest / "scores.json", record)
    return record


def loss_pass(ck: Checkpoint, cfg: RunConfig, examples: list, dest: Path, key: str) -> dict[str, Any]:
    """The SID-loss proxy of ``examples``, cached; ``loss`` None for an arm with a think phase (cot: validation
    users have no rationale, so teacher forcing would score the SID after an empty one)."""
    record = cached(dest / "sid_loss.json", key)
    if record is not None:
        return record
    ranker = ck.ranker()
    if ranker.arm.thinking() is not None:
        record = {"key": key, "loss": None, "tokens": 0, "seconds": 0.0,
                  "note": f"{ranker.arm.name}: a think phase; no teacher-forced SID loss without its rationale"}
    else:
        softmax = sid_softmax(cfg.train.loss, ranker.level_ids, len(ck._trained.tokenizer), ranker.catalog.trie)
        t0 = time.perf_counter()
        loss, tokens = sid_loss(ranker.model, examples, ranker.prompts, ranker.arm, ranker.level_ids, softmax,
                                ranker.pad_token_id)
        record = {"key": key, "loss": loss, "tokens": tokens, "seconds": time.perf_counter() - t0}
    write_json(dest / "sid_loss.json", record)
    return record


def mean(values: list[float], positions: list[int]) -> float:
    return sum(values[i] for i in positions) / len(positions)


def study_run(run_dir: Path, val_users: int, test_users: int | None) -> dict[str, Any]:
    """Every checkpoint of one run scored on the validation sets, the SID-loss proxy and test (cached)."""
    run = RunDir(run_dir)
    cfg = run.config()
    data = run.data()
    split = data.split(cfg)
    seed = cfg.eval.subset_seed
    trainer_set = subset_indices(len(split.valid), cfg.train.val_users, seed)
    v_set = subset_indices(len(split.valid), val_users, seed)
    union = sorted(set(trainer_set) | set(v_set))
    at = {i: j for j, i in enumerate(union)}
    valid = [split.valid[i] for i in union]
    v_examples = [split.valid[i] for i in v_set]
    n_test = test_users if test_users is not None else cfg.eval.max_users
    test = [split.test[i] for i in subset_indices(len(split.test), n_test, seed)]
    logged = {e["step"]: e for e in read_json(run.file("train_log.json")) if "eval_ndcg@10" in e}
    common = {"decode": cfg.decode.model_dump(), "arm": cfg.arm.model_dump(), "exclude": cfg.eval.exclude_history,
              "loss": cfg.train.loss}
    rows = []
    for step, folder in complete_checkpoints(run.path):
        ck = Checkpoint(run.path, folder)
        base = {**common, "step": step, "weights": weights_fingerprint(folder)}
        out = run.path / CACHE / folder.name
        val = ranking_pass(ck, cfg, data, split, "valid", valid, out / "valid",
                           stable_hash({**base, "users": [e.user for e in valid]}))
        tst = ranking_pass(ck, cfg, data, split, "test", test, out / "test",
                           stable_hash({**base, "users": [e.user for e in test]}))
        loss = loss_pass(ck, cfg, v_examples, out, stable_hash({**base, "users": [e.user for e in v_examples]}))
        ck.close()
        train_pos, v_pos = [at[i] for i in trainer_set], [at[i] for i in v_set]
        rows.append({
            "step": step,
            "val_train_ndcg@10": mean(val["ndcg@10"], train_pos),
            "logged_val_ndcg@10": logged.get(step, {}).get("eval_ndcg@10"),
            "val_V_ndcg@10": mean(val["ndcg@10"], v_pos), "val_V_recall@10": mean(val["recall@10"], v_pos),
            "val_V_sid_loss": loss["loss"],
            TEST_KEY: sum(tst["ndcg@10"]) / len(test), "test_recall@10": sum(tst["recall@10"]) / len(test),
            "seconds_val_train": val["seconds"] * len(trainer_set) / len(union),
            "seconds_val_V": val["seconds"] * len(v_set) / len(union),
            "seconds_sid_loss": loss["seconds"], "seconds_test": tst["seconds"],
        })
    return {"run": str(run_dir), "arm": cfg.arm.name, "select": cfg.train.select, "max_steps": cfg.train.max_steps,
            "users": {"valid_of": len(split.valid), "trainer": len(trainer_set), "V": len(v_set), "union": len(union),
                      "trainer_within_V": set(trainer_set) <= set(v_set), "subset_seed": seed,
                      "test": len(test), "test_of": len(split.test)},
            "checkpoints": rows}


def rules_for(runs: list[dict[str, Any]]) -> dict[str, Rule]:
    """:data:`RULES`, without the SID-loss rule where a run has no SID loss (an arm with a think phase)."""
    has_loss = all(c["val_V_sid_loss"] is not None for r in runs for c in r["checkpoints"])
    return {n: r for n, r in RULES.items() if has_loss or n != "val_sid_loss_V"}


def describe_rules(users: dict[str, Any]) -> dict[str, str]:
    return {"final": "final (last step)",
            "val_ndcg_train_users": f"val-best NDCG@10, trainer's {users['trainer']:,} users",
            "val_ndcg_V": f"val-best NDCG@10, {users['V']:,} users",
            "val_sid_loss_V": f"lowest val SID loss, {users['V']:,} users"}


def fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(runs: list[dict[str, Any]], outcomes: dict[str, Any], summary: dict[str, Any]) -> str:
    u = runs[0]["users"]
    names = describe_rules(u)
    nested = "a subset of" if all(r["users"]["trainer_within_V"] for r in runs) else "not a subset of"
    md = f"{READ_ONLY}\n\nUsers: validation = the trainer's {u['trainer']:,} users (`train.val_users`) and " \
         f"{u['V']:,} users, both of {u['valid_of']:,} drawn with `eval.subset_seed` {u['subset_seed']}; the " \
         f"trainer's users are {nested} the {u['V']:,}, so their union ({u['union']:,} users) was decoded once " \
         f"per checkpoint and each set indexed in it. Test = {u['test']:,} of {u['test_of']:,} test users " \
         f"(`eval.subset_seed` {u['subset_seed']}). SID loss: teacher-forced mean NLL per target SID token " \
         f"(`train.loss`) on the {u['V']:,} validation users.\n\n## Rules over {len(runs)} run(s)\n\n"
    md += markdown_table(
        ["rule", "runs", "keeps the test-best checkpoint", "mean test N@10 regret", "worst regret",
         "validation s / run"],
        [[names[n], str(s["runs"]), f"{s['hits']} of {s['runs']}", fmt(s["mean_regret"]), fmt(s["worst_regret"]),
          f"{s['mean_seconds']:.0f}"] for n, s in summary.items()])
    md += "\n\nValidation seconds: the union pass's decoding time pro-rated to each set's users (NDCG rules), the " \
          "SID-loss forwards timed (loss rule), summed over a run's checkpoints; `final` needs none.\n"
    for r in runs:
        o = outcomes[r["run"]]
        md += f"\n## `{r['run']}` ({r['arm']}, trained with `train.select={r['select']}`)\n\n"
        md += markdown_table(
            ["step", "val N@10 trainer's users", "(logged in training)", f"val N@10 {u['V']:,}", "val R@10",
             "val SID loss", "test N@10", "test R@10", "kept by"],
            [[f"{c['step']:,}", fmt(c["val_train_ndcg@10"]), fmt(c["logged_val_ndcg@10"]), fmt(c["val_V_ndcg@10"]),
              fmt(c["val_V_recall@10"]), fmt(c["val_V_sid_loss"]), fmt(c[TEST_KEY]), fmt(c["test_recall@10"]),
              ", ".join(n for n, p in o["rules"].items() if p["step"] == c["step"]) +
              (" (test-best)" if c["step"] in o["test_best_steps"] else "")]
             for c in r["checkpoints"]])
        md += "\n"
    return md + f"\n{DOES_NOT_SHOW}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="trained run directories that kept their checkpoints")
    ap.add_argument("--val-users", type=int, default=2000, help="V: validation users of the wider set (default 2000)")
    ap.add_argument("--test-users", type=int, default=None, help="test users (default: each run's eval.max_users)")
    ap.add_argument("--name", default="selection-study-scientific")
    ap.add_argument("--note", default="", help="a paragraph put under the header")
    args = ap.parse_args()
    machine = environment()
    runs = [study_run(r, args.val_users, args.test_users) for r in args.runs]
    rules = rules_for(runs)
    outcomes = {r["run"]: run_outcome(r["checkpoints"], rules, TEST_KEY) for r in runs}
    summary = rule_summary(outcomes)
    recomputed = [abs(c["val_train_ndcg@10"] - c["logged_val_ndcg@10"]) for r in runs for c in r["checkpoints"]
                  if c["logged_val_ndcg@10"] is not None]
    md = (f"{args.note}\n\n" if args.note else "") + markdown(runs, outcomes, summary)
    md += f"\nTrainer's users, NDCG@10 recomputed here vs logged in training: largest difference " \
          f"{max(recomputed, default=float('nan')):.2g} over {len(recomputed)} checkpoints.\n"
    write_result(args.name, {"read_only": READ_ONLY, "does_not_show": DOES_NOT_SHOW, "val_users": args.val_users,
                             "test_users": args.test_users, "rules": {n: r._asdict() for n, r in rules.items()},
                             "summary": summary, "outcomes": outcomes, "runs": runs,
                             "logged_vs_recomputed_max_abs": max(recomputed, default=None)}, md, machine)
    print(md)


if __name__ == "__main__":
    main()
