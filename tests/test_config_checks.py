"""Configuration combinations that would silently give wrong numbers are refused."""

import pytest

from pauserec.config import PRESET_DIR, build_config, config_from_yaml, config_to_yaml
from pauserec.errors import ConfigError


def test_fewer_beams_than_the_largest_k_is_refused():
    with pytest.raises(ConfigError, match=r"decode.num_beams=5 is smaller than max\(eval.ks\)=20.*Recall@20"):
        build_config(overrides=["decode.num_beams=5"])
    with pytest.raises(ConfigError, match=r"eval.ks=\[1,5\]"):  # the message names a fix that works
        build_config(overrides=["decode.num_beams=5"])


def test_enough_beams_validate():
    assert build_config(overrides=["decode.num_beams=5", "eval.ks=[1,5]"]).decode.num_beams == 5
    assert build_config(overrides=["decode.num_beams=20"]).eval.ks == [1, 5, 10, 20]


def test_a_stored_config_with_too_few_beams_is_refused(tmp_path):
    cfg = build_config(overrides=["decode.num_beams=5", "eval.ks=[1,5]"])
    text = config_to_yaml(cfg).replace("- 5\n", "- 5\n  - 10\n", 1)
    assert "- 10" in text
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="num_beams"):
        config_from_yaml(tmp_path / "c.yaml")


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_every_packaged_preset_validates(preset):
    cfg = build_config(preset)
    assert cfg.decode.num_beams >= max(cfg.eval.ks)


@pytest.mark.parametrize("loss, normalization", [("level", "vocab"), ("trie", "vocab"), ("trie", "level")])
def test_scores_normalised_beyond_the_loss_are_refused(loss, normalization):
    """A decoder normalising over tokens the loss never trained against scores with untrained logits."""
    with pytest.raises(ConfigError, match=rf"decode.score_normalization={normalization} .* train.loss={loss} ") as e:
        build_config(overrides=[f"train.loss={loss}", f"decode.score_normalization={normalization}"])
    assert "\n" not in str(e.value)  # one line, naming a fix
    fix = "trie" if loss == "trie" else "level or trie"
    assert f"use decode.score_normalization={fix} (or train.loss={normalization})" in str(e.value)


@pytest.mark.parametrize("loss, normalization", [("vocab", "vocab"), ("vocab", "level"), ("vocab", "trie"),
                                                 ("level", "level"), ("level", "trie"), ("trie", "trie")])
def test_scores_normalised_within_the_loss_validate(loss, normalization):
    cfg = build_config(overrides=[f"train.loss={loss}", f"decode.score_normalization={normalization}"])
    assert (cfg.train.loss, cfg.decode.score_normalization) == (loss, normalization)


def test_a_stored_config_with_a_contradicting_loss_is_refused(tmp_path):
    text = config_to_yaml(build_config()).replace("score_normalization: level", "score_normalization: vocab")
    assert "score_normalization: vocab" in text
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="train.loss=level"):
        config_from_yaml(tmp_path / "c.yaml")


@pytest.mark.parametrize("text, message", [
    ("train:\n  max_steps: -3\n", "max_steps"),  # pydantic's own check, as build_config words it
    ("train:\n  no_such_key: 1\n", "no_such_key"),
    ("train: [1, 2\n", "not valid YAML"),
    ("- a list\n", "must be a YAML mapping, got list"),
    ("", "must be a YAML mapping, got an empty file"),
])
def test_bad_stored_config_is_a_config_error_naming_the_file(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        config_from_yaml(tmp_path / "c.yaml")
    assert str(e.value).startswith(f"{tmp_path / 'c.yaml'}: ")
