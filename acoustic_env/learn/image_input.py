"""The CNN's input window: which column holds a clip's image, what image the model learnt from, and every image
brought to one width.

A model records its training images' kind and bands (``features.image*``, read from the column's metadata:
:func:`recorded_image`) beside its window, so that scoring audio computes that image, and a table of another kind
is refused in one line (:func:`check_image`) rather than scored: an MFCC image fed to a log-mel network gives
probabilities, all of them wrong.

numpy only, no torch: Ray Data's tasks that decode and stack the images for a streamed training
(``distributed.images``) import this module, and a worker that imported torch for it would carry several
hundred MB and a second of start-up for nothing. The network itself is ``learn.spectro``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from acoustic_env.config import ConfigError
from acoustic_env.features.logmel import column_features

#: The image column the CNN learns from (``table.IMAGE_TYPE``: by default 64 mel bands, 100 frames a second, in dB;
#: or their MFCCs, the kind in its metadata).
IMAGE_COLUMN = "logmel"


def recorded_image(estimator: Any, columns: dict[str, dict[str, Any]]) -> Any:
    """``estimator`` (a ``learn.portable.Portable``) with its image input's ``features`` (``features.image``,
    ``image_bands``, ``image_mfcc``) from ``columns`` (the training table's column metadata); itself for a model of
    vectors."""
    image = estimator.spec.get("input")
    if not image:
        return estimator
    features = column_features(columns.get(image["column"]), int(image["bands"]))
    return replace(estimator, spec={**estimator.spec, "input": {**image, "features": features}})


def check_image(image: dict[str, Any], columns: dict[str, dict[str, Any]], source: str) -> None:
    """ConfigError, one line, unless the image column of ``source`` (its ``columns`` metadata) holds the kind of
    image the model's input ``image`` records (a model saved before the kinds: a log-mel of its bands)."""
    want = image.get("features") or column_features(None, int(image["bands"]))
    have = column_features(columns.get(image["column"]), int(image["bands"]))
    if have != want:
        raise ConfigError(f"features: the {image['column']!r} images of {source} are {_words(have)}; the model "
                          f"learnt from {_words(want)}: extract the table with those settings (--features-image ...)")


def _words(features: dict[str, Any]) -> str:
    """``image=mfcc, image_bands=64, image_mfcc=20``: settings as the message names them."""
    return ", ".join(f"{k}={v}" for k, v in features.items())


def fit_width(image: np.ndarray, frames: int) -> np.ndarray:
    """``image`` [bands, n] as exactly ``frames`` frames: its centre, or itself padded both sides with its minimum."""
    n = image.shape[1]
    if n >= frames:
        start = (n - frames) // 2
        return np.ascontiguousarray(image[:, start:start + frames], dtype=np.float32)
    out = np.full((image.shape[0], frames), image.min() if image.size else 0.0, dtype=np.float32)
    start = (frames - n) // 2
    out[:, start:start + n] = image
    return out


def stack_images(images: Sequence[np.ndarray], frames: int) -> np.ndarray:
    """[clips, bands, frames] float32: every image at the model's window (``fit_width``)."""
    return np.stack([fit_width(im, frames) for im in images]).astype(np.float32)


def window_frames(images: Sequence[np.ndarray]) -> int:
    """The model's window: the training images' median number of frames (the training clip length)."""
    return int(np.median([im.shape[1] for im in images]))
