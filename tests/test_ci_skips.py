"""``skip_or_fail``: a missing dependency skips a test locally, fails it under ``CI=true`` (which installs it), and
skips it again where CI recorded that its best-effort install failed."""

from __future__ import annotations

import pytest
from helpers import CI_MISSING, skip_or_fail


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_a_missing_dependency_skips(monkeypatch, ci):
    monkeypatch.delenv(CI_MISSING, raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        skip_or_fail("chromium is not installed", "chromium")


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_in_ci_a_missing_dependency_fails(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv(CI_MISSING, "llama-cpp-python")  # another dependency's failed install excuses nothing here
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed; CI installs chromium, so its install"):
        skip_or_fail("chromium is not installed", "chromium")


def test_in_ci_a_recorded_failed_install_skips(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(CI_MISSING, "chromium,llama-cpp-python")
    with pytest.raises(pytest.skip.Exception, match=rf"not built \(CI could not install it: {CI_MISSING}="):
        skip_or_fail("not built", "llama-cpp-python")
