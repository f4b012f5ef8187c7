"""A tiny, randomly initialised, real Hugging Face backbone for tests.

:func:`make_tiny_backbone` writes a ``LlamaForCausalLM`` of a few thousand parameters and a matching fast
tokenizer to a directory with ``save_pretrained``, so every test can exercise the real loading, vocabulary,
training and decoding code paths in well under a second, without downloads.

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

# A small fixed corpus the BPE merges are learned from (recommendation-prompt words).
_WORDS = (
    "the user has bought watched read these items in order recommend next item history title brand category "
    "you are a recommender system what will they buy predict semantic id of and with for to from by on is was "
    "system assistant user science lab tool kit set pack glass steel plastic digital meter tape film movie book "
    "comedy drama action thriller love story new best great good small large black white red blue green pro mini "
    "one two three four five six seven eight nine ten 0 1 2 3 4 5 6 7 8 9"
).split()


def _build_tokenizer(vocab_words: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(SPECIAL_TOKENS) + len(alphabet) + vocab_words,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet,
        show_progress=False,
        min_frequency=1,
    )
    # Every word with and without its leading space (byte-level "Ġ"), a few times so counts are stable.
    corpus = [" ".join(_WORDS)] * 3 + [w for w in _WORDS]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_backbone(
    path: Path,
    vocab_words: int = 64,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    tie_embeddings: bool = True,
) -> Path:
    """Write a tiny random Llama causal LM + fast tokenizer to ``path`` (created; replaced if it exists).

    Args:
        path: target directory.
        vocab_words: BPE merges learned on top of the 256 byte symbols and 3 special tokens
            (vocabulary size = 259 + vocab_words).
        hidden: hidden size (must be divisible by ``heads``); the MLP is ``2 * hidden`` wide.
        layers: decoder layers.
        heads: attention heads; key/value heads are ``heads // 2`` (grouped-query, like SmolLM2) when even.
        seed: initialisation seed (the global torch RNG is left untouched).
        tie_embeddings: tie ``lm_head`` to the input embeddings (SmolLM2 does).

    Returns:
        ``path``, loadable with :func:`pauserec.model.backbone.load_backbone` (``str(path)``).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    path = Path(path)
    tokenizer = _build_tokenizer(vocab_words)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2 if heads % 2 == 0 else heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.02,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return path
