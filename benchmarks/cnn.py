"""The log-mel CNN beside the feature models, on real recordings and on the demo, and its training throughput.

    python benchmarks/cnn.py                      # forest recordings and a demo set, in /tmp/cnn-bench
    python benchmarks/cnn.py --work DIR --demo-clips 200 --demo-duration 10

For each data set: extract with the log-mel images (``features.logmel``, CPU features, no embedders; run once and
reused), then one cross-validated ``train`` comparing the MLP, XGBoost and the CNN (``--baselines xgboost,cnn``) on
the same grouped folds: the pooled out-of-fold ROC AUC with its 95 % bootstrap interval over groups, per model.

* ``maad``: the 96 forest recordings of ``../shared/data/maad_soundscapes``, ``night`` or ``day`` from their file
  names, clips of one clock hour in one group (as ``real_data.py``);
* ``demo``: the demo generator's labelled soundscapes (10 % of the labels flipped, as ``make demo``).

Throughput: the CNN's training images per second on this machine's CPU (the forest images, every round one epoch,
no early stop), with one and with two torch threads. Prints a markdown table headed by the command, machine and date.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import TASK as MAAD_TASK
from real_data import write_manifest

import acoustic_env as ae
from acoustic_env.demo.synth import generate_demo
from acoustic_env.learn.params import PARAMS
from acoustic_env.learn.window import stack_images, window_frames
from acoustic_env.learn.spectro_estimator import CNNClassifier
from acoustic_env.table import image_rows, read_features

MODELS = ("mlp", "xgboost", "cnn")


def extract(manifest: Path, out: Path, audio_root: str | None = None) -> str:
    """The feature table with the log-mel images, extracted once and reused."""
    if not (out / "features").exists():
        ae.extract(str(manifest), str(out), audio_root=audio_root, features={"logmel": True}, progress=False)
    return str(out)


def compare(features: str, work: Path, task: str) -> dict[str, str]:
    """One cross-validated train of the three models: each one's pooled out-of-fold ROC AUC [95 % interval]."""
    t = time.time()
    r = ae.train(features, str(work), task=task, baselines=("xgboost", "cnn"), ablations=False, shap_samples=0,
                 progress=False)
    ev = r.evaluation
    out = {}
    for m in MODELS:
        lo, hi = ev["models"][m]["intervals"]["roc_auc"]
        out[m] = f"{r.metrics[m]['roc_auc']:.3f} [{lo:.2f}, {hi:.2f}]" + (" (chosen)" if m == ev["chosen"] else "")
    out["n"], out["wall"] = str(r.metrics["mlp"]["n"]), f"{time.time() - t:.0f} s"
    return out


def throughput(features: str, task: str, threads: int, rounds: int = 8) -> float:
    """Training images per second of the zoo's CNN on ``features``' images (``rounds`` epochs, no early stop)."""
    fs = read_features(features, task=task)
    images = image_rows(fs, "logmel")
    x = stack_images(images, window_frames(images))
    p = {**PARAMS["cnn"], "max_rounds": rounds, "patience": rounds}
    est = CNNClassifier(seed=0, threads=threads, **p)
    t = time.perf_counter()
    est.fit(x, fs.y, groups=fs.groups)
    wall = time.perf_counter() - t
    seen = len(est.history_) * round(len(x) * (1 - p["val_fraction"]))
    return seen / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/cnn-bench", help="where tables and runs go (reused)")
    parser.add_argument("--demo-clips", type=int, default=200)
    parser.add_argument("--demo-duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "maad.csv"
    write_manifest(manifest)
    maad = extract(manifest, work / "maad")
    demo_dir = work / f"demo-{args.demo_clips}-{args.demo_duration:g}"
    if not (demo_dir / "clips.csv").exists():
        generate_demo(demo_dir, n_clips=args.demo_clips, duration_s=args.demo_duration, seed=0, label_noise=0.1)
    demo = extract(demo_dir / "clips.csv", work / f"demo-features-{args.demo_clips}", str(demo_dir / "audio"))

    rows = []
    for name, features, task in (("96 forest recordings (night/day, hour groups)", maad, MAAD_TASK),
                                 (f"demo, {args.demo_clips} clips of {args.demo_duration:g} s", demo, "urban_natural")):
        got = compare(features, work / f"train-{Path(features).name}", task)
        rows.append(f"| {name} | {got['n']} | " + " | ".join(got[m] for m in MODELS) + f" | {got['wall']} |")
        print(rows[-1], file=sys.stderr)
    speeds = {t: np.median([throughput(maad, MAAD_TASK, t) for _ in range(3)]) for t in (1, 2)}

    print(f"`python benchmarks/cnn.py {shlex.join(argv if argv is not None else sys.argv[1:])}`; {describe()}; "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| data | clips | mlp ROC AUC | xgboost ROC AUC | cnn ROC AUC | train wall |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nCNN training throughput (CPU, the forest images, median of 3): "
          f"{speeds[1]:.0f} images/s on 1 thread, {speeds[2]:.0f} images/s on 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
