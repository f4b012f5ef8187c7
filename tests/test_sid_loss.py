"""The teacher-forced SID loss proxy (pauserec.train.sid_loss) against a hand computation on a tiny model."""

import math

import pytest
import torch

from pauserec.arms.base import Arm
from pauserec.data.split import Example
from pauserec.model.tiny import make_tiny_backbone
from pauserec.train.batches import LevelSoftmax
from pauserec.train.sid_loss import sid_loss

LEVELS = [[20, 21, 22], [23, 24]]  # two SID levels: their codes' vocabulary ids
SIDS = {0: [20, 23], 1: [22, 24], 2: [21, 23]}  # item -> its SID tokens


class Prompts:
    """Stands in for PromptBuilder: a history's ids and an item's SID ids."""

    def ids(self, history):
        return [5, *[6 + h for h in history]]

    def sid_ids(self, item):
        return SIDS[item]


class Rationale(Arm):
    """A segment with its own labels (as cot's rationale): they must not count as SID tokens."""

    name = "rationale"

    @classmethod
    def from_config(cls, cfg, *, seed):
        return cls()

    def lead(self, training):
        return [30, 31]

    def training_segment(self, example):
        return [30, 31], [30, 31]


def hand_nll(model, prompt, sid, lead):
    """Each example alone: logits before each SID token, log-softmax over that level's codes, the target's NLL."""
    ids = [*prompt, *lead, *sid]
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    out = []
    for level, token in enumerate(sid):
        position = len(prompt) + len(lead) + level
        codes = LEVELS[level]
        logp = torch.log_softmax(logits[position - 1, codes], dim=0)
        out.append(-float(logp[codes.index(token)]))
    return out


@pytest.mark.parametrize("arm", [Rationale(), None])
def test_sid_loss_is_the_mean_nll_of_the_target_sid_tokens(tmp_path, arm):
    from transformers import AutoModelForCausalLM

    from pauserec.arms.direct import DirectArm

    arm = arm or DirectArm()
    model = AutoModelForCausalLM.from_pretrained(make_tiny_backbone(tmp_path / "bb", hidden=32, layers=2),
                                                 dtype=torch.float32).train()
    examples = [Example(0, (1, 2), 0), Example(1, (2,), 1), Example(2, (0, 1, 2, 1), 2)]
    softmax = LevelSoftmax([torch.tensor(c) for c in LEVELS], model.config.vocab_size)
    level_ids = [torch.tensor(c) for c in LEVELS]
    lead = arm.lead(training=True)
    with torch.no_grad():
        model.eval()
        expected = [v for e in examples for v in hand_nll(model, Prompts().ids(e.history), SIDS[e.target], lead)]
        model.train()
    for batch_size in (1, 2, 32):
        mean, n = sid_loss(model, examples, Prompts(), arm, level_ids, softmax, pad_token_id=0, batch_size=batch_size)
        assert n == 6
        assert mean == pytest.approx(sum(expected) / 6, rel=1e-5)
    assert model.training  # its mode is left as it was
    assert math.isfinite(mean) and mean > 0
