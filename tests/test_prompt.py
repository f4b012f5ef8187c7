"""The prompt: assembled token ids equal tokenizing the rendered text, on the tiny tokenizer and on SmolLM2's."""

import pytest
from helpers import BACKBONE_FAMILIES, planted_data

from pauserec.model.backbone import load_backbone
from pauserec.model.tiny import make_tiny_backbone
from pauserec.model.vocab import extend_vocabulary
from pauserec.prompt import PromptBuilder


def _histories(dataset):
    return [[], *(seq[:n] for seq in dataset.sequences[:20] for n in (1, 3, len(seq)))]


def _check(tok, dataset, catalog, chatml=True):
    for titles in (False, True):
        builder = PromptBuilder(tok, catalog, dataset, "You are a recommender system.", show_titles=titles)
        assert (builder._head_ids is None) == titles  # the assembled path is the one without titles
        for history in _histories(dataset):
            text = builder.text(history)
            assert builder.ids(history) == tok(text, add_special_tokens=False)["input_ids"]
            assert text.startswith(builder.text([]))  # the history continues the open assistant turn
            for item in history:  # every item's SID is in the prompt, one item per line only with titles
                assert catalog.sid_string(item) in text
            if history:  # this prompt + its target's SID starts the next example's prompt (titles too)
                longer = builder.ids(history[:-1]) + builder.sid_ids(history[-1])
                assert builder.ids(history)[: len(longer)] == longer
    plain = PromptBuilder(tok, catalog, dataset, "sys", show_titles=False)
    assert plain.text([]).endswith("assistant\n") or not chatml
    assert plain.text([0, 1]) == plain.text([]) + catalog.sid_string(0) + catalog.sid_string(1)  # no separator
    # a user's examples are prefixes of one another: the next example's prompt = this prompt + this target's SID
    assert plain.ids([0, 1]) + plain.sid_ids(2) == plain.ids([0, 1, 2])


def test_assembled_ids_equal_tokenized_text_tiny(tmp_path):
    dataset, catalog = planted_data()
    model, tok = load_backbone(str(make_tiny_backbone(tmp_path / "b", hidden=32, layers=1)), tmp_path / "cache")
    extend_vocabulary(model, tok, catalog.all_tokens(), noise_std=0.1, seed=0)
    _check(tok, dataset, catalog)


@pytest.mark.slow
def test_assembled_ids_equal_tokenized_text_smollm2(tmp_path):
    pytest.importorskip("gguf")
    dataset, catalog = planted_data()
    try:
        model, tok = load_backbone("builtin:smollm2-135m", tmp_path / "cache")
    except Exception as e:  # the packaged model is not installed here
        pytest.skip(f"packaged SmolLM2 unavailable: {e}")
    extend_vocabulary(model, tok, catalog.all_tokens(), noise_std=0.1, seed=0)
    _check(tok, dataset, catalog)


def test_a_run_trained_on_another_prompt_layout_is_refused(tmp_path):
    from helpers import make_data_dir

    from pauserec.artifacts import DataDir, RunDir
    from pauserec.config import build_config
    from pauserec.errors import ArtifactMismatchError
    from pauserec.prompt import PROMPT_LAYOUT

    data_dir = make_data_dir(tmp_path / "data", *planted_data())
    data = DataDir(data_dir)
    facts = {"data_dir": str(data_dir), "dataset_hash": data.dataset_hash(),
             "catalog_hash": data.catalog().content_hash()}
    current = RunDir.create(tmp_path / "now", build_config(), prompt_layout=PROMPT_LAYOUT, **facts)
    assert current.data().dataset_hash() == data.dataset_hash()
    old = RunDir.create(tmp_path / "old", build_config(), **facts)  # no layout recorded: trained before layouts
    with pytest.raises(ArtifactMismatchError, match="prompt layout 1"):
        old.data()


@pytest.mark.parametrize("family", BACKBONE_FAMILIES)
def test_every_family_renders_one_prompt_at_training_and_inference(tmp_path, family):
    """Each family's chat template (ChatML, Llama-3 headers with a date, Mistral [INST], Gemma turns without a system
    role, Qwen3's think block, Phi-3): the assembled ids equal the tokenized text, the head holds the system
    message and the instruction, it is the same on another day, and every arm's training sequence starts with the
    prompt its inference prefix starts with."""
    from datetime import date

    from pauserec.arms import CoTArm, DirectArm, PauseArm
    from pauserec.data.split import Example
    from pauserec.model import chat
    from pauserec.prompt import INSTRUCTION

    dataset, catalog = planted_data()
    model, tok = load_backbone(str(make_tiny_backbone(tmp_path / "b", hidden=32, layers=1, family=family)),
                               tmp_path / "cache")
    extend_vocabulary(model, tok, catalog.all_tokens() + ["<pause>", "<think>", "</think>"], noise_std=0.1, seed=0)
    _check(tok, dataset, catalog, chatml=family in ("llama", "qwen2"))
    builder = PromptBuilder(tok, catalog, dataset, "You are a recommender system.", show_titles=False)
    head = builder.text([])
    assert "You are a recommender system." in head and INSTRUCTION in head
    if family == "llama3":
        assert "Today Date: 26 Jul 2024" in head  # pinned, not today's
    if family == "qwen3":
        assert head.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # the empty think block, every time
    chat.DATE_STRING, before = date(2031, 1, 2).strftime("%d %b %Y"), chat.DATE_STRING
    try:
        other_day = PromptBuilder(tok, catalog, dataset, "You are a recommender system.", show_titles=False)
    finally:
        chat.DATE_STRING = before
    assert (other_day.text([]) == head) == (family != "llama3")  # only the date line would move...
    assert PromptBuilder(tok, catalog, dataset, "You are a recommender system.", False).text([]) == head  # ...pinned
    ex = Example(user=0, history=tuple(dataset.sequences[0][:3]), target=dataset.sequences[0][3])
    prompt, sid = builder.ids(ex.history), builder.sid_ids(ex.target)
    for arm in (DirectArm(), PauseArm(2), CoTArm({ex.key: "glass"}, max_tokens=8)):
        arm.bind(tok)
        ids, _ = arm.training_sequence(prompt, sid, ex)
        lead = arm.inference_prefix(prompt)
        assert ids[: len(lead)] == lead and lead[: len(prompt)] == prompt
