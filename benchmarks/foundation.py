"""Foundation results for one dataset: prepare -> Semantic IDs -> popularity baseline, with stage timings.

    .venv/bin/python benchmarks/foundation.py ../shared/data/amazon-scientific --name scientific \
        --reference ../shared/data/amazon-scientific/reference-sids/Scientific.index.json
    .venv/bin/python benchmarks/foundation.py builtin:ml-100k --name ml-100k
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import write_result

from pauserec import pipeline
from pauserec.config import build_config
from pauserec.report import markdown_table, metric_rows
from pauserec.sid.stats import read_index_json, sid_stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data")
    p.add_argument("--name", required=True)
    p.add_argument("--work", default="runs/foundation")
    p.add_argument("--reference", help="LC-Rec index.json of reference SIDs to compare collisions with")
    p.add_argument("--set", action="append", default=[], help="config override section.key=value")
    args = p.parse_args()

    cfg = build_config(overrides=[f"data.path={args.data}", *args.set])
    data_dir = Path(args.work) / args.name
    times = {}
    t = time.perf_counter()
    dataset = pipeline.prepare(cfg, data_dir)
    times["prepare_s"] = time.perf_counter() - t
    t = time.perf_counter()
    catalog = pipeline.build_sids(cfg, data_dir)
    times["sids_s"] = time.perf_counter() - t
    times.update({f"sids.{k}": v for k, v in catalog.meta.get("timings_s", {}).items()})
    t = time.perf_counter()
    pop = pipeline.evaluate_popularity(cfg, data_dir, Path(args.work) / f"{args.name}-popularity")
    times["popularity_eval_s"] = time.perf_counter() - t

    reference = None
    if args.reference:
        codes, sizes = read_index_json(args.reference, catalog.item_ids)
        reference = {"path": args.reference, "stats": sid_stats(codes, sizes)}

    before, after = catalog.meta["stats_before"], catalog.meta["stats_after"]
    md = "## Dataset\n\n" + markdown_table(list(dataset.stats()), [[str(v) for v in dataset.stats().values()]])
    sid_header = ["SIDs", "levels", "items sharing an SID", "items - unique SIDs", "colliding groups", "max group", "utilization per level", "perplexity per level"]
    def sid_row(label, s):
        return [label, str(s["levels"]), str(s["items_sharing_sid"]), str(s["duplicate_items"]), str(s["colliding_groups"]), str(s["max_group_size"]),
                ", ".join(f"{lv['utilization']:.3f}" for lv in s["per_level"]),
                ", ".join(f"{lv['perplexity']:.1f}" for lv in s["per_level"])]
    sid_rows = [sid_row(f"ours ({cfg.sid.quantizer}), before collision policy", before),
                sid_row(f"ours, after `{cfg.sid.collision}`", after)]
    if reference:
        sid_rows.append(sid_row("reference (study's RQ-VAE)", reference["stats"]))
    md += "\n## Semantic IDs\n\n" + markdown_table(sid_header, sid_rows)
    header, rows = metric_rows([("popularity", pop["metrics"])])
    md += f"\n## Popularity baseline ({pop['split']})\n\n" + markdown_table(header, rows)
    md += "\n## Wall time (s)\n\n" + markdown_table(list(times), [[f"{v:.2f}" for v in times.values()]])
    write_result(
        f"foundation-{args.name}",
        {"dataset": dataset.stats(), "notes": dataset.notes, "config": cfg.model_dump(mode="json"),
         "sids": {"meta": catalog.meta, "reference": reference}, "popularity": pop, "seconds": times},
        md,
    )
    print(md)


if __name__ == "__main__":
    main()
