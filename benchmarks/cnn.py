"""The log-mel CNN beside the feature models, on real recordings and on the demo, and its training cost.

    python benchmarks/cnn.py                      # forest recordings and a demo set, in /tmp/cnn-bench
    python benchmarks/cnn.py --work DIR --demo-clips 200 --demo-duration 10
    python benchmarks/cnn.py --device cuda        # the CNN trains on the GPU (its predictions stay on the CPU)
    python benchmarks/cnn.py --variants new       # today's CNN alone (default: the old one and the new, in turn)

For each data set: extract with the log-mel images (``features.logmel``, CPU features, no embedders; run once and
reused), then one cross-validated ``train`` comparing the MLP, XGBoost and the CNN (``--baselines xgboost,cnn``) on
the same grouped folds: the pooled out-of-fold ROC AUC with its 95 % bootstrap interval over groups, per model. Each
variant of the CNN is one such ``train`` on the same folds (the MLP's and XGBoost's figures are the new variant's run):

* ``new``: ``PARAMS["cnn"]`` as it is (four blocks, a cosine learning rate, early stopping, the crops' probabilities
  averaged at scoring), searched over ``SPACES["cnn"]`` like the other candidates (``--tuning-trials``);
* ``old``: the CNN before issue 57 (three blocks of 8-32 channels over the image pooled 2 × 4, a constant learning
  rate, at most 12 epochs, patience 3, not searched, the whole window scored at once), reproduced by its settings and
  by scoring one view (``learn.spectro.views`` patched for this variant only).

* ``maad``: the 96 forest recordings of ``../shared/data/maad_soundscapes``, ``night`` or ``day`` from their file
  names, clips of one clock hour in one group (as ``real_data.py``);
* ``demo``: the demo generator's labelled soundscapes (10 % of the labels flipped, as ``make demo``).

Cost: the CNN's seconds per outer fold (its search, when it has one, and its fit; the median over the folds) and its
training images per second over every fit of the run (inner ones included), on ``--device``. Throughput: the CNN's
training images per second on the forest images alone (every round one epoch, no early stop), with one and with two
torch threads. Prints a markdown table headed by the command, machine, load and date.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import TASK as MAAD_TASK
from real_data import write_manifest

import acoustic_env as ae
from acoustic_env.demo.synth import generate_demo
from acoustic_env.learn import spectro, spectro_estimator, zoo
from acoustic_env.candidates import PARAMS, SPACES
from acoustic_env.learn.spectro_estimator import CNNClassifier
from acoustic_env.learn.image_input import stack_images, window_frames
from acoustic_env.table import image_rows, read_features

MODELS = ("mlp", "xgboost", "cnn")
#: ``PARAMS["cnn"]`` before issue 57, in today's form (``blocks`` × ``width``: channels 8, 16, 32).
OLD = {"val_fraction": 0.2, "max_rounds": 12, "patience": 3,
       "network": {"input_pool": [2, 4], "blocks": 3, "width": 8, "crop_frames": 200, "dropout": 0.3, "lr": 3e-3,
                   "weight_decay": 1e-4, "batch_size": 32, "lr_schedule": "constant"},
       "augment": {"shift": True, "time_masks": 2, "time_mask": 20, "freq_masks": 2, "freq_mask": 8, "mixup": 0.2}}
VARIANTS = ("old", "new")


@contextlib.contextmanager
def variant(name: str, device: str) -> Iterator[None]:
    """``PARAMS``, ``SPACES`` and the scoring of the CNN as the variant ``name`` had them, on ``device``."""
    saved_params, saved_space, saved_views = PARAMS["cnn"], SPACES.get("cnn"), spectro.views
    PARAMS["cnn"] = {**(OLD if name == "old" else saved_params), "device": device}
    if name == "old":
        SPACES.pop("cnn", None)
        spectro.views = lambda x, frames: (x, 1)  # the whole window, one view
    try:
        yield
    finally:
        PARAMS["cnn"], spectro.views = saved_params, saved_views
        if saved_space is not None:
            SPACES["cnn"] = saved_space


class Cost:
    """The CNN's fits in one ``train``: seconds of each outer fold's (search and fit) and images trained per second."""

    def __init__(self) -> None:
        self.folds: list[float] = []
        self.images, self.seconds, self._depth = 0, 0.0, 0

    @contextlib.contextmanager
    def watching(self) -> Iterator[Cost]:
        """The zoo's fits timed while the block runs (its CNN's, and each network's training)."""
        zoo_fit, cnn_fit = zoo.ZooClassifier.fit, spectro_estimator.CNNClassifier.fit

        def outer(model: zoo.ZooClassifier, *args: Any, **kwargs: Any) -> Any:
            """A CNN's fit in the zoo: an outer fold's (search and fit) when no other CNN fit is running."""
            if model.name != "cnn":
                return zoo_fit(model, *args, **kwargs)
            self._depth += 1
            t = time.perf_counter()
            try:
                return zoo_fit(model, *args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.folds.append(time.perf_counter() - t)

        def trained(est: CNNClassifier, X: np.ndarray, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            out = cnn_fit(est, X, *args, **kwargs)
            self.seconds += time.perf_counter() - t
            self.images += len(est.history_) * round(len(X) * (1 - est.val_fraction))  # one epoch a round
            return out

        zoo.ZooClassifier.fit, spectro_estimator.CNNClassifier.fit = outer, trained
        try:
            yield self
        finally:
            zoo.ZooClassifier.fit, spectro_estimator.CNNClassifier.fit = zoo_fit, cnn_fit


def extract(manifest: Path, out: Path, audio_root: str | None = None) -> str:
    """The feature table with the log-mel images, extracted once and reused."""
    if not (out / "features").exists():
        ae.extract(str(manifest), str(out), audio_root=audio_root, features={"logmel": True}, embedders=("none",),
                   progress=False)
    return str(out)


def compare(features: str, work: Path, task: str, tuning_trials: int) -> dict[str, str]:
    """One cross-validated train of the three models: each one's pooled out-of-fold ROC AUC [95 % interval], the
    CNN's cost per fold (the last fit, on every clip, is the saved model's: left out) and its images per second."""
    t = time.time()
    with Cost().watching() as cost:
        r = ae.train(features, str(work), task=task, baselines=("xgboost", "cnn"), ablations=False, shap_samples=0,
                     tuning_trials=tuning_trials, progress=False)
    ev = r.evaluation
    out = {}
    for m in MODELS:
        lo, hi = ev["models"][m]["intervals"]["roc_auc"]
        out[m] = f"{r.metrics[m]['roc_auc']:.3f} [{lo:.2f}, {hi:.2f}]" + (" (chosen)" if m == ev["chosen"] else "")
    out["n"], out["wall"] = str(r.metrics["mlp"]["n"]), f"{time.time() - t:.0f} s"
    out["fold_s"] = f"{np.median(cost.folds[:-1]):.1f} s"
    out["images_s"] = f"{cost.images / cost.seconds:.0f}"
    return out


def throughput(features: str, task: str, threads: int, device: str, rounds: int = 8) -> float:
    """Training images per second of the zoo's CNN on ``features``' images (``rounds`` epochs, no early stop)."""
    fs = read_features(features, task=task)
    images = image_rows(fs, "logmel")
    x = stack_images(images, window_frames(images))
    p = {**PARAMS["cnn"], "max_rounds": rounds, "patience": rounds}
    est = CNNClassifier(seed=0, threads=threads, **{**p, "device": device})
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
    parser.add_argument("--device", default="cpu", help="where the CNN trains: cpu or cuda")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="the CNNs compared, in turn: old, new")
    parser.add_argument("--tuning-trials", type=int, default=2, help="train's --tuning-trials (the new CNN's too)")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants: a list of {', '.join(VARIANTS)}, got {args.variants!r}")
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device: cpu or cuda, got {args.device!r}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "maad.csv"
    write_manifest(manifest)
    maad = extract(manifest, work / "maad")
    demo_dir = work / f"demo-{args.demo_clips}-{args.demo_duration:g}"
    if not (demo_dir / "clips.csv").exists():
        generate_demo(demo_dir, n_clips=args.demo_clips, duration_s=args.demo_duration, seed=0, label_noise=0.1)
    demo = extract(demo_dir / "clips.csv", work / f"demo-features-{args.demo_clips}", str(demo_dir / "audio"))

    rows, speeds = [], {}
    for name, features, task in (("96 forest recordings (night/day, hour groups)", maad, MAAD_TASK),
                                 (f"demo, {args.demo_clips} clips of {args.demo_duration:g} s", demo, "urban_natural")):
        for v in variants:
            with variant(v, args.device):
                got = compare(features, work / f"train-{v}-{Path(features).name}", task, args.tuning_trials)
            rows.append(f"| {name} | {v} | {got['n']} | " + " | ".join(got[m] for m in MODELS)
                        + f" | {got['fold_s']} | {got['images_s']} | {got['wall']} |")
            print(rows[-1], file=sys.stderr)
    for v in variants:
        with variant(v, args.device):
            speeds[v] = {t: np.median([throughput(maad, MAAD_TASK, t, args.device) for _ in range(3)]) for t in (1, 2)}

    print(f"`python benchmarks/cnn.py {shlex.join(argv if argv is not None else sys.argv[1:])}`; {describe()}; "
          f"load average {os.getloadavg()[0]:.1f}; CNN on {args.device}; {time.strftime('%Y-%m-%d')}\n")
    print("| data | cnn | clips | mlp ROC AUC | xgboost ROC AUC | cnn ROC AUC | cnn s per fold | cnn images/s "
          "| train wall |\n|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for v, s in speeds.items():
        print(f"\nCNN training throughput ({v}, {args.device}, the forest images, median of 3): "
              f"{s[1]:.0f} images/s on 1 thread, {s[2]:.0f} images/s on 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
