"""Sampling a task's clips from a segment list of AudioSet's size: wall time and the driver's peak memory.

    python benchmarks/audioset_sample.py                    # 2,000,000 rows, 20,000 clips, 3 repeats
    python benchmarks/audioset_sample.py --rows 200000 --repeats 1

A synthetic list in the published format (``acoustic_env.audioset.synthetic``: random
YTIDs, 1-4 labels from the 527 classes, Speech and Music 20 times as frequent as the
others, as in the real unbalanced list) is written to a temporary directory, then
``acoustic-env audioset sample`` runs on it in a fresh process per repeat (the driver is
that process): the four-class task, ``--total 20000 --balanced``, and urban/natural
with the study's targets. Reported per case, the median over repeats: the process's wall
time, the sampling's own wall time and the peak resident memory (both from the sample's
report), and the memory after the imports, before the list is read.

Prints a markdown table headed by the command, the machine and the date, for
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.audioset.segments import write_segments
from acoustic_env.audioset.synthetic import synthetic_segments

CASES = {
    "speech_animal_music_vehicle, --total 20000 --balanced":
        ["--task", "speech_animal_music_vehicle", "--total", "20000", "--balanced"],
    "urban_natural, --targets natural=6800,urban=6500": ["--task", "urban_natural", "--targets", "natural=6800,urban=6500"],
}
BOOST = {"/m/09x0r": 20.0, "/m/04rlf": 20.0, "/t/dd00128": 2.0, "/t/dd00129": 2.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    command = "acoustic-env" if not os.environ.get("PYTHONPATH") else f"{sys.executable} -m acoustic_env.cli"
    with tempfile.TemporaryDirectory(prefix="acoustic-env-sample-bench-") as tmp:
        segments = os.path.join(tmp, "unbalanced_train_segments.csv")
        t0 = time.time()
        write_segments(synthetic_segments(args.rows, seed=0, boost=BOOST), segments, ["synthetic"])
        size_mb = os.path.getsize(segments) / 2**20
        print(f"wrote {args.rows} rows ({size_mb:.0f} MB) in {time.time() - t0:.1f} s", file=sys.stderr)
        rows = []
        for name, flags in CASES.items():
            runs = []
            for _ in range(args.repeats):
                out = os.path.join(tmp, "sample.csv")
                t = time.time()
                subprocess.run([*shlex.split(command), "audioset", "sample", "--segments", segments, "--output", out,
                                *flags], check=True, stdout=subprocess.DEVNULL)
                process_s = time.time() - t
                report = json.loads(Path(out.replace(".csv", ".report.json")).read_text())
                runs.append((process_s, report["wall_s"], report["peak_rss_mb"], report["rss_before_mb"],
                             report["clips"]))
            med = [statistics.median(r[i] for r in runs) for i in range(5)]
            rows.append(f"| {name} | {med[4]:,.0f} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.0f} | {med[3]:.0f} |")
    print(f"`python benchmarks/audioset_sample.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`, "
          f"{dt.date.today()}  \n{describe()}, Python {sys.version.split()[0]}  \n"
          f"{args.rows:,} rows ({size_mb:.0f} MB) in the published format; median of {args.repeats} runs, "
          "each a fresh `acoustic-env audioset sample` process.\n")
    print("| case | clips | process wall s | sampling wall s | driver peak RSS MB | RSS after imports MB |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
