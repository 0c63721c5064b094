"""The public API: the README's notebook example runs as written, and the functions validate up front."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from documentation import section

import acoustic_env as ae


def readme_python_example() -> str:
    text = section("Python")
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, ray_session, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_example(), "docs/concepts.md#python", "exec"), namespace)
    run, table, trained, audit = (namespace[k] for k in ("run", "table", "trained", "audit"))
    assert isinstance(run, ae.ExtractResult) and run.counts["ok"] == 24 and Path(run.features).is_dir()
    assert isinstance(table, ae.FeatureSet) and len(table) == 24 and "indices_raw" in table.columns
    assert isinstance(trained, ae.TrainResult) and 0.0 <= trained.metrics["mlp"]["roc_auc"] <= 1.0
    assert isinstance(audit, ae.AuditResult) and audit.audited == 24 and Path(audit.table).is_file()
    assert len(capsys.readouterr().out.strip().splitlines()) == 5


def test_api_validates_before_any_work(tmp_path):
    with pytest.raises(ae.ConfigError, match=r"^batch_size: "):
        ae.extract(str(tmp_path / "missing.csv"), str(tmp_path / "out"), batch_size=0)
    with pytest.raises(ae.ConfigError, match=r"^trials: "):
        ae.train(str(tmp_path), str(tmp_path / "o"), trials=-1)
    with pytest.raises(ae.ConfigError, match=r"^classifier: "):
        ae.audit(str(tmp_path), str(tmp_path / "o"), classifier="cnn")
    assert not (tmp_path / "out").exists()


def test_config_file_and_keywords_combine(tmp_path):
    from acoustic_env.api import _config
    from acoustic_env.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("features: f\noutput: o\ntrials: 3\nseed: 5\n")
    cfg = _config(TrainConfig, str(path), {"seed": 9, "output": None, "work_dir": Path("w")})
    assert (cfg.trials, cfg.seed) == (3, 9)
    # local paths (str or Path) are stored absolute: Ray's workers run in another directory
    assert (cfg.features, cfg.output, cfg.work_dir) == tuple(str(Path(p).resolve()) for p in "fow")
    assert _config(TrainConfig, None, {"features": "s3://b/f", "output": "o"}).features == "s3://b/f"
    with pytest.raises(ae.ConfigError, match=r"^output: must be a path or URL, got 3$"):
        _config(TrainConfig, None, {"features": "f", "output": 3})


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, acoustic_env as ae; ae.ConfigError; print(any(m in sys.modules for m in ('torch', 'ray')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_the_demo_is_a_command_of_the_api_without_the_cli(tmp_path):
    """``ae.run("demo")`` finds the demo (``demo/command.py``, registered by the API as by the CLI) and checks its
    config before any work; in a fresh process that never imports the command line."""
    import subprocess
    import sys

    code = ("import sys, acoustic_env as ae\n"
            "try:\n    ae.run('demo', output=sys.argv[1], clips=0)\n"
            "except ae.ConfigError as exc:\n    print(exc)\n"
            "print('acoustic_env.cli' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "demo")], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.splitlines() == ["clips: must be an integer >= 1, got 0", "False"], out.stdout + out.stderr
    assert not (tmp_path / "demo").exists()
