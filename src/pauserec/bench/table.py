"""A grid's results: one row per model (x K) per dataset, mean and 95% interval over seeds, costs, paired
differences against reference models on the same users, the validation-best variant of each arm, and three figures.

Written into the grid's output folder: ``table.md``, ``table.csv``, ``table.json``, ``accuracy_vs_latency.png``,
``accuracy_vs_train_cost.png`` and ``pause_curve.png`` (metric vs K, ``direct`` as K = 0).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.compare import excludes_history, paired_difference, per_user_values, same_tasks
from ..io import read_json, write_json, write_text
from ..report import fmt_difference, fmt_metric, markdown_table, protocol_label, save_figure
from ..arms import ARMS
from .grid import Cell

METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")


def seed_interval(values: Sequence[float]) -> dict[str, float]:
    """Mean over seeds and its 95% Student-t interval (``ci_low = ci_high = mean`` for a single seed)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "seeds": len(x)}
    half = float(t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "seeds": len(x)}


def _cost(cost: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(training seconds, inference latency per user in seconds)`` of one ``cost.json``. Training is the whole
    pipeline where the run has one (a cot run: grounding + rationale acquisition + reasoning SFT), else the run's own."""
    pipeline = (cost.get("pipeline") or {}).get("seconds")
    train = pipeline if pipeline is not None else (cost.get("train") or {}).get("train_seconds")
    latency = (cost.get("inference") or {}).get("latency_per_user_s")
    return train, latency


VALIDATION = "ndcg@10"  # what picks an arm's variant (pause K, a cot configuration): never a test metric
SEED_MEANS = ("train_seconds", "latency_per_user_s", f"val_{VALIDATION}")  # a row's means of its seeds' records


def _seed_record(evaluation: dict[str, Any]) -> dict[str, float | None]:
    """What one seed contributes to its row: test NDCG@10, validation score, training seconds, latency per user."""
    train, latency = _cost(evaluation["cost"])
    val = (evaluation["cost"].get("train") or {}).get(f"best_val_{VALIDATION}")
    return {"ndcg@10": evaluation["metrics"]["ndcg@10"]["mean"], f"val_{VALIDATION}": val,
            "train_seconds": train, "latency_per_user_s": latency}


def default_references(models: Sequence[str]) -> list[str]:
    """Popularity and ``direct`` where the grid has them, else its first model."""
    return [m for m in ("popularity", "direct") if m in models] or list(models[:1])


def summarize(cells: Sequence[Cell], out: Path, references: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, model) over its finished seeds. ``paired[ref]``: the difference vs each reference model
    (default :func:`default_references`) from per-user metrics averaged over the seeds both have. ``val_best``: True
    on the variant of its arm with the highest mean validation NDCG@10 over the seeds its variants share, where an arm
    has several (e.g. pause K)."""
    cells = [c for c in cells if not c.stage]  # a stage has no metrics: the rows are the models
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.dataset, c.model), []).append(c)
    models = list(dict.fromkeys(c.model for c in cells))
    references = list(references or default_references(models))
    rows = []
    for (dataset, model), group in groups.items():
        done = [c for c in group if (c.run_dir(out) / "metrics.json").exists()]
        row: dict[str, Any] = {"dataset": dataset, "model": model, "arm": group[0].base, "k": group[0].k,
                               "seeds": [c.seed for c in done], "missing_seeds": [c.seed for c in group if c not in done]}
        if group[0].source is not None:
            row["eval_of"] = group[0].source.model
        if done:
            evals = [{**read_json(c.run_dir(out) / "metrics.json"), "cost": _read_cost(c, out)} for c in done]
            row["metrics"] = {m: seed_interval([e["metrics"][m]["mean"] for e in evals]) for m in METRICS}
            row["users"] = int(evals[0]["metrics"]["users"]["count"])
            row["protocol"] = evals[0].get("protocol", {"kind": "leave_one_out"})
            row["by_seed"] = {c.seed: _seed_record(e) for c, e in zip(done, evals)}
            for key in SEED_MEANS:
                row[key] = _mean([s[key] for s in row["by_seed"].values()])
            row["paired"] = {ref: _paired(groups.get((dataset, ref), []), done, out)
                             for ref in references if ref != model and (dataset, ref) in groups}
        rows.append(row)
    mark_validation_best(rows)
    add_ratios(rows, references)
    return rows


RATIOS = {"ndcg@10": "NDCG@10", "train_seconds": "training time (pipeline)", "latency_per_user_s": "latency per user"}


def add_ratios(rows: list[dict[str, Any]], references: Sequence[str]) -> None:
    """``ratios[ref]`` of each LLM row for each reference that is an LLM arm: the row's NDCG@10, training time and
    latency divided by the reference's (the paper quotes pause / cot this way), both means over the seeds the two
    share (``seeds``; a part-way grid would otherwise set one seed against another); None where the reference's is 0
    or unknown. Baselines get none: a popularity count's "training time" over an LLM's says nothing."""
    by_key = {(r["dataset"], r["model"]): r for r in rows if "metrics" in r and r["arm"] in ARMS}
    for r in rows:
        if (r["dataset"], r["model"]) not in by_key:
            continue
        r["ratios"] = {}
        for ref in references:
            other = by_key.get((r["dataset"], ref))
            seeds = sorted(set(r["by_seed"]) & set(other["by_seed"])) if other is not None and other is not r else []
            if seeds:
                mean = lambda row, key: _mean([row["by_seed"][s][key] for s in seeds])  # noqa: E731
                r["ratios"][ref] = {key: _ratio(mean(r, key), mean(other, key)) for key in RATIOS} | {"seeds": seeds}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def mark_validation_best(rows: list[dict[str, Any]]) -> None:
    """Per dataset and arm with two or more validated variants (eval-only variants left out: they have their trained
    model's validation score), ``val_best`` True on the one with the highest mean validation score (the first listed on a tie), False on the others. The means are taken over the seeds every
    variant of the arm has (``val_best_seeds``), so a variant run on one lucky seed does not beat one averaged over
    three; where the variants share no seed, over each one's own seeds."""
    key = f"val_{VALIDATION}"
    families: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get(key) is not None and "eval_of" not in r:  # an eval-only variant has its model's validation
            families.setdefault((r["dataset"], r["arm"]), []).append(r)
    for family in families.values():
        if len(family) < 2:
            continue
        by_seed = [{s: v[key] for s, v in r["by_seed"].items() if v[key] is not None} for r in family]
        shared = sorted(set.intersection(*(set(v) for v in by_seed)))
        scores = [_mean([v[s] for s in shared]) if shared else r[key] for r, v in zip(family, by_seed)]
        best = max(range(len(family)), key=lambda i: scores[i])
        for i, r in enumerate(family):
            r["val_best"] = i == best
            r["val_best_seeds"] = shared or None


def _read_cost(cell: Cell, out: Path) -> dict[str, Any]:
    path = cell.run_dir(out) / "cost.json"
    return read_json(path) if path.exists() else {}


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _paired(ref: Sequence[Cell], cells: Sequence[Cell], out: Path) -> dict[str, Any] | None:
    """Per-user differences (model - reference), each user's metric averaged over the seeds both finished."""
    seeds = sorted({c.seed for c in cells} & {c.seed for c in ref if (c.run_dir(out) / "metrics.json").exists()})
    if not seeds:
        return None
    by_seed = {c.seed: c for c in cells}, {c.seed: c for c in ref}
    ks = sorted({int(m.split("@")[1]) for m in METRICS})
    tasks, mine, theirs = None, [], []
    for s in seeds:
        if excludes_history(by_seed[0][s].run_dir(out)) != excludes_history(by_seed[1][s].run_dir(out)):
            return {"error": f"different item sets: {by_seed[0][s].id} and the reference differ in eval.exclude_history"}
        for side, target in ((by_seed[0][s], mine), (by_seed[1][s], theirs)):
            t, values = per_user_values(side.run_dir(out), ks)
            if tasks is not None and not same_tasks(t, tasks):
                return {"error": f"different users: {side.id} was not decoded on the reference's users"}
            tasks = t
            target.append(values)
    paired = {m: paired_difference(np.mean([v[m] for v in theirs], axis=0), np.mean([v[m] for v in mine], axis=0))
              for m in METRICS}
    return paired | {"seeds": seeds, "seed_level": seed_level_differences(mine, theirs)}


def seed_level_differences(mine: Sequence[dict[str, np.ndarray]], theirs: Sequence[dict[str, np.ndarray]]
                           ) -> dict[str, dict[str, float]]:
    """Per metric: each shared seed's paired difference (model - reference, mean over the same users), and the
    Student-t 95% interval over those seeds (:func:`seed_interval`). ``mine[i]`` / ``theirs[i]``: per-user values
    (metric -> array of shape (users,)) of seed i. The mean equals the user-level paired mean (same users every seed);
    the interval is what training seeds spread, which the bootstrap over users does not see."""
    return {m: seed_interval([float(np.mean(a[m]) - np.mean(b[m])) for a, b in zip(mine, theirs, strict=True)])
            for m in METRICS}


def write_table(rows: Sequence[dict[str, Any]], out: Path) -> dict[str, Path]:
    """``table.md``, ``table.csv`` and ``table.json`` in ``out``."""
    refs = list(dict.fromkeys(ref for r in rows for ref in r.get("paired", {})))
    header = ["dataset", "protocol", "model", "seeds", "users", *METRICS, f"val {VALIDATION}",
              *[f"{short} - {ref} (paired)" for ref in refs for short in PAIRED],
              *[f"N@10 - {ref} (over seeds)" for ref in refs], "train s (pipeline)", "latency/user ms"]
    lines = [_line(r, refs) for r in rows]
    paths = {"md": out / "table.md", "csv": out / "table.csv", "json": out / "table.json"}
    note = ("\n\n`*` the validation-best variant of its arm (highest mean validation NDCG@10 over the seeds all its "
            "variants have; chosen without test data)." if any(r.get("val_best") for r in rows) else "")
    write_text(paths["md"], "Mean [95% t-interval over seeds]; paired differences vs " + (", ".join(refs) or "-")
               + " on the same users (per-user metric averaged over the seeds both have, bootstrap over users), and "
               "over seeds (each shared seed's paired difference, 95% t-interval over them; `-` for one seed)."
               + note + "\n\n" + markdown_table(header, lines) + _ratio_tables(rows))
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *lines])
    write_text(paths["csv"], buf.getvalue())
    write_json(paths["json"], {"rows": list(rows)})
    return paths


