import pytest

from pauserec.arms import IGNORE, DirectArm, PauseArm, make_arm, pause_token_names
from pauserec.config import build_config
from pauserec.errors import ArtifactMismatchError, ConfigError


class VocabStub:
    def __init__(self, tokens):
        self.vocab = {t: 100 + i for i, t in enumerate(tokens)}

    def get_vocab(self):
        return dict(self.vocab)


PROMPT, SID = [1, 2, 3], [50, 60, 70]


def test_direct_sequence_has_loss_on_sid_only():
    ids, labels = DirectArm().bind(VocabStub([])).training_sequence(PROMPT, SID)
    assert ids == [1, 2, 3, 50, 60, 70]
    assert labels == [IGNORE] * 3 + [50, 60, 70]
    assert DirectArm().inference_prefix(PROMPT) == PROMPT


def test_pause_before_sid():
    arm = PauseArm(2).bind(VocabStub(["<pause>"]))
    ids, labels = arm.training_sequence(PROMPT, SID)
    assert ids == [1, 2, 3, 100, 100, 50, 60, 70]
    assert labels == [IGNORE] * 5 + [50, 60, 70]  # no loss on prompt or pause positions
    assert arm.inference_prefix(PROMPT) == [1, 2, 3, 100, 100]
    assert arm.forced_between_levels(3) is None


def test_pause_k_at_inference_can_differ():
    arm = PauseArm(2, k_inference=5).bind(VocabStub(["<pause>"]))
    assert arm.inference_prefix(PROMPT) == PROMPT + [100] * 5
    assert arm.training_sequence(PROMPT, SID)[0].count(100) == 2


def test_pause_per_level_and_distinct():
    arm = PauseArm(2, distinct=True, placement="per_level").bind(VocabStub(pause_token_names(2, True)))
    ids, labels = arm.training_sequence(PROMPT, SID)
    assert ids == [1, 2, 3, 100, 101, 50, 100, 101, 60, 100, 101, 70]
    assert [x for x in labels if x != IGNORE] == SID
    assert arm.forced_between_levels(3) == [[100, 101], [100, 101]]


def test_bad_pause_configs():
    with pytest.raises(ConfigError):
        PauseArm(-1)
    with pytest.raises(ConfigError):
        PauseArm(2, k_inference=4, distinct=True)
    with pytest.raises(ArtifactMismatchError, match="pause"):
        PauseArm(2).bind(VocabStub([]))


def test_zero_pauses_equals_direct():
    arm = PauseArm(0).bind(VocabStub([]))
    assert arm.training_sequence(PROMPT, SID) == DirectArm().training_sequence(PROMPT, SID)


def test_make_arm_from_config():
    assert isinstance(make_arm(build_config(overrides=["arm.name=direct"])), DirectArm)
    arm = make_arm(build_config(overrides=["arm.name=pause", "arm.pause_tokens=8", "arm.inference_pause_tokens=2"]))
    assert (arm.k, arm.k_inference) == (8, 2)
