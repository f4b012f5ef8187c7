"""Crash, resume and determinism on a tiny random backbone (CPU, one thread).

* A training killed with SIGKILL after a checkpoint and resumed ends with bit-identical weights, metrics and
  predictions to an uninterrupted run of the same seed, also where the resumed run crosses an epoch boundary.
* Two runs of one config and seed write byte-identical ``predictions.jsonl`` and ``metrics.json``.
* A changed dataset, SID catalogue or tokenizer is refused by content hash.
* A kill at any moment leaves every artifact old or new, never torn.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import make_data_dir, planted_data, random_codes
from safetensors.torch import load_file

from pauserec.config import build_config, config_to_yaml
from pauserec.errors import ArtifactMismatchError
from pauserec.eval.run_eval import evaluate_run
from pauserec.model.tiny import make_tiny_backbone
from pauserec.sid.catalog import SIDCatalog
from pauserec.train.run import train
from pauserec.train.trainer import CHECKPOINT_COMPLETE

HERE = Path(__file__).resolve().parent
STEPS, EVERY, STALL_AT = 12, 4, 6
# 20 users = 20 training units (prefix_tree packing, one user's examples each), 4 a step: 5 steps an epoch (steps
# 1-5, 6-10, 11-12), so checkpoint-4 lies inside the first epoch and checkpoint-8 inside the second
EPOCH_USERS, STEPS_PER_EPOCH = 20, 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    # the killed child runs single-threaded; so must the runs it is compared with (conftest sets it for the suite)
    assert torch.get_num_threads() == 1
    root = tmp_path_factory.mktemp("crash")
    data_dir = make_data_dir(root / "data", *planted_data(n_items=32, n_users=60))
    backbone = make_tiny_backbone(root / "backbone", hidden=32, layers=1)
    return root, data_dir, backbone


def config(root: Path, backbone: Path, seed: int = 0):
    return build_config(overrides=[
        f"model.backbone={backbone}", f"cache_dir={root / 'cache'}", f"seed={seed}", f"train.max_steps={STEPS}",
        f"train.eval_every={EVERY}", "train.batch_size=4", "train.lr=0.003", "train.val_users=20",
        "train.logging_steps=2", "train.bf16=false", "decode.num_beams=5", "eval.ks=[1,5]", "eval.bootstrap=20",
    ])


def train_and_evaluate(cfg, data_dir: Path, run_dir: Path) -> Path:
    train(cfg, data_dir, run_dir)
    evaluate_run(run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def reference(setup):
    root, data_dir, backbone = setup
    return train_and_evaluate(config(root, backbone), data_dir, root / "reference")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model" / "model.safetensors")


def same_artifacts(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for name in ("metrics.json", "predictions.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def kill_mid_run(cfg, data_dir: Path, run_dir: Path, stall_at: int = STALL_AT) -> None:
    """Train in a child process, SIGKILL it at step ``stall_at`` (STALL_AT: checkpoint-EVERY written, the next not
    yet)."""
    run_dir.mkdir(parents=True)
    (run_dir.parent / "crash.yaml").write_text(config_to_yaml(cfg))
    ready = run_dir.parent / "ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_child.py"), str(run_dir.parent / "crash.yaml"), str(data_dir),
         str(run_dir), str(stall_at), str(ready)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the child never reached the stall step"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()


def test_killed_training_resumes_to_identical_weights_and_metrics(setup, reference):
    root, data_dir, backbone = setup
    run_dir = root / "killed" / "run"
    cfg = config(root, backbone)
    kill_mid_run(cfg, data_dir, run_dir)

    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / f"checkpoint-{EVERY}" / CHECKPOINT_COMPLETE).exists()
    assert not (checkpoints / f"checkpoint-{2 * EVERY}").exists() and not (run_dir / "model").exists()
    # what a kill in the middle of the next save leaves: a checkpoint directory without its completion marker
    torn = checkpoints / f"checkpoint-{STALL_AT}"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\0" * 100)

    cost = train(cfg, data_dir, run_dir, resume=True)
    assert cost["steps"] == STEPS
    assert not torn.exists()  # the torn checkpoint was set aside, not resumed from
    evaluate_run(run_dir, progress=False)
    same_artifacts(reference, run_dir)

    log = json.loads((run_dir / "train_log.json").read_text())
    ref_log = json.loads((reference / "train_log.json").read_text())
    recall = [(e["step"], e["eval_recall@10"]) for e in log if "eval_recall@10" in e]
    assert recall == [(e["step"], e["eval_recall@10"]) for e in ref_log if "eval_recall@10" in e]
    assert [s for s, _ in recall] == [4, 8, 12]


def logged(run_dir: Path, key: str) -> list[tuple[int, float, float]]:
    """``(step, epoch, value)`` of every train_log.json entry holding ``key``."""
    return [(e["step"], e["epoch"], e[key]) for e in json.loads((run_dir / "train_log.json").read_text()) if key in e]


@pytest.fixture(scope="module")
def short_epochs(setup):
    """A data directory of EPOCH_USERS users and an uninterrupted run on it, evaluated."""
    root, _, backbone = setup
    data_dir = make_data_dir(root / "data-short-epochs", *planted_data(n_items=32, n_users=EPOCH_USERS))
    return data_dir, train_and_evaluate(config(root, backbone), data_dir, root / "reference-short-epochs")


@pytest.mark.parametrize("checkpoint", [EVERY, 2 * EVERY], ids=["from-epoch-1", "from-epoch-2"])
def test_training_resumed_across_an_epoch_boundary_is_bit_identical(setup, short_epochs, checkpoint):
    """Killed after ``checkpoint`` (inside epoch 1, or inside epoch 2: the epoch itself must be restored), the resumed
    run crosses one or two epoch boundaries and still ends with the uninterrupted run's weights, log and metrics."""
    root, _, backbone = setup
    data_dir, reference = short_epochs
    epoch_at = {step: epoch for step, epoch, _ in logged(reference, "loss")}
    assert [epoch_at[s] for s in (EVERY, 2 * EVERY, STEPS)] == [s / STEPS_PER_EPOCH for s in (EVERY, 2 * EVERY, STEPS)]
    assert int(epoch_at[checkpoint]) < int(epoch_at[STEPS])  # what is left after the checkpoint crosses a boundary

    run_dir = root / f"killed-short-epochs-{checkpoint}" / "run"
    cfg = config(root, backbone)
    kill_mid_run(cfg, data_dir, run_dir, stall_at=checkpoint + 2)
    assert (run_dir / "checkpoints" / f"checkpoint-{checkpoint}" / CHECKPOINT_COMPLETE).exists()
    assert not (run_dir / "checkpoints" / f"checkpoint-{checkpoint + EVERY}").exists()
    train(cfg, data_dir, run_dir, resume=True)
    evaluate_run(run_dir, progress=False)
    same_artifacts(reference, run_dir)
    for key in ("loss", "grad_norm", "eval_recall@10"):  # every logged value, before and after the boundaries
        assert logged(reference, key) and logged(run_dir, key) == logged(reference, key), key
    assert [step for step, _, _ in logged(run_dir, "loss")] == list(range(2, STEPS + 1, 2))


