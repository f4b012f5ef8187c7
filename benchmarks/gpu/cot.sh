# Issue 9's comparison on a GPU: the explicit-CoT pipeline (grounding, template + local-teacher rationales) and the
# seed-0 cells of benchmarks/grids/cot-scientific.yaml (direct, pause K=1, cot-template, cot-local), the same budget
# rules as the CPU grid (8 users x 2,280 steps, 2,000 test users). Two calls after setup.sh, each under 10 minutes:
#   STAGE=pipeline bash benchmarks/gpu/cot.sh   # grounding + both rationale sets
#   STAGE=cells    bash benchmarks/gpu/cot.sh   # the four cells in parallel, then the table
# (the machine must stay warm between them: its files are lost when it is handed back). Knobs: GROUND_STEPS (300),
# TEACHER_BATCH (256), CELLS (the four globs), PARALLEL (4), SEEDS ("0"); LOCAL=1 rehearses here with tiny sizes via
# GROUND_STEPS, TRAIN_USERS (training users for rationales and cells), CELL_STEPS, VAL_USERS, EVAL_USERS.
source benchmarks/gpu/env.sh
T0=$(date +%s)
D=$PR/scientific
C=$PR/cot
P=($PY -m pauserec)
SUBSET=(); [ -n "${TRAIN_USERS:-}" ] && SUBSET=(--set train.max_users=$TRAIN_USERS)
if [ "${STAGE:-pipeline}" = pipeline ]; then
  join_gguf
  "${P[@]}" ground "$D" --out "$C/ground" --set train.batch_size=64 --set train.max_steps=${GROUND_STEPS:-300} \
    --set "ground.tasks={item2sid: 2, sid2title: 1, history_titles: 0.2}" --set train.save_total_limit=1 2>&1 | grep -v "it/s\]\|s/it\]" | tail -5
  echo "ground done at $(( $(date +%s) - T0 )) s"
  "${P[@]}" rationales "$D" --out "$C/rationales-template" --set rationale.provider=template "${SUBSET[@]}" | tail -2
  "${P[@]}" rationales "$D" --out "$C/rationales-local" --set rationale.provider=local \
    --set rationale.batch_size=${TEACHER_BATCH:-256} "${SUBSET[@]}" 2>&1 | grep -v "it/s\]\|s/it\]" | tail -3
  echo "rationales done at $(( $(date +%s) - T0 )) s"
  cp "$C"/ground/train_cost.json "$OUT/ground_cost.json"
  cp "$C"/rationales-template/rationale_stats.json "$OUT/rationales_template_stats.json" 2>/dev/null || true
  cp "$C"/rationales-local/rationale_stats.json "$OUT/rationales_local_stats.json" 2>/dev/null || true
  head -c 200000 "$C"/rationales-local/rationales.jsonl > "$OUT/rationales_local_head.jsonl" || true
else
  # the grid with this machine's paths; its budget (set:) is the committed one unless CELL_STEPS/EVAL_USERS shrink it
  sed -e "s#runs/foundation/scientific#$D#" -e "s#runs/cot-full#$C#g" -e "s#^seeds: .*#seeds: [${SEEDS:-0}]#" \
      ${CELL_STEPS:+-e "s#train.max_steps: .*#train.max_steps: $CELL_STEPS#" -e "s#train.eval_every: .*#train.eval_every: $CELL_STEPS#"} \
      ${EVAL_USERS:+-e "s#eval.max_users: .*#eval.max_users: $EVAL_USERS#"} \
      benchmarks/grids/cot-scientific.yaml > "$C/grid.yaml"
  [ -n "${TRAIN_USERS:-}" ] && sed -i "s#^set:#set:\n  train.max_users: $TRAIN_USERS#" "$C/grid.yaml"
  [ -n "${VAL_USERS:-}" ] && sed -i "s#^set:#set:\n  train.val_users: $VAL_USERS#" "$C/grid.yaml"
  read -ra GLOBS <<< "${CELLS:-*/direct/seed0 */pause-k1/seed0 */cot-template/seed0 */cot-local/seed0}"
  CELL_ARGS=(); for g in "${GLOBS[@]}"; do CELL_ARGS+=(--cells "$g"); done
  "${P[@]}" bench "$C/grid.yaml" --out "$C/bench" --parallel ${PARALLEL:-4} "${CELL_ARGS[@]}" \
    --reference direct --reference cot-template 2>&1 | grep -v "it/s\]\|s/it\]\|user/s\]" | tail -20
  cp "$C/grid.yaml" "$C"/bench/table.* "$C"/bench/*.png "$OUT/" || true
  tar czf "$OUT/cot-bench.tar.gz" -C "$C" --exclude=model --exclude=checkpoints bench
fi
ls -la "$OUT"
echo "cot ${STAGE:-pipeline} $(( $(date +%s) - T0 )) s"
