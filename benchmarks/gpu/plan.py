"""measure PROBE_DIR USERS -> JSON of rates;  plan PROBE_JSON DEADLINE_S ELAPSED_S -> 'STEPS EVAL_EVERY CAP_MIN'."""
import json
import sys
from pathlib import Path

import yaml


def measure(probe: Path, users: int) -> dict:
    arms = {}
    for d in sorted(p.parent for p in probe.rglob("train_cost.json")):  # the grid's DATASET/ARM/seedN run dirs
        tc = json.loads((d / "train_cost.json").read_text())
        cfg_min = yaml.safe_load((d / "config.yaml").read_text())["train"]["max_minutes"]
        log = json.loads((d / "train_log.json").read_text())
        inf = json.loads((d / "cost.json").read_text())["inference"]
        val_s = [e["eval_val_seconds"] for e in log if "eval_val_seconds" in e]
        arms[d.parent.name] = {
            "steps": tc["steps"], "rate": tc["steps"] / (60 * cfg_min), "startup_s": tc["total_seconds"] - tc["train_seconds"],
            "post_s": tc["train_seconds"] - 60 * cfg_min, "val_s": max(val_s), "decode_s_per_user": inf["seconds"] / users,
            "peak_gb": tc["peak_memory_bytes"] / 1e9,
        }
    n_test = json.loads((probe.parent / "scientific" / "stats.json").read_text())["stats"]["users"]
    return {"arms": arms, "rate": min(a["rate"] for a in arms.values()),
            "startup_s": max(a["startup_s"] for a in arms.values()), "post_s": max(a["post_s"] for a in arms.values()),
            "val_s": max(a["val_s"] for a in arms.values()),
            "eval_s": sum(a["decode_s_per_user"] * n_test + 15 for a in arms.values())}


def plan(m: dict, deadline: float, elapsed: float) -> str:
    per_validation = m["post_s"]  # a validation + a checkpoint save
    train_s = deadline - elapsed - m["startup_s"] - 4 * per_validation - m["eval_s"] - 30
    steps = max(100, int(m["rate"] * train_s) // 100 * 100)
    cap_min = max(1.0, (train_s + 3 * per_validation + 20) / 60)
    return f"{steps} {steps // 4} {cap_min:.2f}"


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        print(json.dumps(measure(Path(sys.argv[2]), int(sys.argv[3])), indent=1))
    else:
        print(plan(json.loads(Path(sys.argv[2]).read_text()), float(sys.argv[3]), float(sys.argv[4])))
