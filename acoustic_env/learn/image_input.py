"""The CNN's input window: which column holds a clip's log-mel image, and every image brought to one width.

numpy only, no torch: Ray Data's tasks that decode and stack the images for a streamed training
(``distributed.images``) import this module, and a worker that imported torch for it would carry several
hundred MB and a second of start-up for nothing. The network itself is ``learn.spectro``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The image column the CNN learns from (``table.IMAGE_TYPE``: 64 mel bands, 100 frames a second, in dB).
IMAGE_COLUMN = "logmel"


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
