"""Two ranks (gloo, CPU) equal one process: ``pauserec train`` and ``pauserec eval`` under ``torch.distributed.run``.

Each run starts tests/multirank_worker.py (the CLI with recorders) as one plain process, the reference, or as two
ranks through torch's own launcher; nothing in the product launches processes. fp32 throughout (no bf16), so the
tolerance on the weights can be tight: 2 ranks sum their halves' gradients in another order than one process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_data_dir, planted_data, skip_or_fail
from safetensors.torch import load_file

from pauserec.dist import shard_bounds
from pauserec.errors import PauseRecError
from pauserec.eval.contract import merge_details
from pauserec.model.tiny import make_tiny_backbone
from pauserec.sid.catalog import SIDCatalog
from pauserec.train.run import per_rank_batch_size
from pauserec.train.trainer import CHECKPOINT_COMPLETE

WORKER = Path(__file__).with_name("multirank_worker.py")
SRC = Path(__file__).resolve().parents[1] / "src"
TIMEOUT = 150  # seconds per launch: a rank waiting forever in a collective fails the test instead of hanging CI
STEPS = 6
# largest |w_2ranks - w_1process| after 6 AdamW steps at lr 3e-3 (fp32; 8.8e-8 measured, weights moved up to 9e-3): the gradients differ in the last bits only
# (another summation order), which Adam's normalisation can bring to ~1e-6 on weights of size ~0.1-1
WEIGHT_ATOL = 1e-6

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo")


def uneven_data():
    """:func:`planted_data` with histories of 4-8 items: users carry 2-6 training targets, so the ranks' halves of a
    batch hold different label counts (where a mean per rank would weigh them wrongly)."""
    dataset, catalog = planted_data(length=8)
    dataset = dataclasses.replace(dataset, sequences=[s[: 4 + u % 5] for u, s in enumerate(dataset.sequences)])
    return dataset, SIDCatalog(catalog.codes, catalog.level_sizes, dataset.item_ids, dataset.content_hash())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("multirank")
    data_dir = make_data_dir(root / "data", *uneven_data())
    backbone = make_tiny_backbone(root / "backbone", hidden=32, layers=2)
    return root, data_dir, backbone


def settings(root: Path, backbone: Path, *extra: str) -> list[str]:
    options = [f"model.backbone={backbone}", f"cache_dir={root / 'cache'}", f"train.max_steps={STEPS}",
               "train.batch_size=4", "train.grad_accum=2", "train.lr=0.003", f"train.eval_every={STEPS}", "train.val_users=15",
               "train.logging_steps=1", "train.bf16=false", "decode.num_beams=5", "eval.ks=[1,5]", "eval.bootstrap=20",
               "eval.max_users=25", *extra]
    return [a for o in options for a in ("--set", o)]


def launch(root: Path, ranks: int, record: str, command: str, *args: str, env: dict | None = None,
           launcher: list[str] | None = None) -> list[dict]:
    """Run the worker as one process or ``ranks`` ranks in ``root`` (through torch's launcher, or ``launcher``);
    returns each rank's record."""
    if launcher is None:
        launcher = [] if ranks == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    environ = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": "1", **(env or {})}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environ.pop(key, None)
    out = subprocess.run([sys.executable, *launcher, str(WORKER), str(root / record), command, *args], cwd=root,
                         env=environ, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    return [json.loads((root / record / f"rank{r}.json").read_text()) for r in range(ranks)]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(setup):
    """The same 6-step training as one process and as 2 ranks on the same global batch: 8 users per step, in 2
    accumulated micro-batches of 4 (2 per rank)."""
    root, data_dir, backbone = setup
    one = launch(root, 1, "rec-1", "train", str(data_dir), "--out", "run-1", *settings(root, backbone))
    two = launch(root, 2, "rec-2", "train", str(data_dir), "--out", "run-2", *settings(root, backbone))
    return root, one, two


def test_two_ranks_train_the_weights_of_one_process(trained):
    root, _, _ = trained
    a, b = weights(root / "run-1"), weights(root / "run-2")
    assert a.keys() == b.keys()
    start = weights_at_start(root)
    moved = max((a[k] - start[k]).abs().max().item() for k in a if k in start and start[k].shape == a[k].shape)
    assert moved > 100 * WEIGHT_ATOL  # training moved the weights far more than the tolerance
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"largest weight difference, 2 ranks vs 1 process: {diff:.3g} (training moved weights up to {moved:.3g})")
    assert diff <= WEIGHT_ATOL, diff


def weights_at_start(root: Path) -> dict[str, torch.Tensor]:
    return load_file(str(root / "backbone" / "model.safetensors"))


def test_two_ranks_see_disjoint_halves_of_the_global_batch(trained):
    _, (one,), (rank0, rank1) = trained
    for micro in range(2 * STEPS):  # each rank's collator packs its half of every micro-batch
        a, b = rank0["batches"][micro], rank1["batches"][micro]
        assert len(a) == len(b) == 2
        assert not set(a) & set(b)
        assert sorted(a + b) == sorted(one["batches"][micro]), micro


def test_costs_count_every_rank_and_record_the_batch(trained):
    root, _, _ = trained
    one = json.loads((root / "run-1" / "train_cost.json").read_text())
    two = json.loads((root / "run-2" / "train_cost.json").read_text())
    assert (one["world_size"], one["per_rank_batch_size"], one["global_batch_size"]) == (1, 4, 8)
    assert (two["world_size"], two["per_rank_batch_size"], two["global_batch_size"]) == (2, 2, 8)
    assert two["steps"] == one["steps"] == STEPS
    assert two["examples_seen"] == one["examples_seen"] > 8 * STEPS  # summed over the ranks
    # a rank's prefix tree shares the chat template's head between its own users only: 2 ranks compute it twice
    assert one["real_tokens"] < two["real_tokens"] < 2 * one["real_tokens"]
    log1 = json.loads((root / "run-1" / "train_log.json").read_text())
    log2 = json.loads((root / "run-2" / "train_log.json").read_text())
    losses1, losses2 = ([e["loss"] for e in log if "loss" in e] for log in (log1, log2))
    assert losses2 == pytest.approx(losses1, rel=1e-4)  # the global batch's mean, not one rank's
    assert two["best_val_ndcg@10"] == pytest.approx(one["best_val_ndcg@10"], abs=1e-9)  # validation sharded, gathered


def test_only_rank_0_writes_run_files(trained):
    _, _, (rank0, rank1) = trained
    assert any(path == "run-2/train_cost.json" for _, path in rank0["writes"])
    # rank 1 writes nothing but its own RNG state into each checkpoint (Hugging Face's, for --resume): it may make
    # the checkpoint's folder for it
    others = [(e, p) for e, p in rank1["writes"] if p.startswith("run-2")]
    assert others and all(re.fullmatch(r"run-2/checkpoints/checkpoint-\d+(/rng_state_1\.pth)?", p) for _, p in others), \
        others


def test_time_cap_stop_is_taken_by_every_rank_at_the_same_step(setup):
    """Rank 1's clock alone says "stop" after the first step: both ranks leave at step 1 (a rank left behind would
    wait in a collective until the launch timeout fails the test)."""
    root, data_dir, backbone = setup
    records = launch(root, 2, "rec-stop", "train", str(data_dir), "--out", "run-stop",
                     *settings(root, backbone, "train.max_minutes=60"), env={"STOP_ON_RANK": "1"})
    assert [r["steps"] for r in records] == [1, 1]
    cost = json.loads((root / "run-stop" / "train_cost.json").read_text())
    assert cost["stopped_by_time_cap"] and cost["steps"] == 1


def test_two_rank_eval_writes_the_files_of_one_process(trained):
    root, _, _ = trained
    launch(root, 1, "rec-eval-1", "eval", "run-1", "--out", "eval-1")
    _, rank1 = launch(root, 2, "rec-eval-2", "eval", "run-1", "--out", "eval-2")
    assert not [w for w in rank1["writes"] if w[1].startswith(("eval-2", "run-1"))]  # rank 0 alone writes
    for name in ("metrics.json", "predictions.jsonl"):
        assert (root / "eval-2" / name).read_bytes() == (root / "eval-1" / name).read_bytes(), name
    cost1 = json.loads((root / "eval-1" / "cost.json").read_text())["inference"]
    cost2 = json.loads((root / "eval-2" / "cost.json").read_text())["inference"]
    assert cost2["users"] == cost1["users"] == 25 and cost2["world_size"] == 2
    assert cost2["prefill_tokens"] == cost1["prefill_tokens"]  # summed over the ranks


def test_fsdp2_sharded_model_trains_decodes_and_saves_as_the_whole_one(setup):
    """FSDP2 (``fully_shard`` per decoder layer, then the root: what accelerate's FSDP plugin applies on GPUs; it
    ignores FSDP on the CPU, so the Trainer path is not run here) on 2 gloo ranks: the packed loss, with the LM head
    applied outside the wrapped forward (the root's weights stay whole after its forward), has the one-process
    gradients; decoding and saving inside :func:`pauserec.dist.full_weights` equal the unsharded model's."""
    root, data_dir, backbone = setup
    environ = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(WORKER.with_name("fsdp_worker.py")), str(data_dir), str(backbone), str(root / "fsdp")],
                         cwd=root, env=environ, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    for rank in (0, 1):
        r = json.loads((root / "fsdp" / f"rank{rank}.json").read_text())
        assert r["sharded_type"] == "DTensor" and r["users"] == (5, 4)[rank]
        assert r["loss"][1] == pytest.approx(r["loss"][0], abs=1e-6)
        assert r["grad_diff"] <= 1e-6, r
        assert r["decode_equal"] and r["again"]
        assert r["saved_keys"] > 0 and r["saved_diff"] == 0.0


