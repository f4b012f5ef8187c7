"""The arm seam: per-arm configs (a discriminated union on ``arm.name``), what callers ask the arm instead of its
name (served pauses, upstream stages, sweep key), the stage lineage a run records, and no arm-name branching
outside ``arms/``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from pauserec.arms import ARMS, CoTArm, PauseArm, ServedPauses, get_arm, make_arm
from pauserec.artifacts import RunDir
from pauserec.artifacts.lineage import backbone_run, content_hash, upstream_stages
from pauserec.config import (
    ARM_CONFIGS,
    CotArmConfig,
    DirectArmConfig,
    PauseArmConfig,
    build_config,
    config_from_yaml,
    config_to_yaml,
)
from pauserec.errors import ConfigError
from pauserec.eval.pipeline_cost import pipeline_cost
from pauserec.io import write_json

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "pauserec"
ARM_NAMES = {"pause", "cot"}  # "direct" is also a model name (the grid's and the demo's reference), so not listed


# -- no arm-name branching outside arms/ ------------------------------------------------------------------------


def _is_arm_name(node: ast.AST) -> bool:
    """``<anything>.arm.name`` or ``<anything>["arm"]``: an arm's name read from a config or a result row."""
    if isinstance(node, ast.Attribute) and node.attr == "name":
        return isinstance(node.value, ast.Attribute) and node.value.attr == "arm"
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "arm"


def _literal(node: ast.AST, names: set[str] | None = None) -> bool:
    """A string constant (one of ``names`` when given), alone or in a tuple/list/set."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and (names is None or node.value in names)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_literal(e, names) for e in node.elts)


def _branches(node: ast.Compare) -> bool:
    """An arm's name (from a config or a row) compared with a literal, or an arm's name written as a literal in any
    comparison. Membership in the registry (``name in ARMS``) is not a branch on one arm."""
    operands = [node.left, *node.comparators]
    named = any(_is_arm_name(o) for o in operands) and any(_literal(o) for o in operands)
    return named or any(_literal(o, ARM_NAMES) for o in operands)


def arm_branches(source: str) -> list[str]:
    """Comparisons in ``source`` that branch on an arm, each as ``line: code``."""
    return [f"{node.lineno}: {ast.unparse(node)}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Compare) and _branches(node)]


def test_nothing_outside_arms_branches_on_the_arm():
    outside = [p for p in SRC.rglob("*.py") if "arms" not in p.relative_to(SRC).parts]
    hits = [f"{p.relative_to(ROOT)}:{hit}" for p in outside for hit in arm_branches(p.read_text(encoding="utf-8"))]
    assert outside and not hits, hits


def test_the_branch_finder_finds_branches():
    """The check above can fail: it sees the kinds of comparison main had (service, pipeline cost, grid, analysis)."""
    source = ('a = cfg.arm.name == "pause"\nb = row["arm"] != "cot"\nc = base in ("pause",)\n'
              'd = cfg.arm.name == "direct"\ne = cfg.model.name == "x"\nf = row["arm"] in ARMS\n')
    assert [h.split(": ", 1)[1] for h in arm_branches(source)] == [
        "cfg.arm.name == 'pause'", "row['arm'] != 'cot'", "base in ('pause',)", "cfg.arm.name == 'direct'"]


# -- per-arm configs --------------------------------------------------------------------------------------------


def test_every_arm_has_a_config_and_a_class():
    assert set(ARMS) == set(ARM_CONFIGS)
    for name, arm in ARMS.items():
        assert arm.name == name and get_arm(name) is arm
        assert isinstance(make_arm(build_config(overrides=[f"arm.name={name}"])), arm)
    with pytest.raises(ConfigError, match="unknown arm 'nope'"):
        get_arm("nope")


@pytest.mark.parametrize("name, cls", [("direct", DirectArmConfig), ("pause", PauseArmConfig), ("cot", CotArmConfig)])
def test_each_arm_gets_its_own_config(name, cls):
    cfg = build_config(overrides=[f"arm.name={name}"])
    assert type(cfg.arm) is cls and set(cfg.model_dump()["arm"]) == set(cls.model_fields)


def test_the_default_arm_is_pause_and_takes_its_settings_without_a_name():
    cfg = build_config(overrides=["arm.pause_tokens=4"])
    assert isinstance(cfg.arm, PauseArmConfig) and cfg.arm.pause_tokens == 4
    assert isinstance(build_config().arm, PauseArmConfig)


@pytest.mark.parametrize("overrides, message", [
    (["arm.name=direct", "arm.pause_tokens=4"],
     "arm.pause_tokens is a setting of the pause arm, not of arm.name=direct (which takes show_titles): set "
     "arm.name=pause or drop arm.pause_tokens"),
    (["arm.rationales=somewhere"], "arm.rationales is a setting of the cot arm, not of arm.name=pause"),
    (["arm.name=cot", "arm.distinct_pauses=true"], "arm.distinct_pauses is a setting of the pause arm"),
    (["arm.name=pause", "arm.no_such=1"], "arm.no_such is not a setting of any arm (arm.name=pause takes "
                                          "distinct_pauses, inference_pause_tokens, pause_placement, pause_tokens, "
                                          "show_titles)"),
    (["arm.name=nope"], "arm.name=nope is not an arm (arms: direct, pause, cot)"),
])
def test_a_setting_of_another_arm_is_one_clear_line(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_config(overrides=overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_switching_the_arm_by_override_drops_the_other_arms_settings():
    """What the demo, `train --resume --set` and `eval --set` do: a stored config, then arm.name=..."""
    pause = build_config(overrides=["arm.pause_tokens=4", "arm.show_titles=true"])
    direct = build_config(base=pause.model_dump(), overrides=["arm.name=direct"])
    assert direct.arm == DirectArmConfig(show_titles=True)  # the shared setting is kept
    cot = build_config(base=direct.model_dump(), overrides=["arm.name=cot", "arm.rationales=R"])
    assert isinstance(cot.arm, CotArmConfig) and cot.arm.rationales == "R"
    back = build_config(base=cot.model_dump(), overrides=["arm.name=pause", "arm.pause_tokens=2"])
    assert back.arm == PauseArmConfig(pause_tokens=2, show_titles=True)
    same = build_config(base=pause.model_dump(), overrides=["arm.name=pause"])  # no switch: nothing dropped
    assert same.arm.pause_tokens == 4


def test_a_preset_arm_is_switched_too(tmp_path):
    (tmp_path / "p.yaml").write_text("arm: {name: pause, pause_tokens: 8}\n")
    assert build_config(str(tmp_path / "p.yaml"), ["arm.name=direct"]).arm == DirectArmConfig()
    with pytest.raises(ConfigError, match="arm.pause_tokens is a setting of the pause arm"):
        build_config(str(tmp_path / "p.yaml"), ["arm.name=direct", "arm.pause_tokens=2"])


@pytest.mark.parametrize("name", ["direct", "pause", "cot"])
def test_yaml_round_trip_per_arm(tmp_path, name):
    cfg = build_config(overrides=[f"arm.name={name}", "seed=3"])
    (tmp_path / "c.yaml").write_text(config_to_yaml(cfg))
    assert config_from_yaml(tmp_path / "c.yaml") == cfg


COMMITTED = sorted((ROOT / "benchmarks" / "cells").rglob("config.yaml"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT / "benchmarks" / "cells")))
def test_committed_run_configs_still_load(path):
    """Stored before the per-arm configs: a flat arm section with every arm's fields, whatever the name."""
    import yaml

    flat = yaml.safe_load(path.read_text())["arm"]
    cfg = config_from_yaml(path)
    assert cfg.arm.name == flat["name"] and cfg.arm.show_titles == flat["show_titles"]
    assert set(cfg.model_dump()["arm"]) == set(ARM_CONFIGS[flat["name"]].model_fields)
    if cfg.arm.name == "pause":
        assert cfg.arm.pause_tokens == flat["pause_tokens"]


