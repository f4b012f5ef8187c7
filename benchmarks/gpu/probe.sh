# smoke test of the whole GPU path + throughput of 5 concurrent trainings, on a random SmolLM2-shaped model
source benchmarks/gpu/env.sh
T0=$(date +%s)
$PY benchmarks/gpu/random_model.py "$PR/tok" "$PR/rand"
$PY benchmarks/arms_grid.py "$PR/scientific" --work "$PR/probe" --arms "${ARMS[@]}" --parallel --name probe "${COMMON[@]}" \
  --set model.backbone="$PR/rand" --set train.max_steps=100000 --set train.eval_every=100000 \
  --set train.max_minutes=${PROBE_MIN:-0.5} --set eval.max_users=${PROBE_USERS:-512} 2>&1 | grep -v "it/s\]\|user/s\]" | tail -20 || { tail -30 "$PR"/probe/*.log; exit 1; }
$PY benchmarks/gpu/plan.py measure "$PR/probe" "${PROBE_USERS:-512}" > "$PR/probe.json"
cat "$PR/probe.json"
cp "$PR/probe.json" "$OUT/"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null || true
echo "probe $(( $(date +%s) - T0 )) s"
