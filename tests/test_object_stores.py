"""gs:// and az:// need optional extras: without them a job stops in one line that names the extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from acoustic_env.errors import MissingExtraError
from acoustic_env.storage import filesystem, read_filesystem


@pytest.mark.parametrize("uri,package,extra", [("gs://bucket/lists/a.csv", "gcsfs", "gcs"),
                                               ("az://container/out", "adlfs", "azure")])
def test_missing_extra_is_named(uri, package, extra, tmp_path):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed: the message is for an environment without it")
    with pytest.raises(MissingExtraError, match=rf"pip install 'acoustic-env\[{extra}\]'"):
        filesystem(uri)
    with pytest.raises(MissingExtraError, match=package):
        read_filesystem(uri, 5.0)
    manifest = tmp_path / "list.csv"
    manifest.write_text("uri,labels\n/x.wav,a\n")
    args = ["--manifest", uri, "--output", str(tmp_path / "out")] if uri.startswith("gs") else \
        ["--manifest", str(manifest), "--output", uri]
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", *args, "--dry-run"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"acoustic-env: error: {uri.split(':')[0]}:// paths need {package}, which is not installed: "
        f"pip install 'acoustic-env[{extra}]'"]
