"""How long `acoustic-env predict --windows` takes on a long recording, and how much memory it holds.

    python benchmarks/windows.py [--minutes 10,60] [--work /tmp/acoustic-env-windows-bench]

Builds a small world once (generated 10-s clips, the extract job's table with every CPU
feature and signal, a model trained without Ray on it, as benchmarks/predict.py does),
then writes each recording (16 kHz mono 16-bit WAV, generated soundscapes of alternating
classes, 10 s each) and runs, as a user would, in a fresh process:

    acoustic-env predict REC.wav --model M --windows --save windows.csv --selections selections/

timing the whole command (imports included); its peak resident memory is the one it prints
(the kernel's ``ru_maxrss`` of the process). The decoded hour alone would be 230 MB of float32:
a peak that does not grow with the length is the point. Prints a Markdown table for
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from machine import describe

SR = 16000
SEGMENT_S = 10


def _model(work: Path) -> Path:
    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.demo.synth import generate_demo

    model = work / "model"
    if not (model / "model.json").is_file():
        demo = generate_demo(work / "data", n_clips=12, duration_s=float(SEGMENT_S), n_broken=0, seed=3)
        ae.extract(str(demo.clips_csv), str(work / "features"), audio_root=str(demo.audio_dir), progress=False)
        quick_model(str(work / "features"), str(model))
    return model


def _recording(path: Path, minutes: int) -> None:
    """``minutes`` of 10-s generated soundscapes, urban and natural in turn, written as they are made."""
    from acoustic_env.demo.synth import make_clip

    rng = np.random.default_rng(7)
    segments = [make_clip(rng, cls, SEGMENT_S, SR, 1)[0] for cls in ("urban", "natural") * 6]
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as f:
        for k in range(minutes * 60 // SEGMENT_S):
            f.write(segments[k % len(segments)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", default="10,60", help="recording lengths to time, comma-separated")
    ap.add_argument("--work", default="/tmp/acoustic-env-windows-bench")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = _model(work)
    rows = []
    for minutes in map(int, args.minutes.split(",")):
        rec = work / f"recording-{minutes}min.wav"
        if not rec.is_file():
            _recording(rec, minutes)
        saved = work / f"windows-{minutes}min.csv"
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "predict", str(rec), "--model", str(model),
                              "--windows", "--save", str(saved), "--selections", str(work / "selections")],
                             check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
        peak_mib = float(re.search(r"peak memory (\d+) MiB", out).group(1))
        windows = list(csv.DictReader(saved.open()))
        ends = [float(w["end_s"]) for w in windows]
        assert len(windows) == minutes * 60 // SEGMENT_S and ends[-1] == minutes * 60, (len(windows), ends[-1])
        rows.append((minutes, rec.stat().st_size / 2**20, len(windows), wall, peak_mib))
    print(f"Machine: {describe()}")
    print("| recording | file | windows (10 s) | wall time | per window | peak RSS |")
    print("|---|---|---|---|---|---|")
    for minutes, size, n, wall, peak in rows:
        print(f"| {minutes} min, 16 kHz mono | {size:.0f} MiB | {n} | {wall:.1f} s | {wall / n:.2f} s | {peak:.0f} MiB |")


if __name__ == "__main__":
    main()
