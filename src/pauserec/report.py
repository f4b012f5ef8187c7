"""Rendering results for people: terminal tables, Markdown and figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .eval.cost import peak_memory_gb
from .io import atomic_path

METRIC_ORDER = ["recall@1", "recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"]


def protocol_label(protocol: dict[str, Any] | None) -> str:
    """``"leave-one-out, history 20"`` / ``"temporal 0.8/0.1/0.1 by timestamp, history 10"``: a ``metrics.json``
    ``protocol`` in words (results that predate the field were all leave-one-out)."""
    p = protocol or {"kind": "leave_one_out"}
    history = f", history {p['max_history']}" if "max_history" in p else ""
    if p.get("kind") != "temporal":
        return "leave-one-out" + history
    cut = "/".join(f"{f:g}" for f in p.get("fractions", ()))
    order = p.get("order", "?").replace("_", " ")
    return f"temporal {cut} by {order}{history}"


def fmt_metric(m: dict[str, float]) -> str:
    """``0.0523 [0.048, 0.057]``."""
    if m.get("ci_low") is None or m["ci_low"] != m["ci_low"]:  # NaN: no bootstrap
        return f"{m['mean']:.4f}"
    return f"{m['mean']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def metric_rows(named: Sequence[tuple[str, dict[str, Any]]], metrics: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per named ``metrics.json['metrics']`` dict."""
    names = [m for m in (metrics or METRIC_ORDER) if any(m in d for _, d in named)]
    header = ["model", *names, "users"]
    rows = []
    for label, d in named:
        users = int(d.get("users", {}).get("count", 0))
        rows.append([label, *[fmt_metric(d[m]) if m in d else "-" for m in names], str(users)])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _cost_rows(results: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Cost lines of a comparison (blank where a run has no such figure)."""

    def get(r: dict[str, Any], *path: str) -> Any:
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        return r

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = [
        ("train time (s)", ("cost", "train", "train_seconds"), ".0f"),
        ("train real tokens/s", ("cost", "train", "real_tokens_per_second"), ".0f"),
        ("train padding", ("cost", "train", "padding_fraction"), ".1%"),
        ("latency/user (ms)", ("cost", "inference", "latency_per_user_s"), ".1f"),
        ("users/s", ("cost", "inference", "users_per_second"), ".1f"),
        ("prefill tokens/user", ("cost", "inference", "prefill_tokens_per_user"), ".1f"),
        ("peak memory (GB)", ("cost", "inference"), ".2f"),
    ]
    out = []
    for label, path, spec in lines:
        values = []
        for r in results:
            v = peak_memory_gb(get(r, *path)) if label.startswith("peak memory") else get(r, *path)
            if label.startswith("latency") and v is not None:
                v = v * 1000
            values.append(fmt(v, spec))
        if any(v != "-" for v in values):
            out.append((label, values))
    return out


def print_comparison(title: str, named: Sequence[tuple[str, dict[str, Any]]], console: Console | None = None) -> None:
    """Models as columns, metrics (mean [95% CI]) then costs as rows: accuracy and cost side by side."""
    table = Table(title=title)
    table.add_column("")
    for label, _ in named:
        table.add_column(label, justify="right")
    metrics = [m for m in METRIC_ORDER if any(m in r["metrics"] for _, r in named)]
    for m in metrics:
        table.add_row(m, *[fmt_metric(r["metrics"][m]) if m in r["metrics"] else "-" for _, r in named])
    table.add_row("examples" if any((r.get("protocol") or {}).get("kind") == "temporal" for _, r in named) else "users",
                  *[str(int(r["metrics"].get("users", {}).get("count", 0))) for _, r in named])
    table.add_row("split protocol", *[protocol_label(r.get("protocol")) for _, r in named])
    table.add_row("distinct top lists", *[str(r["metrics"].get("users", {}).get("distinct_lists", "-")) for _, r in named])
    for label, values in _cost_rows([r for _, r in named]):
        table.add_row(label, *values)
    (console or Console()).print(table)


def fmt_difference(d: dict[str, float]) -> str:
    """``+0.0040 [-0.0120, +0.0220]``: a paired difference and its 95% interval."""
    return f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def print_differences(
    baseline: str, named: Sequence[tuple[str, dict[str, dict[str, float]]]], console: Console | None = None
) -> None:
    """Paired differences against ``baseline`` (from :func:`pauserec.eval.compare.compare_runs`), runs as columns."""
    table = Table(title=f"paired difference vs {baseline} (mean [95% paired bootstrap interval])")
    table.add_column("")
    for label, _ in named:
        table.add_column(label, justify="right")
    metrics = [m for m in METRIC_ORDER if all(m in d for _, d in named)]
    for m in metrics:
        table.add_row(m, *[fmt_difference(d[m]) for _, d in named])
    recalls = [m for m in metrics if m.startswith("recall")]
    if recalls:
        m = "recall@10" if "recall@10" in recalls else recalls[-1]
        table.add_row(f"users hit only by {baseline} / only by the run ({m})",
                      *[f"{d[m]['only_baseline']} / {d[m]['only_other']}" for _, d in named])
    (console or Console()).print(table)


def plot_comparison(
    named: Sequence[tuple[str, dict[str, Any]]], path: str | Path, metrics: Sequence[str] = ("recall@10", "ndcg@10")
) -> Path:
    """A figure of runs side by side: one panel per metric (mean with its 95% interval), then latency per user.

    ``named`` holds ``(label, {"metrics": metrics.json['metrics'], "cost": cost.json})`` pairs; runs without an
    inference cost (baselines) get no latency bar. Written atomically; the format follows ``path``'s suffix.
    """
    from matplotlib.figure import Figure

    labels = [label for label, _ in named]
    latency = [1000 * (r.get("cost") or {}).get("inference", {}).get("latency_per_user_s", float("nan")) for _, r in named]
    panels = [m for m in metrics if any(m in r["metrics"] for _, r in named)]
    fig = Figure(figsize=(3.2 * (len(panels) + 1), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels) + 1, squeeze=False)[0]
    x = list(range(len(labels)))
    for ax, m in zip(axes, panels):
        mean = [r["metrics"].get(m, {}).get("mean", float("nan")) for _, r in named]
        low = [mu - r["metrics"].get(m, {}).get("ci_low", mu) for mu, (_, r) in zip(mean, named)]
        high = [r["metrics"].get(m, {}).get("ci_high", mu) - mu for mu, (_, r) in zip(mean, named)]
        ax.bar(x, mean, yerr=[low, high], capsize=3, color="tab:blue")
        ax.set_title(f"{m} (95% CI)")
    axes[-1].bar(x, latency, color="tab:gray")
    axes[-1].set_title("latency per user (ms)")
    for ax in axes:
        ax.set_xticks(x, labels, rotation=30, ha="right")
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure atomically; the format follows ``path``'s suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    return path
