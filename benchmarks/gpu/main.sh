# the K grid on Scientific with the real SmolLM2, sized from the probe to end by $DEADLINE seconds after start
source benchmarks/gpu/env.sh
T0=$(date +%s)
join_gguf
$PY -c "from pauserec.model.backbone import resolve_backbone; print(resolve_backbone('builtin:smollm2-135m', '$PR/cache'))"
read STEPS EVAL CAP < <($PY benchmarks/gpu/plan.py plan "$PR/probe.json" "${DEADLINE:-540}" $(( $(date +%s) - T0 )))
STEPS=${FORCE_STEPS:-$STEPS}; EVAL=${FORCE_EVAL:-$EVAL}; CAP=${FORCE_CAP:-$CAP}
echo "plan: steps=$STEPS eval_every=$EVAL cap_min=$CAP (after $(( $(date +%s) - T0 )) s)"
$PY benchmarks/arms_grid.py "$PR/scientific" --work "$PR/grid" --arms "${ARMS[@]}" --parallel --name "${NAME:-arms-grid-scientific-gpu}" \
  "${COMMON[@]}" --set train.max_steps=$STEPS --set train.eval_every=$EVAL --set train.max_minutes=$CAP 2>&1 \
  | grep -v "it/s\]\|user/s\]" | tail -25 || { tail -c 3000 "$PR"/grid/*.log; }
cp benchmarks/results/"${NAME:-arms-grid-scientific-gpu}".* "$OUT/" || true
tar czf "$OUT/grid.tar.gz" -C "$PR" --exclude=model --exclude=checkpoints grid probe.json
ls -la "$OUT"
echo "main $(( $(date +%s) - T0 )) s"
