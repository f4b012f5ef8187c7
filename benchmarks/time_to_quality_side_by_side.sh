#!/bin/bash
# Time to quality on Scientific: the committed recipe (run by the code it was committed with) and the current
# default recipe, concurrently, one core each, on the same validation (300) and test (1,000) users; then the table.
#
#   git worktree add ../ttq-committed 634578b && (cd ../ttq-committed && git cherry-pick 1d5ccd2)  # + resume-safe clock
#   bash benchmarks/time_to_quality_side_by_side.sh ../ttq-committed runs/foundation/scientific runs/ttq2
#
# Resumable: rerun the same command after an interruption (each recipe resumes from its last checkpoint with its own
# code, and its training clock goes on from there). The last step writes benchmarks/results/time-to-quality-scientific.*
set -euo pipefail
COMMITTED_CODE=$(cd "$1" && pwd); DATA=$2; WORK=$3
SHARED=(--set arm.name=direct --set train.val_users=300 --set train.logging_steps=25 --set train.save_total_limit=1
        --set eval.max_users=1000)
COMMITTED="train.packing=none train.batch_size=64 train.lr=1e-3 train.max_steps=300 train.warmup_ratio=0.17 model.sid_init=noise train.eval_every=50"
NEW="train.max_steps=400 train.eval_every=50"
mkdir -p "$WORK"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTHONPATH="$COMMITTED_CODE/src" .venv/bin/python "$COMMITTED_CODE/benchmarks/time_to_quality.py" "$DATA" --work "$WORK" \
    --recipe committed "$COMMITTED" "${SHARED[@]}" --name ttq-committed-only > "$WORK/committed.log" 2>&1 &
.venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe new "$NEW" "${SHARED[@]}" \
    --name ttq-new-only > "$WORK/new.log" 2>&1 &
wait
rm -f benchmarks/results/ttq-new-only.* "$COMMITTED_CODE"/benchmarks/results/ttq-committed-only.*
unset OMP_NUM_THREADS MKL_NUM_THREADS
.venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe committed "$COMMITTED" --recipe new "$NEW" \
    "${SHARED[@]}" --name time-to-quality-scientific
