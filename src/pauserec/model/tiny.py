"""A tiny, randomly initialised, real Hugging Face backbone for tests.

:func:`make_tiny_backbone` writes a causal LM of a few thousand parameters and a matching fast tokenizer to a
directory with ``save_pretrained``, so every test can exercise the real loading, vocabulary, training and decoding
code paths in well under a second, without downloads.

``family`` picks the architecture and the chat template (:data:`FAMILIES`): the default ``"llama"`` is the
SmolLM2 layout below; ``"llama3"`` (Llama-3 header tokens, the Llama-3.2 template with its date line), ``"qwen2"``
(qkv bias, Qwen2.5's ChatML), ``"qwen3"`` (q/k norms, ChatML with Qwen3's ``<think>`` block), ``"mistral"``
(sliding window, ``[INST]`` turns with the system message folded into the last user turn), ``"gemma2"`` (logit and
attention soft-caps, alternating sliding layers, Gemma turns that refuse a system role), ``"gemma3"``
(``Gemma3ForCausalLM``, q/k norms, sliding and full layers, Gemma turns with the system message folded into the first
user turn) and ``"phi3"`` (fused qkv / gate-up projections, ``<|user|>`` / ``<|assistant|>`` / ``<|end|>``). Their
templates are written here after the released ones (tool calling and multimodal content left out), so the prompt
layout can be tested on each family's way of rendering a conversation.

The tokenizer mirrors SmolLM2's: byte-level BPE (every string encodes, decoding round-trips exactly), the special
tokens ``<|endoftext|>`` (id 0, unk), ``<|im_start|>`` (id 1, bos) and ``<|im_end|>`` (id 2, eos and pad), and
SmolLM2's ChatML chat template (with its default system message), so
``apply_chat_template(messages, add_generation_prompt=True)`` works exactly as it does with the real backbone.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_directory

import torch


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

#: SmolLM2-135M-Instruct's chat template, verbatim (read from the packaged GGUF).
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

#: Llama-3.2-Instruct's template (tools left out): a "Today Date" line from ``strftime_now`` unless ``date_string`` is
#: passed, so two renderings on different days differ (the prompt builder pins the date).
LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- else %}{%- set date_string = \"26 Jul 2024\" %}"
    "{%- endif %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}"
    "{{- system_message }}{{- \"<|eot_id|>\" }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

#: Qwen2.5-Instruct's ChatML (tools left out), with its default system message.
QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Qwen3's ChatML (tools left out): an assistant turn after the last user query is written with a ``<think>`` block
#: (empty when the message has no reasoning), and ``enable_thinking=False`` writes the empty block after the
#: generation prompt.
QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == \"user\" and message.content is string and "
    "not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}"
    "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.content is string %}{%- set content = message.content %}{%- else %}{%- set content = '' %}{%- endif %}"
    "{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == \"assistant\" %}"
    "{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}"
    "{%- else %}{%- if '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}"
    "{%- if loop.last or (not loop.last and reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

#: Mistral-7B-Instruct-v0.3's template: no system turn; the system message goes into the *last* user turn only.
MISTRAL_TEMPLATE = (
    "{%- if messages[0][\"role\"] == \"system\" %}{%- set system_message = messages[0][\"content\"] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message[\"role\"] == \"user\") != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception(\"After the optional system message, conversation roles must alternate user/assistant/user/assistant/...\") }}"
    "{%- endif %}"
    "{%- if message[\"role\"] == \"user\" %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}"
    "{%- else %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- endif %}"
    "{%- elif message[\"role\"] == \"assistant\" %}{{- \" \" + message[\"content\"]|trim + eos_token }}"
    "{%- else %}{{- raise_exception(\"Only user and assistant roles are supported, with the exception of an initial optional system message!\") }}"
    "{%- endif %}"
    "{%- endfor %}"
)

#: Gemma-2-it's template: a system message is an error.
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

#: Gemma-3-it's template (text content only): the system message opens the first user turn.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"
)

#: Phi-3-mini-instruct's template: eos after the last turn unless a generation prompt is asked for.
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)


def _tok(unk=None, bos=None, eos=None, pad=None) -> dict:
    names = {"unk_token": unk, "bos_token": bos, "eos_token": eos, "pad_token": pad}
    return {k: v for k, v in names.items() if v is not None}


#: family -> the model class and config (in ``transformers``), the tokenizer's special tokens (ids 0.. in this
#: order), which of them play which role (a family without a pad token gets eos from ``load_backbone``, as Llama-3
#: does), the chat template, and the family's own config fields at tiny size.
FAMILIES: dict[str, dict] = {
    "llama": dict(config="LlamaConfig", model="LlamaForCausalLM", special=SPECIAL_TOKENS,
                  tokens=_tok("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_end|>"), template=CHATML_TEMPLATE,
                  extra={}),
    "llama3": dict(config="LlamaConfig", model="LlamaForCausalLM",
                   special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>"],
                   tokens=_tok(bos="<|begin_of_text|>", eos="<|eot_id|>"), template=LLAMA3_TEMPLATE,
                   extra=dict(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 64})),
    "qwen2": dict(config="Qwen2Config", model="Qwen2ForCausalLM", special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                  tokens=_tok(eos="<|im_end|>", pad="<|endoftext|>"), template=QWEN2_TEMPLATE, extra={}),
    "qwen3": dict(config="Qwen3Config", model="Qwen3ForCausalLM",
                  special=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
                  tokens=_tok(eos="<|im_end|>", pad="<|endoftext|>"), template=QWEN3_TEMPLATE, extra=dict(head_dim=8)),
    "mistral": dict(config="MistralConfig", model="MistralForCausalLM", special=["<unk>", "<s>", "</s>"],
                    tokens=_tok("<unk>", "<s>", "</s>"), template=MISTRAL_TEMPLATE, extra=dict(sliding_window=16)),
    "gemma2": dict(config="Gemma2Config", model="Gemma2ForCausalLM",
                   special=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
                   tokens=_tok("<unk>", "<bos>", "<eos>", "<pad>"), template=GEMMA2_TEMPLATE,
                   extra=dict(head_dim=8, sliding_window=16, final_logit_softcapping=2.0, attn_logit_softcapping=5.0,
                              query_pre_attn_scalar=8)),
    "gemma3": dict(config="Gemma3TextConfig", model="Gemma3ForCausalLM",
                   special=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
                   tokens=_tok("<unk>", "<bos>", "<eos>", "<pad>"), template=GEMMA3_TEMPLATE,
                   extra=dict(head_dim=8, sliding_window=16, query_pre_attn_scalar=8,
                              layer_types=["sliding_attention", "full_attention"])),
    "phi3": dict(config="Phi3Config", model="Phi3ForCausalLM",
                 special=["<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
                 tokens=_tok("<unk>", "<s>", "<|endoftext|>", "<|endoftext|>"), template=PHI3_TEMPLATE,
                 extra=dict(original_max_position_embeddings=2048)),
}

# A small fixed corpus the BPE merges are learned from (recommendation-prompt words).
_WORDS = (
    "the user has bought watched read these items in order recommend next item history title brand category "
    "you are a recommender system what will they buy predict semantic id of and with for to from by on is was "
    "system assistant user science lab tool kit set pack glass steel plastic digital meter tape film movie book "
    "comedy drama action thriller love story new best great good small large black white red blue green pro mini "
    "one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9"
).split()


def _build_tokenizer(vocab_words: int, family: str = "llama"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[family]
    special = spec["special"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(special) + len(alphabet) + vocab_words,
        special_tokens=special,
        initial_alphabet=alphabet,
        show_progress=False,
        min_frequency=1,
    )
    # Every word with and without its leading space (byte-level "Ġ"), a few times so counts are stable.
    corpus = [" ".join(_WORDS)] * 3 + [w for w in _WORDS]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **spec["tokens"],
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    fast.chat_template = spec["template"]
    return fast


def make_tiny_backbone(
    path: Path,
    vocab_words: int = 64,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    tie_embeddings: bool = True,
    family: str = "llama",
) -> Path:
    """Write a tiny random causal LM + fast tokenizer to ``path`` (created; replaced if it exists).

    Args:
        path: target directory.
        vocab_words: BPE merges learned on top of the 256 byte symbols and the family's special tokens
            (vocabulary size = 256 + len(special tokens) + vocab_words; 259 + vocab_words for ``"llama"``).
        hidden: hidden size (must be divisible by ``heads``); the MLP is ``2 * hidden`` wide.
        layers: decoder layers.
        heads: attention heads; key/value heads are ``heads // 2`` (grouped-query, like SmolLM2) when even.
        seed: initialisation seed (the global torch RNG is left untouched).
        tie_embeddings: tie ``lm_head`` to the input embeddings (SmolLM2 does).
        family: a key of :data:`FAMILIES` (architecture, special tokens, chat template).

    Returns:
        ``path``, loadable with :func:`pauserec.model.backbone.load_backbone` (``str(path)``).
    """
    import transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    spec = FAMILIES[family]
    path = Path(path)
    tokenizer = _build_tokenizer(vocab_words, family)
    extra = dict(spec["extra"])
    if "head_dim" in extra:
        extra["head_dim"] = hidden // heads
    if "query_pre_attn_scalar" in extra:
        extra["query_pre_attn_scalar"] = hidden // heads
    if family == "gemma3":
        extra["layer_types"] = [("full_attention" if (i + 1) % 2 == 0 else "sliding_attention") for i in range(layers)]
    config = getattr(transformers, spec["config"])(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2 if heads % 2 == 0 else heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5 if family == "llama" else 1e-6,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.02,
        **extra,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, spec["model"])(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path
