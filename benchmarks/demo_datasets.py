"""The main job (``pauserec demo``, its packaged preset unchanged) on several datasets, one after the other.

Each dataset runs as ``pauserec demo --out WORK/NAME --set data.path=PATH --set cache_dir=WORK/NAME/cache``: a fresh
embedding and model cache per dataset, so every wall time includes the SID embeddings and the backbone's one-off
conversion, as on a fresh clone. A dataset whose ``WORK/NAME/demo.json`` exists is not run again (resumable). The
table: each dataset's size, wall time, test Recall@10 of popularity, SASRec, ``direct`` and ``pause`` on the demo's
fixed test users, each LLM arm's paired difference vs popularity and its share of SASRec's Recall@10, and whether
it meets the issue's bars (beats popularity, paired 95% interval above 0; at least half of SASRec's Recall@10; at
most 15 minutes).

    python benchmarks/demo_datasets.py scientific=builtin:amazon-scientific office=/data/Office games=/data/Games \
        --work runs/demo-datasets --name demo-datasets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import write_result

from pauserec.artifacts import environment
from pauserec.demo import beats

ARMS = ("direct", "pause")
BUDGET_S = 15 * 60


def run_one(name: str, path: str, work: Path) -> dict[str, Any]:
    """Run (unless finished) and read one dataset's ``demo.json``."""
    out = work / name
    if not (out / "demo.json").exists():
        cmd = [str(Path(sys.executable).parent / "pauserec"), "demo", "--out", str(out),
               "--set", f"data.path={path}", "--set", f"cache_dir={out / 'cache'}"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((out / "demo.json").read_text())


def row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one dataset's table row; the bars are the demo's own verdicts (:func:`pauserec.demo.beats`,
    ``share_of_sasrec``)."""
    recall = {m: summary["runs"][m]["metrics"]["recall@10"]["mean"] for m in ("popularity", "sasrec", *ARMS)}
    share = summary["share_of_sasrec"]
    return {
        "dataset": name, **summary["dataset"], "wall_seconds": summary["wall_seconds"],
        "stage_seconds": summary["stage_seconds"], "recall@10": recall,
        "paired_vs_popularity": {a: summary["paired_vs_popularity"][a]["recall@10"] for a in ARMS},
        "share_of_sasrec": share, "git_revision": summary["environment"]["git_revision"],
        "beats_popularity": {a: ok for a, ok in beats(summary, "popularity").items() if a in ARMS},
        "half_of_sasrec": {a: share[a] is not None and share[a] >= 0.5 for a in ARMS},
        "within_budget": summary["wall_seconds"] <= BUDGET_S,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| dataset | users | items | wall s | pop R@10 | SASRec R@10 | direct R@10 | pause R@10 "
            "| direct - pop (paired) | pause - pop (paired) | direct / SASRec | pause / SASRec | all bars met |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        rec, pair, share = r["recall@10"], r["paired_vs_popularity"], r["share_of_sasrec"]
        diff = [f"{pair[a]['mean']:+.3f} [{pair[a]['ci_low']:+.3f}, {pair[a]['ci_high']:+.3f}]" for a in ARMS]
        ok = all(r["beats_popularity"].values()) and all(r["half_of_sasrec"].values()) and r["within_budget"]
        lines.append(f"| {r['dataset']} | {r['users']:,} | {r['items']:,} | {r['wall_seconds']:.0f} | "
                     f"{rec['popularity']:.3f} | {rec['sasrec']:.3f} | {rec['direct']:.3f} | {rec['pause']:.3f} | "
                     f"{diff[0]} | {diff[1]} | {_share(share['direct'])} | {_share(share['pause'])} | "
                     f"{'yes' if ok else 'no'} |")
    stages = "\n".join(f"- {r['dataset']} (git {r['git_revision'][:12]}): " + ", ".join(
        f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items()) for r in rows)
    return head + "\n".join(lines) + "\n\nStage seconds:\n\n" + stages + "\n"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", help="NAME=PATH (any layout `pauserec prepare` reads, or builtin:...)")
    ap.add_argument("--work", type=Path, default=Path("runs/demo-datasets"))
    ap.add_argument("--name", default="demo-datasets", help="Result name under benchmarks/results/.")
    args = ap.parse_args()
    machine = environment()
    pairs = [d.split("=", 1) for d in args.datasets]
    if any(len(p) != 2 for p in pairs):
        ap.error("each dataset is NAME=PATH")
    rows = [row(name, run_one(name, path, args.work)) for name, path in pairs]
    write_result(args.name, {"rows": rows}, markdown(rows), machine=machine)
    print(markdown(rows))


if __name__ == "__main__":
    main()
