"""Run directories record where the numbers came from."""

import re

from pauserec.artifacts import SOURCE_ROOT, environment, git_revision


def _in_a_git_checkout() -> bool:
    """Whether the code under test runs from a git checkout (``git rev-parse`` works there)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True).returncode == 0
    except OSError:
        return False


def test_git_revision_of_this_checkout_or_the_declared_one(monkeypatch):
    monkeypatch.delenv("PAUSEREC_GIT_REVISION", raising=False)
    rev = git_revision()
    if _in_a_git_checkout():
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", rev or ""), rev
    else:
        assert rev is None  # a copy without .git records no revision rather than a wrong one
    monkeypatch.setenv("PAUSEREC_GIT_REVISION", "abc123")  # a copy shipped elsewhere declares its revision
    assert git_revision() == "abc123"
    env = environment()
    assert env["git_revision"] == "abc123" and env["torch"] and env["cpu_count"] >= 1


def test_revision_is_the_code_loaded_not_a_later_commit(monkeypatch):
    import subprocess

    monkeypatch.delenv("PAUSEREC_GIT_REVISION", raising=False)
    before = git_revision()

    def later_commit(*args, **kwargs):  # what git would answer after a commit made while a grid runs
        return subprocess.CompletedProcess(args, 0, stdout="f" * 40 + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", later_commit)
    assert git_revision() == before  # fails if the revision were read again (it would say "fff...")
