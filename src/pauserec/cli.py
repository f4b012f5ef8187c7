"""Command line: one command per stage (`prepare`, `sids`, `eval`, `demo`, ...), each a thin wrapper over
:mod:`pauserec.pipeline`. Commands that build a configuration (prepare, sids, train, ground, rationales, eval, demo) take
``--preset NAME|FILE`` and repeated ``--set section.key=value``; where a stored config applies instead (``train
--resume``, ``eval`` of a trained run) ``--preset`` is refused and ``--set`` changes the stored config."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import pipeline
from .config import RunConfig, build_config
from .errors import PauseRecError
from .eval.evaluate import users_line
from .report import plot_comparison, print_comparison, print_differences
from .artifacts import RunDir

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="PauseRec: LLM generative recommendation with pause tokens.")
# under a launcher (torchrun, accelerate launch) rank 0 alone reports; errors print on every rank (main)
console = Console(stderr=True, quiet=os.environ.get("RANK", "0") != "0")

PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="Packaged preset name or YAML file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override, e.g. --set sid.levels=4 (repeatable).")]


def _resume_config(out: Path, preset: str | None, overrides: list[str] | None) -> RunConfig:
    """``train --resume``: the run's stored config, with ``--set`` on top; ``--preset`` is refused, not ignored."""
    if preset is not None:
        raise PauseRecError(
            f"--preset does not apply to --resume: the run continues with its stored {out / 'config.yaml'}; "
            "change single keys with --set (e.g. --set train.max_steps=600)"
        )
    stored = RunDir(out).config()
    return build_config(base=stored.model_dump(), overrides=overrides) if overrides else stored


def _print_user_subsets(named: list[tuple[str, dict]]) -> None:
    """One line per result evaluated on a subset of its split's users: "N of M users (rule)"."""
    for name, result in named:
        line = users_line(result.get("metrics", {}), result.get("split", "eval"))
        if line is not None:
            console.print(f"{name}: evaluated on {line}", highlight=False)


def _config(preset: str | None, overrides: list[str] | None, **base: object) -> RunConfig:
    tree: dict = {}
    for dotted, value in base.items():
        if value is not None:
            node = tree
            *parents, leaf = dotted.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return build_config(preset, overrides, base=tree)


