#!/bin/bash
# Time to quality on Scientific: the committed recipe (run by the code it was committed with) against the default
# recipe (8 users per step, 800 steps, lr 5e-4), 3 seeds each, one job at a time on the whole machine, on the same
# validation (300) and test (1,000) users; then the table benchmarks/results/time-to-quality-scientific-lr5e-4.*.
#
#   git worktree add ../ttq-committed 634578b && (cd ../ttq-committed && git cherry-pick 1d5ccd2)  # + resume-safe clock
#   (the cherry-pick conflicts in trainer.py: keep only its clock_at function)
#   bash benchmarks/time_to_quality_side_by_side.sh ../ttq-committed runs/foundation/scientific runs/ttq
#
# ~45-50 min per committed seed and ~30 min per default seed on 2 cores: more than one session. The finished runs'
# light files (config, logs, costs, metrics, predictions; no weights) are kept in $ARCHIVE, committed beside the
# result and refreshed after every run; a later session unpacks it into WORK, reuses those runs and trains only the
# missing ones. Each run resumes from its last checkpoint within a session.
#
# One after the other, not concurrently on one core each: run that way (runs/ttq2, session 4) the committed recipe's
# unpacked batch of 64 slowed from ~5.7 s to ~35 s per step while the packed recipe slowed ~3x, so the ratio measured
# the contention, not the recipes. The lr-1e-3 results (time-to-quality-scientific, -seeds) came from this script as
# of 42e0617.
set -euo pipefail
COMMITTED_CODE=$(cd "$1" && pwd); DATA=$2; WORK=$3
NAME=time-to-quality-scientific-lr5e-4
ARCHIVE=benchmarks/results/$NAME-runs.tar.gz
SHARED=(--set arm.name=direct --set train.val_users=300 --set train.logging_steps=25 --set train.save_total_limit=1
        --set train.eval_every=25 --set eval.max_users=1000)
COMMITTED="train.packing=none train.batch_size=64 train.lr=1e-3 train.max_steps=300 train.warmup_ratio=0.17 model.sid_init=noise"
NEW8U="train.batch_size=8 train.max_steps=800 train.eval_every=50"

archive() {  # every evaluated run's light files, written whole or not at all
  (cd "$WORK" && ls -d */metrics.json | xargs -n1 dirname) | \
    tar czf "$ARCHIVE.tmp" -C "$WORK" --exclude model --exclude checkpoints -T - && mv "$ARCHIVE.tmp" "$ARCHIVE"
}

mkdir -p "$WORK"
if [ -f "$ARCHIVE" ]; then tar xzf "$ARCHIVE" -C "$WORK" --skip-old-files; fi
for SEED in 0 1 2; do  # the committed code names seed S's run committed-sS, as the current script expects
  RUN=committed; OVERRIDES=$COMMITTED
  if [ "$SEED" != 0 ]; then RUN=committed-s$SEED; OVERRIDES="$COMMITTED seed=$SEED eval.subset_seed=0"; fi
  if [ ! -f "$WORK/$RUN/metrics.json" ]; then
    PYTHONPATH="$COMMITTED_CODE/src" .venv/bin/python "$COMMITTED_CODE/benchmarks/time_to_quality.py" "$DATA" \
        --work "$WORK" --recipe "$RUN" "$OVERRIDES" "${SHARED[@]}" --name ttq-committed-only
    archive
  fi
done
rm -f "$COMMITTED_CODE"/benchmarks/results/ttq-committed-only.*
for SEEDS in "0" "0 1" "0 1 2"; do  # one default seed at a time, archived after each
  # shellcheck disable=SC2086
  .venv/bin/python benchmarks/time_to_quality.py "$DATA" --work "$WORK" --recipe committed "$COMMITTED" \
      --recipe new-8u "$NEW8U" --baseline-seeds 0 1 2 --seeds $SEEDS "${SHARED[@]}" --name $NAME
  archive
done
