"""A rare class's out-of-fold recall without and with training rows resampled to N per class (``learn/augment.py``).

    python benchmarks/resample.py                 # 600 clips, a class of 2 %, 3 folds
    python benchmarks/resample.py --per-class 200 --noise 0.1

The generated set of ``tests/test_balance.py``: three overlapping Gaussian blobs in 4 dimensions, class 2 holding
2 % of the clips. Each model is cross-validated (``learn/cv.py: out_of_fold``, 3 folds, the MLP stopped after 4
rounds at most) as train does it: as the rows come, resampled to N per class with exact copies, and with noisy
copies (``--noise`` standard deviations of each feature). Printed: the rare class's recall and the accuracy,
both out of fold (the held-out folds are never resampled), and the seconds each took. Markdown, headed by the
command, the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time

import numpy as np
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.candidates import PARAMS
from acoustic_env.learn import cv
from acoustic_env.learn.augment import Resample


def rare_class(n: int, share: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping blobs in 4 dimensions; class 2 holds ``share`` of the clips, the others half the rest each."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    rare = round(share * n)
    y[:rare] = 2
    y[rare:rare + (n - rare) // 2] = 1
    y = rng.permutation(y)
    centres = 0.7 * rng.standard_normal((3, 4))
    return (centres[y] + rng.standard_normal((n, 4))).astype(np.float32), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--share", type=float, default=0.02, help="the rare class's share of the clips")
    parser.add_argument("--per-class", type=int, default=200, help="N: every class of the training folds resampled to")
    parser.add_argument("--noise", type=float, default=0.1, help="the noisy copies' noise, in feature std")
    parser.add_argument("--models", default="logreg,mlp,xgboost")
    args = parser.parse_args()
    PARAMS["mlp"]["max_rounds"], PARAMS["mlp"]["patience"] = 4, 2
    x, y = rare_class(args.clips, args.share)
    folds = np.random.default_rng(1).permutation(np.arange(len(y)) % 3)
    plans = {"as they come": None, f"{args.per_class} per class, exact copies": Resample(args.per_class),
             f"{args.per_class} per class, noise {args.noise:g}": Resample(args.per_class, args.noise)}
    print("`" + " ".join(["python benchmarks/resample.py", *map(shlex.quote, sys.argv[1:])]) + "`")
    print(f"\n{describe()}, {dt.date.today()}; {len(y)} clips, rare class {int((y == 2).sum())}, 3 folds\n")
    print("| model | training rows | rare-class recall | accuracy | s |\n|---|---|---|---|---|")
    for model in args.models.split(","):
        for name, plan in plans.items():
            t = time.time()
            proba = cv.out_of_fold(x, y, folds, "single_label", 3, [model], 0, threads=1,
                                   resample=plan).proba[model]
            recall = ((proba.argmax(axis=1) == 2) & (y == 2)).sum() / (y == 2).sum()
            print(f"| {model} | {name} | {recall:.2f} | {(proba.argmax(axis=1) == y).mean():.3f} | "
                  f"{time.time() - t:.1f} |")


if __name__ == "__main__":
    main()