def test_some_committed_configs_are_direct_and_pause():
    assert len(COMMITTED) >= 6
    assert {config_from_yaml(p).arm.name for p in COMMITTED} >= {"direct", "pause"}


@pytest.mark.parametrize("layout", ["with cot fields", "before the cot arm"])
def test_old_flat_arm_sections_load(tmp_path, layout):
    flat = {"name": "direct", "pause_tokens": 4, "inference_pause_tokens": None, "distinct_pauses": False,
            "pause_placement": "before_sid", "show_titles": True}
    if layout == "with cot fields":
        flat |= {"rationales": None, "max_rationale_tokens": 48, "rationale_samples": 1, "rationale_temperature": 0.0}
    tree = build_config().model_dump(mode="json") | {"arm": flat}
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    assert config_from_yaml(tmp_path / "c.yaml").arm == DirectArmConfig(show_titles=True)
    cot = tree | {"arm": {**flat, "name": "cot", "rationales": "R"}} if layout == "with cot fields" else None
    if cot is not None:
        (tmp_path / "cot.yaml").write_text(yaml.safe_dump(cot))
        assert config_from_yaml(tmp_path / "cot.yaml").arm == CotArmConfig(rationales="R", show_titles=True)


def test_a_stored_config_with_a_foreign_setting_names_the_file(tmp_path):
    text = config_to_yaml(build_config(overrides=["arm.name=direct"])).replace(
        "arm:\n  show_titles: false\n", "arm:\n  show_titles: false\n  pause_tokens: 4\n")
    assert "pause_tokens: 4" in text
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        config_from_yaml(tmp_path / "c.yaml")
    assert str(e.value).startswith(f"{tmp_path / 'c.yaml'}: arm.pause_tokens is a setting of the pause arm")


# -- what callers ask the arm ---------------------------------------------------------------------------------


