"""The released-embeddings study's grid on synthetic frames: loss × batch size × input scaling × the last pool.

    cd benchmarks && python audioset_frames_study.py                  # 400 clips, noise 1.5, the full grid
    cd benchmarks && python audioset_frames_study.py --clips 200 --models frames_fc --inputs scaled

Writes TFRecords in the release's schema (``acoustic_env.audioset.synthetic_frames``: four
classes that differ only in the order of their seconds, Gaussian noise of ``--noise`` on
every value, every 20th clip of two classes), converts them as ``recipe audioset-embeddings
--keep-frames`` does, and runs ``acoustic-env audioset frames`` over the grid
(``jobs.audioset.frames.compare_frames``): every network under each loss, batch size and
input scaling, ``study_cnn`` with and without its optional last pool, the pooled model once
per scaling. Prints the command, the machine, the date and the load, then the table.
These are synthetic frames: the figures rank the settings on a task of known structure,
not the study's accuracy on the released embeddings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.audioset.synthetic_frames import write_order_tfrecords
from acoustic_env.config.audioset import FramesConfig
from acoustic_env.config.schema import from_dict
from acoustic_env.jobs.audioset.embeddings import convert
from acoustic_env.jobs.audioset.frames import compare_frames, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=400, help="segments written (every 12th short, so left out)")
    ap.add_argument("--noise", type=float, default=1.5, help="noise on every value (the patterns are ±1)")
    ap.add_argument("--models", default="study_cnn,frames_fc,pooled_logreg")
    ap.add_argument("--losses", default="categorical_crossentropy,binary_crossentropy")
    ap.add_argument("--batch-sizes", default="32,128")
    ap.add_argument("--inputs", default="scaled,raw")
    ap.add_argument("--final-pool", default="with,without")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_order_tfrecords(Path(tmp) / "tfrecords", n=args.clips, seed=args.seed, noise=args.noise)
        convert(str(Path(tmp) / "tfrecords"), str(Path(tmp) / "out"), keep_frames=True)
        cfg = from_dict(FramesConfig, {
            "features": str(Path(tmp) / "out"), "output": str(Path(tmp) / "comparison.json"),
            "task": "speech_animal_music_vehicle", "seed": args.seed, "threads": args.threads, "models": args.models,
            "losses": args.losses, "batch_sizes": args.batch_sizes, "inputs": args.inputs,
            "final_pool": args.final_pool})
        t0 = time.perf_counter()
        result = compare_frames(cfg)
        wall = time.perf_counter() - t0
    print(f"`python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`".replace(" `", "`"))
    print(f"{describe()}, Python {sys.version.split()[0]}; {dt.date.today()}; "
          f"load average {os.getloadavg()[0]:.1f} at the end; {args.threads} torch thread(s)")
    split = result["split"]
    print(f"{result['clips']} clips ({result['left_out']} left out), noise {args.noise}; split train {split['train']}, "
          f"val {split['val']}, test {split['test']}; {len(result['results'])} cells in {wall:.0f} s\n")
    print(table(result["results"]))


if __name__ == "__main__":
    main()
