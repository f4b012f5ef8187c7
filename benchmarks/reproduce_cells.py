"""Do committed results still reproduce? Compare cells evaluated (or fitted and evaluated) again by today's code
with the cells they reproduce: metrics and per-user rankings, value by value.

    .venv/bin/python benchmarks/reproduce_cells.py \\
        --pair sasrec/seed0=benchmarks/cells/scientific/scientific/sasrec/seed0:runs/bench-protocols-loo/scientific/sasrec/seed0 \\
        --name reproduce-cells

Each ``--pair NAME=STORED:NEW`` names two run or cell directories holding ``metrics.json`` and ``predictions.jsonl``
(or ``.gz``). A pair reproduces when every metric (mean and interval bounds) is equal and every user's ranked items
are equal; scores are compared within ``--score-tol`` (they are written rounded). The git revisions come from each
directory's ``env.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

from common import write_result

from pauserec.artifacts import environment
from pauserec.report import markdown_table


def read_predictions(run: Path) -> list[dict[str, Any]]:
    """The rows of ``run/predictions.jsonl`` (or its ``.gz``)."""
    plain, packed = run / "predictions.jsonl", run / "predictions.jsonl.gz"
    with (open(plain, encoding="utf-8") if plain.exists() else gzip.open(packed, "rt", encoding="utf-8")) as f:
        return [json.loads(line) for line in f if line.strip()]


def keyed(rows: list[dict[str, Any]], with_position: bool) -> dict[tuple[str, ...], dict[str, Any]]:
    """``(user, target[, position]) -> row``: predictions written before rows recorded the position (leave-one-out,
    one example per user) are matched by user and target."""
    return {(str(r["user"]), str(r["target"]), *([str(r.get("position"))] if with_position else [])): r for r in rows}


def flat_metrics(run: Path) -> dict[str, float]:
    """``metric.field -> value`` of ``run/metrics.json`` (``recall@10.mean``, ``recall@10.ci_low``, ...)."""
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    return {f"{name}.{field}": float(v) for name, stats in metrics.items() if isinstance(stats, dict)
            for field, v in stats.items() if isinstance(v, (int, float))}


def revision(run: Path) -> str:
    env = run / "env.json"
    return json.loads(env.read_text()).get("git_revision", "?")[:7] if env.exists() else "?"


def compare(stored: Path, new: Path, score_tol: float) -> dict[str, Any]:
    """Metric and ranking differences between two evaluated directories."""
    old_m, new_m = flat_metrics(stored), flat_metrics(new)
    shared = sorted(set(old_m) & set(new_m))
    metric_diff = max((abs(old_m[k] - new_m[k]) for k in shared), default=0.0)
    old_rows, new_rows = read_predictions(stored), read_predictions(new)
    with_position = all("position" in r for r in old_rows + new_rows)
    old_p, new_p = keyed(old_rows, with_position), keyed(new_rows, with_position)
    users = sorted(set(old_p) & set(new_p))
    rank_diff = sum(old_p[u]["items"] != new_p[u]["items"] for u in users)
    score_diff = max((abs(a - b) for u in users for a, b in zip(old_p[u].get("scores", []), new_p[u].get("scores", []))),
                     default=0.0)
    return {"stored": str(stored), "new": str(new), "stored_rev": revision(stored), "new_rev": revision(new),
            "metrics_compared": len(shared), "metrics_only_one_side": sorted(set(old_m) ^ set(new_m)),
            "max_metric_diff": metric_diff, "users": len(users), "users_only_one_side": len(set(old_p) ^ set(new_p)),
            "users_ranked_differently": rank_diff, "max_score_diff": score_diff,
            "reproduces": metric_diff == 0.0 and rank_diff == 0 and len(set(old_p) ^ set(new_p)) == 0
            and score_diff <= score_tol,
            "recall@10": new_m.get("recall@10.mean"), "ndcg@10": new_m.get("ndcg@10.mean")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", action="append", required=True, metavar="NAME=STORED:NEW")
    ap.add_argument("--score-tol", type=float, default=1e-5, help="largest score difference still equal (scores "
                    "are written rounded to 5-6 significant digits)")
    ap.add_argument("--name", default="reproduce-cells")
    ap.add_argument("--note", default="", help="a paragraph above the table")
    args = ap.parse_args()
    pairs = {}
    for spec in args.pair:
        name, _, dirs = spec.partition("=")
        stored, _, new = dirs.partition(":")
        if not (name and stored and new):
            raise SystemExit(f"--pair {spec!r}: expected NAME=STORED:NEW")
        pairs[name] = compare(Path(stored), Path(new), args.score_tol)
    rows = [{"cell": n, "stored at": r["stored_rev"], "again at": r["new_rev"], "users": r["users"],
             "R@10": f"{r['recall@10']:.4f}", "N@10": f"{r['ndcg@10']:.4f}",
             "largest metric difference": f"{r['max_metric_diff']:.1e}",
             "users ranked differently": r["users_ranked_differently"],
             "reproduces": "yes" if r["reproduces"] else "NO"} for n, r in pairs.items()]
    md = (f"{args.note}\n\n" if args.note else "") + markdown_table(list(rows[0]), [list(map(str, r.values())) for r in rows])
    write_result(args.name, {"pairs": pairs}, md, environment())
    print(md)


if __name__ == "__main__":
    main()
