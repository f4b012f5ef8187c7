#!/bin/bash
# Time to quality on Scientific: the committed recipe (run by the code it was committed with) and the current
# default recipe, one after the other on the whole machine, on the same validation (300) and test (1,000) users;
# then the table.
#
#   git worktree add ../ttq-committed 634578b && (cd ../ttq-committed && git cherry-pick 1d5ccd2)  # + resume-safe clock
#   bash benchmarks/time_to_quality_side_by_side.sh ../ttq-committed runs/foundation/scientific runs/ttq3
#
# One after the other, not concurrently on one core each: run that way (runs/ttq2, session 4) the committed recipe's
# unpacked batch of 64 slowed from ~5.7 s to ~35 s per step while the packed recipe slowed ~3x, so the ratio measured
# the contention, not the recipes.
#
# Resumable: rerun the same command after an interruption (each recipe resumes from its last checkpoint with its own
# code, and its training clock goes on from there). The last two steps write benchmarks/results/time-to-quality-scientific.*
# (one seed per recipe) and benchmarks/results/time-to-quality-scientific-seeds.* (8 users per step, 3 seeds).
set -euo pipefail
COMMITTED_CODE=$(cd "$1" && pwd); DATA=$2; WORK=$3
SHARED=(--set arm.name=direct --set train.val_users=300 --set train.logging_steps=25 --set train.save_total_limit=1
        --set train.eval_every=25 --set eval.max_users=1000)
COMMITTED="train.packing=none train.batch_size=64 train.lr=1e-3 train.max_steps=300 train.warmup_ratio=0.17 model.sid_init=noise"
NEW="train.max_steps=400"
NEW300="train.max_steps=300"  # the same recipe on a shorter schedule (added after seeing NEW's curve)
NEW8U="train.batch_size=8 train.max_steps=800 train.eval_every=50"  # half the users per step, twice the steps, 3 seeds
# new-greedy-rows: NEW as trained by 60b0668, before rows were balanced (pack_balanced); its run directory is reused
# when present (the table gives each row's git revision), else this trains it with balanced rows like NEW.
mkdir -p "$WORK"
PYTHONPATH="$COMMITTED_CODE/src" .venv/bin/python "$COMMITTED_CODE/benchmarks/time_to_quality.py" "$DATA" --work "$WORK" \
    --recipe committed "$COMMITTED" "${SHARED[@]}" --name ttq-committed-only 2>&1 | tee "$WORK/committed.log"
.venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe new "$NEW" --recipe new-300 "$NEW300" \
    --recipe new-greedy-rows "$NEW" "${SHARED[@]}" --name ttq-new-only 2>&1 | tee "$WORK/new.log"
rm -f benchmarks/results/ttq-new-only.* "$COMMITTED_CODE"/benchmarks/results/ttq-committed-only.*
.venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe committed "$COMMITTED" --recipe new "$NEW" \
    --recipe new-300 "$NEW300" --recipe new-greedy-rows "$NEW" "${SHARED[@]}" --name time-to-quality-scientific
.venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe committed "$COMMITTED" \
    --recipe new-8u "$NEW8U" --seeds 0 1 2 "${SHARED[@]}" --name time-to-quality-scientific-seeds
