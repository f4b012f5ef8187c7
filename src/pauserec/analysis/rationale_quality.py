"""Rationale-quality sensitivity: the test accuracy of ``cot`` runs trained on rationale sets of controlled quality
(:mod:`.rationale_sets`), with evaluated ``direct`` / ``pause`` runs as horizontal references.

Reads each run's ``metrics.json``, ``config.yaml`` (its arm's ``rationales`` upstream stage names its set) and ``predictions.jsonl`` (how
many different rationales the model wrote at test time, and how many different top lists it gave); trains nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arms import get_arm
from ..config import differing_settings
from ..errors import PauseRecError
from ..io import read_jsonl
from ..report import fmt_metric, markdown_table
from ..artifacts import RunDir
from .loading import write_outputs
from .rationale_sets import rationale_set_label

METRICS = ("ndcg@10", "recall@10")
SAME_SETTING = ("arm.rationales", "cache_dir")  # keys that do not make two cot runs a different setting


def _run_row(run: Path, metrics: Sequence[str]) -> dict[str, Any]:
    rd = RunDir(run)
    cfg, result = rd.config(), rd.evaluation()
    missing = [m for m in metrics if m not in result["metrics"]]
    if missing:
        raise PauseRecError(f"{run}/metrics.json has no {', '.join(missing)} (evaluate with eval.ks including 10)")
    return {"run": str(run), "name": run.name, "arm": cfg.arm.name, "split": result.get("split"),
            "users": int(result["metrics"].get("users", {}).get("count", 0)),
            "metrics": {m: result["metrics"][m] for m in metrics},
            "rationales": get_arm(cfg.arm.name).upstream_stages(cfg.arm).get("rationales"),
            "distinct_rationales": distinct_rationales(rd.file("predictions.jsonl")),
            "distinct_lists": result["metrics"].get("users", {}).get("distinct_lists")}


def distinct_rationales(predictions: Path) -> int | None:
    """How many different rationales a cot model wrote over its evaluated users (None: no rationales recorded).

    A model that writes one sentence for everyone has learnt the rationales' marginal, not reasoning about the user.
    """
    if not predictions.exists():
        return None
    texts = {row["rationale"] for row in read_jsonl(predictions) if "rationale" in row}
    return len(texts) if texts else None


def rationale_quality_analysis(runs: Sequence[str | Path], out: str | Path, *, references: Sequence[str | Path] = (),
                               metrics: Sequence[str] = METRICS) -> dict[str, Any]:
    """Collect the runs and references; write ``OUT/rationale-quality.{json,md,png}``; return the JSON table.

    Raises:
        PauseRecError: a run was not trained on rationales (a ``cot`` run), or a run or reference is not
            evaluated.
    """
    rows = []
    for run in map(Path, runs):
        row = _run_row(run, metrics)
        if not row["rationales"]:  # its arm names no rationale set it trained on
            raise PauseRecError(f"{run} is a {row['arm']} run: rationale-quality reads cot runs (pass direct/pause "
                                "runs as --reference)")
        rows.append({**row, "rationale_set": rationale_set_label(row["rationales"])})
    settings = differing_settings([RunDir(Path(r["run"])).config() for r in rows], ignore=SAME_SETTING)
    for row, setting in zip(rows, settings):
        row["setting"] = ", ".join(f"{k}={v}" for k, v in setting.items() if v is not None)  # None: unset
    refs = [_run_row(Path(r), metrics) for r in references]
    splits = {r["split"] for r in [*rows, *refs]}
    table = {"analysis": "rationale-quality", "metrics": list(metrics), "splits": sorted(map(str, splits)),
             "runs": rows, "references": refs}
    paths = write_outputs(out, "rationale-quality", table, rationale_quality_markdown(table),
                          rationale_quality_figure(table))
    table["files"] = {k: str(v) for k, v in paths.items()}
    return table


def rationale_quality_markdown(table: Mapping[str, Any]) -> str:
    metrics = table["metrics"]
    header = ["run", "arm", "rationale set", "setting", *(f"{m} (95% CI)" for m in metrics), "users",
              "distinct rationales written", "distinct top lists"]
    shown = lambda v: "-" if v is None else str(v)  # noqa: E731
    rows = [[r["name"], r["arm"], r.get("rationale_set", "-"), r.get("setting") or "-",
             *(fmt_metric(r["metrics"][m]) for m in metrics),
             str(r["users"]), shown(r.get("distinct_rationales")), shown(r.get("distinct_lists"))]
            for r in [*table["runs"], *table["references"]]]
    return (f"cot accuracy by rationale set ({', '.join(table['splits'])} split); references below the cot runs.\n\n"
            + markdown_table(header, rows))


def rationale_quality_figure(table: Mapping[str, Any]):
    """One panel per metric: each cot run at its rationale set (mean, 95% interval, labelled with how many different
    rationales it wrote; one colour per setting where the cot runs differ in more than their rationales), references
    as lines + bands."""
    from matplotlib.figure import Figure

    metrics = table["metrics"]
    sets = list(dict.fromkeys(r["rationale_set"] for r in table["runs"]))
    settings = list(dict.fromkeys(r.get("setting", "") for r in table["runs"]))
    colour = {s: f"C{len(table['references']) + 1 + i}" if len(settings) > 1 else "C0" for i, s in enumerate(settings)}
    fig = Figure(figsize=(max(3.5, 1.1 * len(sets) + 1.5) * len(metrics), 4.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        for k, ref in enumerate(table["references"]):
            mu, lo, hi = (ref["metrics"][m][q] for q in ("mean", "ci_low", "ci_high"))
            color = f"C{k + 1}"
            ax.axhline(mu, color=color, linestyle="--", linewidth=1.2, label=f"{ref['arm']} ({ref['name']})")
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axhspan(lo, hi, color=color, alpha=0.12)
        labelled = set()
        for s, name in enumerate(sets):
            same = [r for r in table["runs"] if r["rationale_set"] == name]
            for j, r in enumerate(same):
                x = s + (j - (len(same) - 1) / 2) * 0.12
                mu, lo, hi = (r["metrics"][m][q] for q in ("mean", "ci_low", "ci_high"))
                err = [[mu - lo], [hi - mu]] if np.isfinite(lo) else None
                setting = r.get("setting", "")
                label = None if setting in labelled else ("cot, " + setting if setting else "cot")
                labelled.add(setting)
                ax.errorbar([x], [mu], yerr=err, fmt="o", color=colour[setting], capsize=3, label=label)
                if r.get("distinct_rationales") is not None:  # how many different rationales it wrote
                    ax.annotate(f"{r['distinct_rationales']} written", (x, mu), xytext=(5, 0),
                                textcoords="offset points", fontsize=6, va="center")
        ax.set_xticks(range(len(sets)), sets, rotation=20, ha="right")
        ax.set_xlim(-0.6, len(sets) - 0.4)
        ax.set_title(f"{'/'.join(table['splits'])} {m} (95% CI)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7)  # below the panels, never on a point
    fig.suptitle("cot accuracy by rationale quality", fontsize=10)
    return fig