def test_served_pauses_come_from_the_arm():
    assert get_arm("direct").served_pauses(DirectArmConfig(), cap=64) is None
    assert get_arm("cot").served_pauses(CotArmConfig(), cap=64) is None
    assert PauseArm.served_pauses(PauseArmConfig(pause_tokens=3), cap=64) == ServedPauses(default=3, maximum=64)
    distinct = PauseArmConfig(pause_tokens=3, distinct_pauses=True, inference_pause_tokens=1)
    assert PauseArm.served_pauses(distinct, cap=64) == ServedPauses(default=1, maximum=3)
    assert PauseArm.with_pauses(distinct, 2).inference_pause_tokens == 2
    with pytest.raises(ValueError, match="no pause tokens"):
        get_arm("direct").with_pauses(DirectArmConfig(), 2)


def test_sweep_keys_and_upstream_stages_come_from_the_arm():
    assert {name: arm.sweep_key for name, arm in ARMS.items()} == {"direct": None, "pause": "pause_tokens",
                                                                   "cot": None}
    assert PauseArm.sweep(4) == ["arm.pause_tokens=4"]
    assert CoTArm.upstream_stages(CotArmConfig(rationales="R")) == {"rationales": "R"}
    assert CoTArm.upstream_stages(CotArmConfig()) == {} and PauseArm.upstream_stages(PauseArmConfig()) == {}


def test_the_cot_arm_samples_with_the_runs_seed():
    """make_arm hands the run's seed to the arm; the decoding test is in test_cot.py."""
    class Vocab:
        def get_vocab(self):
            return {"<think>": 1, "</think>": 2}

    for seed in (0, 7):
        cfg = build_config(overrides=["arm.name=cot", "arm.rationale_temperature=1.0", f"seed={seed}"])
        assert make_arm(cfg).bind(Vocab()).thinking().seed == seed


# -- stage lineage --------------------------------------------------------------------------------------------


def _trained_run(path: Path, cfg, kind: str, seconds: float) -> RunDir:
    run = RunDir.create(path, cfg, kind=kind)
    (path / "model").mkdir()
    (path / "model" / "weights.bin").write_bytes(b"weights of " + path.name.encode())
    write_json(path / "train_cost.json", {"train_seconds": seconds, "real_tokens": 10, "device": "cpu"})
    return run


def _rationales(path: Path, seconds: float) -> Path:
    path.mkdir()
    (path / "rationales.jsonl").write_text('{"key": "0:1", "text": "t", "status": "ok"}\n')
    write_json(path / "cost.json", {"seconds": seconds})
    return path


def test_lineage_records_the_backbone_run_and_the_arms_stages_with_hashes(tmp_path):
    ground = _trained_run(tmp_path / "ground", build_config(), "ground", 5.0)
    rat = _rationales(tmp_path / "rat", 2.0)
    records = upstream_stages(str(ground.file("model")), {"rationales": str(rat)})
    assert [r["stage"] for r in records] == ["backbone", "rationales"]
    assert records[0]["run"] == str(ground.path.resolve()) and records[1]["path"] == str(rat.resolve())
    assert records[0]["sha256"] == content_hash(ground.file("model")) and len(records[1]["sha256"]) == 64
    before = records[1]["sha256"]
    (rat / "rationales.jsonl").write_text('{"key": "0:1", "text": "other", "status": "ok"}\n')
    assert content_hash(rat) != before  # a changed upstream artifact shows
    assert backbone_run("builtin:smollm2-135m") is None and backbone_run(str(rat)) is None
    assert upstream_stages("builtin:smollm2-135m", {}) == []


def test_pipeline_cost_follows_the_recorded_lineage(tmp_path):
    ground = _trained_run(tmp_path / "ground", build_config(), "ground", 5.0)
    rat = _rationales(tmp_path / "rat", 2.0)
    # the config names a backbone that is no run's model: only the recorded lineage knows where it came from
    cfg = build_config(overrides=["arm.name=cot", f"arm.rationales={rat}", "model.backbone=elsewhere/weights"])
    cot = _trained_run(tmp_path / "cot", cfg, "train:cot", 3.0)
    cot.record_lineage(upstream_stages(str(ground.file("model")), {"rationales": str(rat)}))
    assert json.loads(cot.file("lineage.json").read_text())["upstream"] == cot.lineage()
    cost = pipeline_cost(cot.path)
    assert [s["stage"] for s in cost["stages"]] == ["ground", "rationales", "train:cot"]
    assert cost["seconds"] == pytest.approx(10.0)


def test_pipeline_cost_of_a_run_without_lineage_infers_it_from_its_config(tmp_path):
    ground = _trained_run(tmp_path / "ground", build_config(), "ground", 5.0)
    rat = _rationales(tmp_path / "rat", 2.0)
    cfg = build_config(overrides=["arm.name=cot", f"arm.rationales={rat}", f"model.backbone={ground.file('model')}"])
    cot = _trained_run(tmp_path / "cot", cfg, "train:cot", 3.0)
    assert cot.lineage() is None
    assert [s["stage"] for s in pipeline_cost(cot.path)["stages"]] == ["ground", "rationales", "train:cot"]
    pause = pipeline_cost(_trained_run(tmp_path / "pause", build_config(), "train:pause", 4.0).path)
    assert [s["stage"] for s in pause["stages"]] == ["train:pause"] and pause["seconds"] == 4.0