def test_same_config_and_seed_give_identical_predictions_and_metrics(setup, reference):
    root, data_dir, backbone = setup
    again = train_and_evaluate(config(root, backbone), data_dir, root / "again")
    same_artifacts(reference, again)
    other_seed = train_and_evaluate(config(root, backbone, seed=1), data_dir, root / "seed1")
    assert not torch.equal(weights(reference)["model.embed_tokens.weight"], weights(other_seed)["model.embed_tokens.weight"])


def _copy_run(reference: Path, dest: Path, data_dir: Path) -> Path:
    shutil.copytree(reference, dest, ignore=shutil.ignore_patterns("checkpoints"))
    env = json.loads((dest / "env.json").read_text())
    (dest / "env.json").write_text(json.dumps({**env, "data_dir": str(data_dir)}))
    return dest


def test_changed_dataset_catalogue_or_tokenizer_is_refused(setup, reference, tmp_path):
    root, data_dir, backbone = setup
    evaluate_run(reference, progress=False)  # the first evaluation pinned the tokenizer: a second one agrees
    assert "tokenizer_hash" in json.loads((reference / "env.json").read_text())

    dataset, catalog = planted_data(n_items=32, n_users=60)
    changed = make_data_dir(tmp_path / "d1", *planted_data(n_items=32, n_users=60, seed=5))
    with pytest.raises(ArtifactMismatchError, match=r"dataset_hash=.*the dataset \(DATA/dataset.json\) in use now"):
        evaluate_run(_copy_run(reference, tmp_path / "r1", changed), progress=False)

    other_codes = random_codes(32, (4, 4, 4), seed=9)
    recoded = make_data_dir(tmp_path / "d2", dataset, SIDCatalog(other_codes, [4, 4, 4], dataset.item_ids,
                                                                 dataset.content_hash()))
    with pytest.raises(ArtifactMismatchError, match="catalog_hash=.*SID catalogue"):
        evaluate_run(_copy_run(reference, tmp_path / "r2", recoded), progress=False)

    run = _copy_run(reference, tmp_path / "r3", data_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run / "model")
    tok.add_tokens(["<extra_token>"])
    tok.save_pretrained(run / "model")
    with pytest.raises(ArtifactMismatchError, match="tokenizer_hash=.*tokenizer"):
        evaluate_run(run, progress=False)


