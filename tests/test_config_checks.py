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
