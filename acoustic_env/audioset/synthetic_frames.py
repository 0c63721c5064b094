"""Synthetic released-embedding TFRecords whose four classes differ only in the order of their seconds.

For the tests and the benchmark of ``acoustic-env audioset frames`` (``learn.audioset_frames``).
The records follow the release's schema (``jobs.audioset.embeddings``) and carry the four
classes of the shipped ``speech_animal_music_vehicle`` task. Dimensions 0-15 of a clip are
high (+1) in five of its ten seconds and low (-1) in the other five: the first five (speech),
the last five (animal), every other one (music) or in pairs (vehicle). Every class has as many
high as low frames, so the pooled vector (mean and max over the frames) is the same in
distribution for all four: only a model that sees the order tells them apart. A clip given a
second class (``two_class_every``) carries the sum of both patterns, so a multi-label model can
find both; a short clip (``short_every``) has seven frames, which the frame table leaves out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: class → (its index in class_labels_indices.csv, which of the ten seconds are high)
PATTERNS = {"speech": (0, "HHHHHLLLLL"), "animal": (72, "LLLLLHHHHH"),
            "music": (137, "HLHLHLHLHL"), "vehicle": (300, "LHHLLHHLLH")}


def quantize(x: np.ndarray) -> np.ndarray:
    """VGGish's post-processor (``vggish_postprocess.py``): clip to [-2, 2], then ``uint8((x + 2) * 255 / 4)``."""
    return ((np.clip(x, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def _pattern(order: str) -> np.ndarray:
    return np.array([1.0 if s == "H" else -1.0 for s in order])[:, None]


def write_order_tfrecords(directory: Path, n: int = 400, seed: int = 0, short_every: int = 12,
                          two_class_every: int = 20, noise: float = 0.3) -> None:
    """``n`` segments into ``directory/part.tfrecord``, two per video, the four classes in turn.

    Segment ``i`` has seven frames when ``i % short_every == 5`` and also the next class's label
    (and pattern) when ``i % two_class_every == 3``. ``noise``: the standard deviation of the
    Gaussian noise on every value (the patterns are ±1): at 0.3 every network is right, near 1
    the differences between them show.
    """
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(directory / "part.tfrecord"))
    classes = list(PATTERNS.values())
    for i in range(n):
        present = [classes[i % 4]] + ([classes[(i + 1) % 4]] if i % two_class_every == 3 else [])
        x = noise * rng.standard_normal((10, 128))
        x[:, :16] += sum(_pattern(order) for _, order in present)
        q = quantize(x[:7] if i % short_every == 5 else x)
        writer.write({"video_id": (f"vid{i // 2:05d}xx".encode(), "byte"),
                      "start_time_seconds": (float(10 * (i % 2)), "float"),
                      "end_time_seconds": (float(10 * (i % 2) + 10), "float"),
                      "labels": ([index for index, _ in present], "int")},
                     {"audio_embedding": ([bytes(row) for row in q], "byte")})
    writer.close()
