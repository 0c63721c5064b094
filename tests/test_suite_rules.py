"""The suite's own rules, checked by running pytest on itself in a subprocess.

What a test needs and the machine may lack (Chromium here) makes it skip with the reason on a
developer's machine, and fail with the reason in CI (``CI=true``): a CI machine without a browser
must not pass having tested less (``conftest.require``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: a browser test whose other fixtures cost nothing, so the check is quick
BROWSER_TEST = "tests/test_audit_review.py::test_multi_label_page_takes_the_right_set_of_classes"


def _pytest_without_chromium(ci: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    bare = tmp_path / "bin"  # a PATH with no chromium or chromedriver on it
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(bare)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", BROWSER_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", ["true", None])
def test_a_missing_browser_fails_in_ci_and_skips_with_the_reason_elsewhere(ci, tmp_path):
    r = _pytest_without_chromium(ci, tmp_path)
    reason = "headless browser test needs Debian's chromium and chromium-driver"
    if ci:
        assert r.returncode == 1, r.stdout[-2000:]
        assert f"required in CI (CI=true): {reason}" in r.stdout and "1 error" in r.stdout, r.stdout[-2000:]
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
        assert "SKIPPED [1]" in r.stdout and reason in r.stdout, r.stdout[-2000:]
