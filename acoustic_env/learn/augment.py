"""Training rows resampled to N clips per class, the copies augmented: the FSD50K study's class balance.

The study resampled each of its eight classes to 5,000 clips: a bigger class undersampled, a smaller one topped up
with copies of its clips, made different by Gaussian noise and pitch shifts. Here (:func:`resample`) that happens
to the rows a model is fitted on and to nothing else: the train job hands it each model's training rows (a fold's
training folds, the split's training split, an inner search's training part), never a row that scores a model
(``learn.zoo``). Copies keep their source clip's group, so a grouped inner split never puts a clip on one side and
its copy on the other. Each part is switchable (:class:`Resample`):

* ``per_class``: N (0: off). A class with more training rows keeps N of them drawn without replacement; one with
  fewer keeps all of them and gets N - count copies drawn with replacement. Single-label only: a multi-label clip
  has no one class to count it in.
* ``noise``: on the copies, Gaussian noise of this many standard deviations of each feature (of each mel band, for
  images) over the training rows, so that the noise is the same relative size on every column (0: exact copies).
* ``pitch_shift``: on the copies of log-mel images ([clips, bands, frames]), each image's bands moved up or down by
  a whole number of bins up to this many (:func:`shift_bands`): on a mel scale a pitch shift is close to a shift
  along the bands. Feature vectors have no band axis, so they get the noise only.

numpy only: a plain function of arrays, as every stage is, which knows nothing of the models it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resample:
    """How the training rows are resampled (see the module docstring); ``seed`` seeds the draws and the noise."""

    per_class: int
    noise: float = 0.0
    pitch_shift: int = 0
    seed: int = 0

    def describe(self, images: bool) -> str:
        """What a model reading vectors (``images`` False) or log-mel images got, in the report's words."""
        unit = "band" if images else "feature"
        made = [f"Gaussian noise of {self.noise:g} × each {unit}'s std"] if self.noise else []
        made += [f"mel bands shifted by up to ±{self.pitch_shift}"] if self.pitch_shift and images else []
        return (f"training rows resampled to {self.per_class} per class (copies: "
                f"{' and '.join(made) if made else 'exact'})")


@dataclass(frozen=True)
class Resampled:
    """The resampled rows: ``x``, ``y``, ``groups`` (None if none were given), each row's ``source`` row and
    whether it is a ``copy``."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None
    source: np.ndarray
    copy: np.ndarray


def draw_rows(y: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(source row of each resampled row, is it a copy): ``per_class`` rows of every class present in ``y``."""
    sources, copies = [], []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if len(rows) >= per_class:
            sources.append(np.sort(rng.choice(rows, per_class, replace=False)))
            copies.append(np.zeros(per_class, dtype=bool))
        else:
            sources.append(np.concatenate([rows, rng.choice(rows, per_class - len(rows), replace=True)]))
            copies.append(np.arange(per_class) >= len(rows))
    return np.concatenate(sources), np.concatenate(copies)


def shift_bands(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """[clips, bands, frames] images, each moved ``shifts[i]`` bins along its bands (positive: up, to higher
    bands); the bands it leaves are filled with the image's minimum (silence on a dB scale)."""
    out = np.empty_like(images)
    bands = images.shape[1]
    for i, (image, k) in enumerate(zip(images, np.clip(np.asarray(shifts, dtype=int), -bands, bands))):
        out[i] = image.min() if image.size else 0
        if k >= 0:
            out[i, k:] = image[:image.shape[0] - k]
        else:
            out[i, :k] = image[-k:]
    return out


def resample(x: np.ndarray, y: np.ndarray, plan: Resample, groups: np.ndarray | None = None) -> Resampled:
    """The training rows ``x`` (vectors [rows, features] or images [rows, bands, frames]) with class indices ``y``
    resampled to ``plan.per_class`` per class, the copies augmented as ``plan`` says."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError("resample_per_class: counts clips by their one class, so single-label tasks only")
    rng = np.random.default_rng(plan.seed)
    source, copy = draw_rows(y, plan.per_class, rng)
    out = np.array(x[source], copy=True)
    if copy.any() and plan.pitch_shift and out.ndim == 3:
        out[copy] = shift_bands(out[copy], rng.integers(-plan.pitch_shift, plan.pitch_shift + 1, int(copy.sum())))
    if copy.any() and plan.noise:
        axes = (0,) if x.ndim == 2 else (0, 2)  # per feature; per band of an image
        std = np.asarray(x, dtype=np.float64).std(axis=axes, keepdims=True)[0]
        out[copy] += (plan.noise * std * rng.standard_normal(out[copy].shape)).astype(out.dtype)
    return Resampled(out, y[source], None if groups is None else np.asarray(groups)[source], source, copy)


def resample_split(data: dict[str, np.ndarray], plan: Resample) -> dict[str, np.ndarray]:
    """A train/validation split (``x_train``, ``y_train``, ``x_val``, ``y_val``) with its training part resampled and
    its validation part as it is: what a network trains on, whose early stopping reads the validation part."""
    rows = resample(data["x_train"], data["y_train"], plan)
    return {**data, "x_train": rows.x, "y_train": rows.y}
