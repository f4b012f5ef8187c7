import pytest

from pauserec.config import build_config, config_from_yaml, config_to_yaml, parse_override
from pauserec.errors import ConfigError


def test_overrides_are_typed():
    cfg = build_config(overrides=["sid.levels=4", "train.lr=1e-4", "eval.ks=[1,10]", "arm.name=direct"])
    assert cfg.sid.levels == 4 and cfg.train.lr == pytest.approx(1e-4) and cfg.eval.ks == [1, 10]
    assert cfg.arm.name == "direct"


def test_unknown_key_and_bad_value_are_clear():
    with pytest.raises(ConfigError, match="sid.levelz|levelz"):
        build_config(overrides=["sid.levelz=4"])
    with pytest.raises(ConfigError, match="pause_tokens"):
        build_config(overrides=["arm.pause_tokens=-1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("nonsense")


def test_yaml_roundtrip(tmp_path):
    cfg = build_config(overrides=["arm.pause_tokens=8"])
    (tmp_path / "c.yaml").write_text(config_to_yaml(cfg))
    assert config_from_yaml(tmp_path / "c.yaml") == cfg


def test_unknown_preset():
    with pytest.raises(ConfigError, match="no preset"):
        build_config("does-not-exist")


def test_old_run_directories_keep_their_users(tmp_path):
    """A config stored before eval.subset_seed had a fixed default says null, which meant the run's seed."""
    old = config_to_yaml(build_config(overrides=["seed=2"])).replace("subset_seed: 0", "subset_seed: null")
    assert "subset_seed: null" in old
    (tmp_path / "c.yaml").write_text(old)
    assert config_from_yaml(tmp_path / "c.yaml").eval.subset_seed == 2
    assert build_config(overrides=["seed=2"]).eval.subset_seed == 0  # new runs: the same users for every seed