PAIRED = {"R@10": "recall@10", "N@10": "ndcg@10"}  # the paired differences shown, per reference


def _ratio_tables(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown table per LLM reference: each row's ratios to it."""
    refs = dict.fromkeys(ref for r in rows for ref in r.get("ratios", {}))
    text = ""
    for ref in refs:
        lines = [[r["model"], ",".join(map(str, r["ratios"][ref]["seeds"])),
                  *("-" if r["ratios"][ref][k] is None else f"{r['ratios'][ref][k]:.3f}" for k in RATIOS)]
                 for r in rows if ref in r.get("ratios", {})]
        text += (f"\n\nRatios to {ref} (model / {ref}, each a mean over the seeds both have):\n\n"
                 + markdown_table(["model", "seeds", *RATIOS.values()], lines))
    return text


def _line(r: dict[str, Any], refs: Sequence[str]) -> list[str]:
    model = r["model"] + (" *" if r.get("val_best") else "")
    if "metrics" not in r:
        return [r["dataset"], "-", model, "0", "-", *["-"] * (len(METRICS) + 1 + (len(PAIRED) + 1) * len(refs)), "-", "-"]
    fmt = lambda v, scale, spec: "-" if v is None else format(v * scale, spec)  # noqa: E731
    return [r["dataset"], protocol_label(r.get("protocol")), model, ",".join(map(str, r["seeds"])), str(r["users"]),
            *[fmt_metric(r["metrics"][m]) for m in METRICS], fmt(r[f"val_{VALIDATION}"], 1, ".4f"),
            *[_diff(r["paired"].get(ref), metric) for ref in refs for metric in PAIRED.values()],
            *[_seed_diff(r["paired"].get(ref), "ndcg@10") for ref in refs],
            fmt(r["train_seconds"], 1, ".0f"), fmt(r["latency_per_user_s"], 1000, ".2f")]


def _diff(paired: dict[str, Any] | None, metric: str) -> str:
    if not paired:
        return "-"
    return paired.get("error") or fmt_difference(paired[metric])


def _seed_diff(paired: dict[str, Any] | None, metric: str) -> str:
    """The over-seeds interval of a paired difference; ``-`` where there is none (one shared seed, an error)."""
    level = (paired or {}).get("seed_level", {}).get(metric)
    return fmt_difference(level) if level and level["seeds"] > 1 else "-"


def plot_all(rows: Sequence[dict[str, Any]], out: Path, metric: str = "recall@10") -> list[Path]:
    """Accuracy vs inference latency, accuracy vs training cost, and the pause-count curve."""
    done = [r for r in rows if "metrics" in r]
    return [
        _scatter(done, "latency_per_user_s", 1000, "inference latency per user (ms)", metric,
                 out / "accuracy_vs_latency.png"),
        _scatter(done, "train_seconds", 1, "training cost (s)", metric, out / "accuracy_vs_train_cost.png"),
        _pause_curve(done, metric, out / "pause_curve.png"),
    ]


def _scatter(rows: Sequence[dict[str, Any]], key: str, scale: float, xlabel: str, metric: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for r in rows:
        x = r.get(key)
        x = 0.0 if x is None else x * scale
        m = r["metrics"][metric]
        ax.errorbar([x], [m["mean"]], yerr=[[m["mean"] - m["ci_low"]], [m["ci_high"] - m["mean"]]], fmt="o", capsize=3)
        ax.annotate(f"{r['model']} ({r['dataset']})", (x, m["mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    if any((r.get(key) or 0) > 0 for r in rows):
        ax.set_xscale("symlog", linthresh=max(min((r.get(key) or 1) * scale for r in rows if r.get(key)), 1e-6))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (mean, 95% interval over seeds)")
    return save_figure(fig, path)


def _pause_curve(rows: Sequence[dict[str, Any]], metric: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        points = sorted((0 if r["model"] == "direct" else r["k"], r["metrics"][metric]) for r in rows
                        if r["dataset"] == dataset and r["model"] in ("direct", f"pause-k{r['k']}"))
        if points:
            ks, ms = [p[0] for p in points], [p[1] for p in points]
            ax.errorbar(ks, [m["mean"] for m in ms], yerr=[[m["mean"] - m["ci_low"] for m in ms],
                        [m["ci_high"] - m["mean"] for m in ms]], marker="o", capsize=3, label=dataset)
    ax.set_xlabel("K pause tokens (0 = direct)")
    ax.set_ylabel(metric)
    if ax.has_data():
        ax.legend(fontsize=7)
    else:
        ax.set_title("no direct / pause cells")
    return save_figure(fig, path)