def test_two_ranks_resume_from_a_torn_run_to_the_uninterrupted_weights(setup):
    """2 ranks validate and save every 3 of 6 steps; the step-6 checkpoint is made torn (its completion marker
    removed, as a kill while saving leaves it) and the run resumed on 2 ranks: rank 0 alone deletes the torn
    checkpoint, training goes on from step 3 to the uninterrupted run's weights and counts."""
    root, data_dir, backbone = setup
    args = ("train", str(data_dir), "--out", "run-resume")
    launch(root, 2, "rec-full", *args, *settings(root, backbone, "train.eval_every=3"))
    run = root / "run-resume"
    full, full_cost = weights(run), json.loads((run / "train_cost.json").read_text())
    (run / "checkpoints" / "checkpoint-6" / CHECKPOINT_COMPLETE).unlink()
    for name in ("train_cost.json", "train_log.json"):
        (run / name).unlink()
    rank0, rank1 = launch(root, 2, "rec-resume", *args, "--resume")
    assert ["shutil.rmtree", "run-resume/checkpoints/checkpoint-6"] in rank0["writes"]
    assert not [w for w in rank1["writes"] if w[0] in ("shutil.rmtree", "os.remove", "os.rmdir")]
    cost = json.loads((run / "train_cost.json").read_text())
    assert cost["resumed_from"].endswith("checkpoint-3") and cost["steps"] == 6
    assert (cost["examples_seen"], cost["real_tokens"]) == (full_cost["examples_seen"], full_cost["real_tokens"])
    resumed = weights(run)
    assert max((full[k] - resumed[k]).abs().max().item() for k in full) <= WEIGHT_ATOL