@app.command()
def prepare(
    data: Annotated[str, typer.Argument(help="Directory or file (LC-Rec JSON, RecBole atomic, raw Amazon), builtin:amazon-scientific or builtin:ml-100k.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Data directory to write.")],
    fmt: Annotated[str, typer.Option("--format", help="auto | lcrec | recbole | amazon")] = "auto",
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Read a dataset in any supported layout, validate it and store it as a data directory."""
    cfg = _config(preset, set_, data__path=data, data__format=fmt)
    t0 = time.perf_counter()
    ds = pipeline.prepare(cfg, out)
    s = ds.stats()
    console.print(
        f"[green]prepared[/] {s['name']}: {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions "
        f"({time.perf_counter() - t0:.1f}s) -> {out}"
    )
    for k, v in ds.notes.items():
        console.print(f"  note: {k} = {v}")


@app.command()
def sids(
    data_dir: Annotated[Path, typer.Argument(help="A data directory made by `prepare`.")],
    reference: Annotated[Optional[Path], typer.Option(help="An LC-Rec X.index.json to compare collision statistics with.")] = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the Semantic-ID catalogue (embeddings -> quantizer -> collision policy) of a data directory."""
    cfg = _config(preset, set_)
    catalog = pipeline.build_sids(cfg, data_dir)
    before, after = catalog.meta["stats_before"], catalog.meta["stats_after"]
    console.print(
        f"[green]SIDs[/]: {catalog.n_items:,} items, levels {catalog.level_sizes}; items sharing an SID: "
        f"{before['items_sharing_sid']} before the collision policy, {after['items_sharing_sid']} after"
    )
    if reference is not None:
        from .io import write_json
        from .sid.stats import read_index_json, sid_stats

        codes, sizes = read_index_json(reference, catalog.item_ids)
        ref = sid_stats(codes, sizes)
        write_json(Path(data_dir) / "reference_sid_stats.json", {"reference": str(reference), "stats": ref})
        console.print(f"reference SIDs ({reference.name}): items sharing an SID: {ref['items_sharing_sid']}")


@app.command()
def train(
    data_dir: Annotated[Path, typer.Argument(help="A data directory with SIDs (`prepare`, then `sids`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last checkpoint.")] = False,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fine-tune the backbone on one arm (``--set arm.name=pause --set arm.pause_tokens=4``)."""
    from .train.run import train as train_run

    cfg = _resume_config(out, preset, set_) if resume else _config(preset, set_)
    cost = train_run(cfg, data_dir, out, resume=resume)
    console.print(
        f"[green]trained[/] {cfg.arm.name}: {cost['steps']} steps in {cost['train_seconds']:.0f}s, "
        f"{cost['real_tokens_per_second']:.0f} real tokens/s, padding {cost['padding_fraction']:.1%}, "
        f"kept step {cost['kept_step']} ({cost['select']}): validation NDCG@10 {cost['best_val_ndcg@10']}, "
        f"Recall@10 {cost['best_val_recall@10']} -> {out}/model"
    )


@app.command()
def ground(
    data_dir: Annotated[Path, typer.Argument(help="A data directory with SIDs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write (its model/ feeds the cot arm).")],
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last checkpoint.")] = False,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Explicit-CoT stage 1, SID grounding: train language <-> SID alignment tasks (ground.tasks). Then
    ``pauserec train DATA --set arm.name=cot --set model.backbone=OUT/model --set arm.rationales=DIR``."""
    from .train.grounding import ground as ground_run

    cost = ground_run(_config(preset, set_), data_dir, out, resume=resume)
    console.print(
        f"[green]grounded[/]: {cost['steps']} steps in {cost['train_seconds']:.0f}s, tasks {cost['task_rows']}, "
        f"held-out item->SID NDCG@10 {cost['best_val_ndcg@10']}, Recall@10 {cost['best_val_recall@10']} -> {out}/model"
    )


@app.command()
def rationales(
    data_dir: Annotated[Path, typer.Argument(help="A data directory (`prepare`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write rationales.jsonl and its stats into.")],
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Explicit-CoT stage 2: acquire one rationale per training example (rationale.provider = template | local |
    openai), cached on disk; rationales that quote the target's title are filtered and counted."""
    from .rationale import acquire_rationales

    stats = acquire_rationales(_config(preset, set_), data_dir, out)
    console.print(
        f"[green]rationales[/] ({stats['provider']['provider']}): {stats['examples']:,} examples of "
        f"{stats['users']:,} users, {stats['status']}, {stats['from_cache']:,} from cache -> {out}"
    )


@app.command()
def analyze(
    kind: Annotated[str, typer.Argument(help="knowledge | alignment | rationale-quality | rationale-set")],
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Trained runs (knowledge, alignment), evaluated cot runs (rationale-quality), or one acquisition directory (rationale-set).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: analysis/ beside the first run); rationale-set: the new acquisition directory.")] = None,
    base: Annotated[str, typer.Option(help="Untouched backbone studied beside the runs ('' to leave it out).")] = "builtin:smollm2-135m",
    data_dir: Annotated[Optional[Path], typer.Option("--data", help="Data directory (default: the first run's).")] = None,
    items: Annotated[Optional[int], typer.Option(help="Items probed (knowledge, default 200) or compared (alignment, default all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of item samples, distractors, shuffles.")] = 0,
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", help="rationale-quality: an evaluated direct/pause run drawn as a line (repeatable).")] = None,
    variant: Annotated[Optional[str], typer.Option(help="rationale-set: shuffled | empty | truncated.")] = None,
    words: Annotated[int, typer.Option(help="rationale-set truncated: words kept.")] = 8,
) -> None:
    """The paper's analyses, each a figure + table (Markdown, JSON): world-knowledge probes, SID/title embedding
    alignment, cot accuracy by rationale quality; ``rationale-set`` derives a shuffled/empty/truncated rationale set."""
    from .analysis import analyze as run_analysis

    table = run_analysis(kind, runs or [], out=out, base=base or None, data_dir=data_dir, items=items, seed=seed,
                         references=reference or [], variant=variant, words=words)
    for what, path in table["files"].items():
        console.print(f"{kind} {what} -> {path}", highlight=False)


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="Run directory: a trained run to evaluate, or where a baseline writes.")],
    data_dir: Annotated[Optional[Path], typer.Option("--data", help="Data directory (baselines only).")] = None,
    baseline: Annotated[Optional[str], typer.Option(help="Evaluate a baseline instead of a trained run: popularity, sasrec, sasrec_ce, hstu, tiger (pauserec.baselines.BASELINES).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the results here instead of into RUN "
                                                "(e.g. an ablation with --set arm.inference_pause_tokens=0).")] = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate a trained run, or a baseline, under the evaluation contract (metrics with 95% intervals)."""
    if baseline is not None:
        from .baselines import get_baseline

        run_baseline = get_baseline(baseline)
        if data_dir is None or out is not None:
            raise PauseRecError("a baseline takes --data DIR and writes into RUN (no --out)")
        result = run_baseline(_config(preset, set_), data_dir, run)
    else:
        from .eval.run_eval import evaluate_run

        if preset is not None:
            raise PauseRecError(
                f"--preset does not apply to a trained run: `eval {run}` uses the run's stored config.yaml; "
                "change single keys with --set (e.g. --set eval.max_users=500)"
            )
        if data_dir is not None:
            raise PauseRecError(
                f"--data applies to baselines only: a trained run reads the data directory it was trained on "
                f"(env.json of {run})"
            )
        cfg = build_config(base=RunDir(run).config().model_dump(), overrides=set_) if set_ else None
        result = evaluate_run(run, cfg, out_dir=out)
    print_comparison(f"{result['split']} metrics (95% bootstrap intervals)", [(result["model"], result)])
    _print_user_subsets([(result["model"], result)])


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Evaluated run the others are compared against.")],
    runs: Annotated[list[Path], typer.Argument(help="Evaluated runs (same eval users as the baseline).")],
    plot: Annotated[Optional[Path], typer.Option(help="Also draw the runs side by side into this image (.png, .svg, .pdf).")] = None,
) -> None:
    """Compare evaluated runs: metrics and costs side by side, then each run's paired difference vs the baseline."""
    from .eval.compare import compare_runs

    named = [(d.name, RunDir(d).evaluation()) for d in [baseline, *runs]]
    print_comparison(f"{named[0][1]['split']} metrics (95% bootstrap intervals) and cost", named)
    diffs = compare_runs(baseline, runs, ks=sorted({int(m.split("@")[1]) for m in named[0][1]["metrics"] if "@" in m}))
    print_differences(baseline.name, [(d.name, diffs[str(d)]) for d in runs])
    _print_user_subsets(named)
    if plot is not None:
        console.print(f"figure -> {plot_comparison(named, plot)}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes its data and runs.")] = Path("runs/demo"),
    preset: PresetOpt = "demo",
    set_: SetOpt = None,
) -> None:
    """The main job on the embedded default (Amazon Scientific, shipped in the package): prepare, SIDs,
    popularity and SASRec, then train and evaluate the `direct` and `pause` arms on the packaged SmolLM2, side by
    side, compared user by user against popularity, SASRec and `direct`. Writes OUT/demo.json."""
    from .demo import beats, headline_recall, run_demo

    summary = run_demo(_config(preset, set_), out, announce=console.rule)
    runs = summary["runs"]
    print_comparison(f"{summary['dataset']['name']}: test metrics (95% bootstrap intervals) and cost",
                     list(runs.items()), Console())
    for reference in ("popularity", "sasrec", "direct"):
        print_differences(reference, list(summary[f"paired_vs_{reference}"].items()), Console())
    users = users_line(runs["direct"]["metrics"], "test") or f"{runs['direct']['metrics']['users']['count']:.0f} test users"
    metric = headline_recall(runs["sasrec"]["metrics"])
    verdicts = [f"{a} {'beats' if ok else 'does NOT beat'} popularity" for a, ok in beats(summary, "popularity").items()]
    shares = [f"{a} {share:.0%}" if share is not None else f"{a} - (SASRec 0)"
              for a, share in summary["share_of_sasrec"].items()]
    console.print(f"{metric} on the same {users}, paired 95% interval: {', '.join(verdicts)}.", highlight=False)
    console.print(f"Share of SASRec's {metric}: {', '.join(shares)}.", highlight=False)
    console.print(f"done in {summary['wall_seconds']:.0f}s; artifacts and demo.json in {out}")


