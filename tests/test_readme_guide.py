"""The README's guide runs as written: its shell commands, in order, then its Python recipes.

"Your own recordings" are generated soundscapes (real FLAC files, different sample rates
and channel counts), copied into ``recordings/`` under plain file names, with a
``labels.csv`` in the format the guide shows. Every ``acoustic-env`` line of the guide's
``sh`` blocks runs exactly as written through ``cli.main`` in this process (``worlds.run_as_written``), on the
session's Ray instance (train's ablations run there), with a user's default ``--embedders auto``; the ``python``
blocks run after. (A subprocess per line cost an interpreter and the package's imports each, ten times, and a local
Ray instance for the train.)
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs.extract import EMBEDDERS_ENV
from acoustic_env.table import read_features
from worlds import run_as_written

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def guide() -> str:
    text = README.read_text()
    return text.split("\n## Guide: your own recordings\n", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", guide(), re.S)


def test_the_guide_has_every_step():
    commands = [line for b in blocks("sh") for line in b.splitlines() if line.startswith("acoustic-env ")]
    steps = [c.split()[1] for c in commands]
    assert steps == ["extract", "extract", "extract", "train", "train", "audit", "predict", "predict", "export",
                     "export"]
    assert sum("--dry-run" in c for c in commands) == 3
    assert blocks("csv")[0].splitlines()[0] == "uri,labels"
    assert len(blocks("python")) == 4


def _recordings(work: Path) -> None:
    """recordings/ (24 files with plain names), labels.csv as the guide shows it, new-recordings/ (3 files),
    field-recording.flac (20 s: a new recording ten times over)."""
    data = generate_demo(work / "generated", n_clips=24, duration_s=2.0, n_broken=0, seed=21)
    truth = {r["clip_id"]: r["true_class"] for r in csv.DictReader((data.out_dir / "truth.csv").open())}
    (work / "recordings").mkdir()
    rows = []
    for n, (clip_id, cls) in enumerate(sorted(truth.items()), start=1):
        src = next(data.audio_dir.glob(f"{clip_id}.*"))
        name = f"{'park' if cls == 'natural' else 'street'}-{n:02d}{src.suffix}"
        shutil.copy(src, work / "recordings" / name)
        rows.append((f"recordings/{name}", cls))
    with (work / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uri", "labels"])
        w.writerows(rows)
    new = generate_demo(work / "generated-new", n_clips=3, duration_s=2.0, n_broken=0, seed=22)
    shutil.copytree(new.audio_dir, work / "new-recordings")
    audio, sr = sf.read(sorted(new.audio_dir.glob("*.flac"))[0], dtype="int16")
    sf.write(work / "field-recording.flac", np.concatenate([audio] * 10), sr, subtype="PCM_16")


def test_the_guide_runs_as_written(tmp_path, ray_session, monkeypatch, capfd):
    _recordings(tmp_path)
    monkeypatch.delenv(EMBEDDERS_ENV, raising=False)  # a user's shell: the default --embedders auto
    monkeypatch.chdir(tmp_path)
    commands = [line for b in blocks("sh") for line in b.splitlines() if line.startswith("acoustic-env ")]
    for command in commands:
        out = run_as_written(command, capfd)
        if "--dry-run" in command:
            assert "(dry run)" in out, command
    assert len(list((tmp_path / "extracted" / "features").glob("*.parquet")))
    assert (tmp_path / "trained" / "model" / "model.json").is_file()
    assert "birdnet" in read_features(str(tmp_path / "extracted")).columns  # no flag: the pretrained embedder ran
    assert (tmp_path / "audit" / "audit.parquet").is_file()
    predictions = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(predictions) == 3 and all(p["predicted"] in ("urban", "natural") for p in predictions)
    windows = list(csv.DictReader((tmp_path / "windows.csv").open()))  # the training clips' 2 s
    assert [(float(w["start_s"]), float(w["end_s"])) for w in windows] == [(2.0 * k, 2.0 * k + 2) for k in range(10)]
    assert (tmp_path / "selections" / "field-recording.selections.txt").read_text().startswith("Selection\tView")
    header = next(csv.reader((tmp_path / "features-wide.csv").open()))
    assert "indices_raw:ACI" in header and "clip_id" in header

    # the recipes, in the same folder
    for n, code in enumerate(blocks("python")):
        exec(compile(code, f"README.md#guide-recipe-{n}", "exec"), {"__name__": "__readme__"})
