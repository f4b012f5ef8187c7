"""The classic baselines of a finished ``pauserec bench`` grid beside LLM runs evaluated on the same users.

The baselines come from the grid's output folder (every seed); each ``--llm NAME=EVAL_DIR`` is an evaluated LLM run
(``pauserec eval RUN --out EVAL_DIR`` with the grid's ``eval.max_users`` and ``eval.subset_seed``, so the same users)
added as one more model with the seed of its run. The table is the one ``pauserec bench`` writes (mean and interval
over seeds, paired per-user differences vs each ``--reference`` on the same users, costs) plus its figures, committed as
``benchmarks/results/NAME.{json,md}`` with each LLM run's own training command.

    .venv/bin/python benchmarks/baselines_vs_llm.py benchmarks/grids/baselines-scientific.yaml runs/bench-baselines \
        --llm direct=runs/llm-2000/direct-excl-false --reference direct --name baselines-scientific
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import RESULTS, write_result

from pauserec.arms import get_arm
from pauserec.bench import expand, load_grid
from pauserec.bench.grid import Cell
from pauserec.bench.table import plot_all, summarize, write_table
from pauserec.io import read_json
from pauserec.artifacts import RunDir, environment


def llm_cell(name: str, eval_dir: Path, dataset: str, data_dir: str, out: Path) -> Cell:
    """An evaluated LLM run as a grid cell: linked into ``out`` where the grid's layout expects it."""
    cfg = RunDir(eval_dir).config()
    key = get_arm(cfg.arm.name).sweep_key  # the value a grid's k: would have given this run (pause: K)
    k = getattr(cfg.arm, key) if key is not None else None
    cell = Cell(name, cfg.arm.name, k, dataset, data_dir, cfg.seed, ())
    link = cell.run_dir(out)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(eval_dir.resolve(), target_is_directory=True)
    return cell


def provenance(eval_dir: Path) -> dict[str, str | None]:
    """The commands and code revisions that trained and evaluated an LLM run."""
    env = RunDir(eval_dir).env()
    trained = RunDir(env["evaluated_run"]).env() if "evaluated_run" in env else env
    return {"evaluated": env.get("command"), "evaluated_at": env.get("git_revision"),
            "trained": trained.get("command"), "trained_at": trained.get("git_revision")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid")
    ap.add_argument("out", type=Path, help="the grid's output folder (pauserec bench GRID --out OUT)")
    ap.add_argument("--llm", action="append", default=[], help="NAME=EVAL_DIR (repeatable)")
    ap.add_argument("--reference", action="append", help="a model to take paired differences against (repeatable; "
                    "default: popularity and direct)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--note", default="", help="a paragraph appended to the Markdown (what the numbers do not show)")
    args = ap.parse_args()
    grid = load_grid(args.grid)
    cells = expand(grid, source=args.grid)
    dataset, data_dir = next(iter(grid.datasets.items()))
    llm = dict(spec.split("=", 1) for spec in args.llm)
    cells += [llm_cell(name, Path(d), dataset, data_dir, args.out) for name, d in llm.items()]
    rows = summarize(cells, args.out, args.reference)
    write_table(rows, args.out)
    figures = plot_all(rows, args.out)
    for fig in figures:
        shutil.copyfile(fig, RESULTS / f"{args.name}-{fig.name}")
    state = read_json(args.out / "grid_state.json") if (args.out / "grid_state.json").exists() else {}
    write_result(args.name, {"grid": args.grid, "grid_state": state, "rows": rows, "note": args.note,
                             "llm_runs": {n: provenance(Path(d)) for n, d in llm.items()}},
                 (args.out / "table.md").read_text() + "\n" + "\n".join(
                     f"- `{n}`: trained by `{p['trained']}` (git {p['trained_at']}), evaluated by `{p['evaluated']}`"
                     for n, p in ((n, provenance(Path(d))) for n, d in llm.items())) + "\n"
                 + (f"\n{args.note}\n" if args.note else ""),
                 machine=environment())


if __name__ == "__main__":
    main()