WRITER = """
import sys
from pathlib import Path
from pauserec.io import atomic_directory, write_json, write_jsonl
root = Path(sys.argv[1])
(root / "started").write_text("1")
v = 0
while True:
    v += 1
    payload = "x" * (200_000 + v % 7)
    write_json(root / "a.json", {"v": v, "payload": payload})
    write_jsonl(root / "p.jsonl", ({"v": v, "row": i, "payload": payload[:2000]} for i in range(50)))
    with atomic_directory(root / "model") as tmp:
        for i in range(3):
            (tmp / f"part{i}.json").write_text('{"v": %d}' % v)
"""


def _check_whole(root: Path) -> None:
    """Each artifact is one complete version; the directory's files are all of one version."""
    a = json.loads((root / "a.json").read_text())
    assert len(a["payload"]) == 200_000 + a["v"] % 7
    rows = [json.loads(line) for line in (root / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 50 and len({r["v"] for r in rows}) == 1
    parts = {json.loads((root / "model" / f"part{i}.json").read_text())["v"] for i in range(3)}
    assert len(parts) == 1


def test_a_kill_at_any_moment_leaves_artifacts_old_or_new(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for trial in range(6):
        root = tmp_path / str(trial)
        root.mkdir()
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], env=env)
        deadline = time.monotonic() + 30
        while not (root / "model").exists() and time.monotonic() < deadline:  # every artifact has a first version
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        _check_whole(root)


def test_directory_swap_without_atomic_exchange_recovers_a_kill_between_renames(tmp_path, monkeypatch):
    from pauserec import io

    target = tmp_path / "model"
    with io.atomic_directory(target) as tmp:
        (tmp / "v").write_text("1")
    # a kill between "move the old aside" and "move the new in" leaves only .model.old
    target.rename(tmp_path / ".model.old")
    io.recover_directory(target)
    assert (target / "v").read_text() == "1" and not (tmp_path / ".model.old").exists()

    monkeypatch.setattr(io, "_exchange", lambda a, b: False)  # a system without renameat2
    with io.atomic_directory(target) as tmp:
        (tmp / "v").write_text("2")
    assert (target / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_last_complete_checkpoint_skips_torn_and_refuses_none(tmp_path):
    from pauserec.errors import PauseRecError
    from pauserec.train.trainer import last_complete_checkpoint

    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-4" / CHECKPOINT_COMPLETE).write_text("4\n")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert not (tmp_path / "checkpoint-6").exists() and (tmp_path / "checkpoint-2").exists()

    legacy = tmp_path / "legacy"  # checkpoints written before the marker: whole if their trainer state parses
    (legacy / "checkpoint-3").mkdir(parents=True)
    (legacy / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    (legacy / "checkpoint-5").mkdir()
    (legacy / "checkpoint-5" / "trainer_state.json").write_text('{"global_st')  # torn while written
    assert last_complete_checkpoint(legacy) == str(legacy / "checkpoint-3")

    empty = tmp_path / "none"
    (empty / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(PauseRecError, match="no complete checkpoint"):
        last_complete_checkpoint(empty)


def test_checkpoint_size_is_weights_plus_adam_moments():
    from pauserec.train.run import checkpoint_bytes

    layer = torch.nn.Linear(3, 2)  # 6 + 2 fp32 parameters = 32 bytes
    assert checkpoint_bytes(layer) == (32 + 2 * 4 * 8, 32)
    layer.bias.requires_grad_(False)  # frozen: no optimizer moments
    assert checkpoint_bytes(layer) == (32 + 2 * 4 * 6, 32)


def test_training_that_cannot_fit_on_the_disk_stops_before_its_first_step(setup, tmp_path, monkeypatch):
    """A disk that fills mid-run costs every step since the last checkpoint: refuse up front, write nothing to resume."""
    from pauserec.errors import PauseRecError

    root, data_dir, backbone = setup
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    with pytest.raises(PauseRecError, match=r"GB free on its disk, training needs about .* \(3 checkpoints"):
        train(config(root, backbone), data_dir, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model").exists()


def test_progress_at_a_checkpoint_by_hand(tmp_path):
    from pauserec.train.trainer import Progress, progress_at

    state = {"global_step": 4, "log_history": [
        {"step": 2, "eval_train_seconds": 10.0, "eval_val_seconds": 3.0},
        {"step": 4, "eval_train_seconds": 20.0, "eval_val_seconds": 2.5},
        {"step": 6, "eval_train_seconds": 99.0, "eval_val_seconds": 9.0}]}  # after the checkpoint: not counted
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "trainer_state.json").write_text(json.dumps(state))
    # no wall logged: the clock plus the validations' seconds; no counts logged: they start at the checkpoint
    assert progress_at(tmp_path / "old") == Progress(20.0, 25.5, 0, 0, 0, counted_from_step=4)
    state["log_history"][1].update(eval_wall_seconds=31.0, eval_real_tokens=700, eval_padded_tokens=800,
                                   eval_examples_seen=60)
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "trainer_state.json").write_text(json.dumps(state))
    assert progress_at(tmp_path / "new") == Progress(20.0, 31.0, 700, 800, 60, counted_from_step=0)
    assert progress_at(tmp_path / "none") == Progress()


def test_weights_only_checkpoints_are_smaller_and_refuse_resume(setup, tmp_path, monkeypatch):
    from pauserec.errors import PauseRecError

    root, data_dir, backbone = setup
    cfg = config(root, backbone).model_copy(deep=True)
    cfg.train.resumable = False
    train(cfg, data_dir, tmp_path / "run")
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and all(not (c / "optimizer.pt").exists() and (c / "model.safetensors").exists()
                               for c in checkpoints)
    assert (tmp_path / "run" / "model" / "config.json").exists()
    with pytest.raises(PauseRecError, match="resumable=false"):
        train(cfg, data_dir, tmp_path / "run", resume=True)
    # the disk check counts weights only: free space for weights-only checkpoints but not for the optimizer state
    from pauserec.train.run import check_free_disk

    layer = torch.nn.Linear(3, 2)  # 32 bytes of weights, 96 with the Adam moments
    kept = min(-(-STEPS // EVERY), cfg.train.save_total_limit + 1)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=kept * 32 + 32))
    check_free_disk(tmp_path / "new", layer, cfg)  # fits
    with pytest.raises(PauseRecError, match="resumable=false"):
        check_free_disk(tmp_path / "new", layer, config(root, backbone))