ZERO3 = {  # every parameter partitioned (the default persistence threshold would keep the tiny model's whole)
    "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0},
}


def test_deepspeed_zero3_trains_validates_and_saves_the_ddp_weights(setup, trained):
    """``accelerate launch --use_deepspeed`` (ZeRO-3, every parameter partitioned; DeepSpeed's CPU accelerator with
    gloo): the same 6 steps as the 2-rank DDP run reach its weights, validation decodes the gathered weights (the
    decoder slices the head's weight: partitioned, it is empty) to the same scores, and RUN/model holds the whole
    weights; the trained vocabulary rows fall back to the whole matrix (their write-back needs the matrix)."""
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        skip_or_fail("deepspeed is not installed", "deepspeed")
    root, data_dir, backbone = setup
    (root / "zero3.json").write_text(json.dumps(ZERO3))
    launcher = ["-m", "accelerate.commands.launch", "--use_deepspeed", "--deepspeed_config_file", "zero3.json",
                "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch(root, 2, "rec-zero3", "train", str(data_dir), "--out", "run-zero3", *settings(root, backbone),
           launcher=launcher)
    ddp, zero3 = weights(root / "run-2"), weights(root / "run-zero3")
    assert zero3.keys() == ddp.keys()
    assert max((ddp[k] - zero3[k]).abs().max().item() for k in ddp) <= WEIGHT_ATOL
    cost = json.loads((root / "run-zero3" / "train_cost.json").read_text())
    ddp_cost = json.loads((root / "run-2" / "train_cost.json").read_text())
    assert cost["world_size"] == 2 and cost["examples_seen"] == ddp_cost["examples_seen"]
    assert cost["parameters"] == ddp_cost["parameters"] and cost["vocab_rows_trained"] > ddp_cost["vocab_rows_trained"]
    assert cost["best_val_ndcg@10"] == pytest.approx(ddp_cost["best_val_ndcg@10"], abs=1e-9)


def test_the_global_batch_must_split_evenly_over_the_ranks():
    assert [per_rank_batch_size(8, n) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(PauseRecError, match=r"train.batch_size=8 is the global batch: .* over the 3 ranks"):
        per_rank_batch_size(8, 3)


def test_shard_details_merge_into_the_whole_evaluations():
    """5 + 4 users: shared settings kept, token counts summed, per-user figures the mean over all 9 users."""
    a = {"num_beams": 5, "prefill_tokens": 100, "prefill_tokens_per_user": 20.0, "think_tokens_per_user": 0.0}
    b = {"num_beams": 5, "prefill_tokens": 88, "prefill_tokens_per_user": 22.0, "think_tokens_per_user": 0.0}
    assert merge_details([(5, a), (4, b)]) == {"num_beams": 5, "prefill_tokens": 188,
                                               "prefill_tokens_per_user": 188 / 9, "think_tokens_per_user": 0.0}
    assert [shard_bounds(9, 2, r) for r in (0, 1)] == [(0, 5), (5, 9)]
    assert [shard_bounds(2, 3, r) for r in (0, 1, 2)] == [(0, 1), (1, 2), (2, 2)]  # a rank may get no user