@app.command()
def bench(
    grid: Annotated[Path, typer.Argument(help="Grid file (YAML): datasets, seeds, shared and per-model overrides, models.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Grid folder: one run directory per cell, table and figures.")],
    parallel: Annotated[int, typer.Option(help="Cells trained at once, one process each (CPU threads split); LLM "
                                          "evaluations still run one at a time.")] = 1,
    reference: Annotated[Optional[list[str]], typer.Option(help="A model the paired differences are taken against, "
                                                           "repeatable (default: popularity and direct, where "
                                                           "the grid has them).")] = None,
    table_only: Annotated[bool, typer.Option("--table-only", help="Run nothing: write the table and figures of the "
                                             "cells finished so far (e.g. while the grid runs elsewhere).")] = False,
    cells: Annotated[Optional[list[str]], typer.Option("--cells", help="Run only the cells whose id "
                                                       "DATASET/MODEL/seedN matches this glob, repeatable (e.g. "
                                                       "'*/cot-template/seed0'); the table still covers the grid.")] = None,
    results: Annotated[Optional[Path], typer.Option("--results", help="A folder keeping each finished cell's results "
                                                    "(config, metrics, cost, predictions; no weights): cells finished "
                                                    "there are restored and not run again, cells finished here are "
                                                    "saved into it. Commit it to continue a grid on another machine "
                                                    "or session.")] = None,
) -> None:
    """Run a declared grid (models x K x datasets x seeds); finished cells are skipped, failed ones recorded."""
    from .bench import run_grid

    if parallel < 1:
        raise PauseRecError(f"--parallel must be >= 1, got {parallel}")
    result = run_grid(grid, out, parallel=parallel, references=reference, run=not table_only, only=cells, results=results,
                      log=lambda m: console.print(m, highlight=False))
    failed = {k: v["error"] for k, v in result["cells"].items() if v.get("status") == "failed"}
    console.print((out / "table.md").read_text(), highlight=False)
    for cell, error in failed.items():
        console.print(f"[red]failed[/] {cell}: {error}", highlight=False)
    console.print(f"table and figures in {out}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="A trained run directory (RUN/config.yaml, env.json, model/).")],
    host: Annotated[str, typer.Option(help="Interface to listen on (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 (bf16: lower latency on CPUs with bf16 instructions; docs/serving.md).")] = "float32",
    beams: Annotated[Optional[int], typer.Option(help="Beam width = longest list a request may ask for (default: the run's decode.num_beams).")] = None,
    max_batch: Annotated[int, typer.Option(help="Most concurrent requests decoded in one decoder call.")] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="Longest a batch waits for more requests after its first.")] = 10.0,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Decode one request at a time (max-batch 1).")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch.set_num_threads (default: torch's choice).")] = None,
) -> None:
    """Serve a trained run over HTTP: POST /recommend, GET /items?q=, GET /health, the page at /, docs at /docs."""
    import torch
    import uvicorn

    from .serve import create_app, load_recommender

    if threads:
        torch.set_num_threads(threads)
    if dtype not in ("float32", "bfloat16"):
        raise PauseRecError(f"--dtype must be float32 or bfloat16, got {dtype!r}")
    recommender = load_recommender(run, dtype=dtype, beams=beams)
    app_ = create_app(recommender, max_batch=1 if no_batching else max_batch, max_wait_ms=max_wait_ms)
    console.print(f"[green]serving[/] {run} ({recommender.cfg.arm.name}, {dtype}, beam {recommender.beams}, "
                  f"max batch {1 if no_batching else max_batch}) on http://{host}:{port}/", highlight=False)
    # on Ctrl-C, stop waiting for open connections after 5 s: clients that left may still have decodes queued
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def main() -> None:
    """Entry point: user errors print one clear line (no traceback) and exit with status 2."""
    try:
        app()
    except PauseRecError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)  # one line, whatever the terminal width
        sys.exit(2)


if __name__ == "__main__":
    main()
