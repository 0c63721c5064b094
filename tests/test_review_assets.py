"""The review and report pages' clip spectrograms (``pages/review.py: spectrogram_png``) against matplotlib's own
``imshow`` + ``savefig`` of the same picture: the axes are matplotlib's, drawn once per clip length, and the image
under them is coloured and resized outside matplotlib, so the two are compared pixel by pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import signal

from acoustic_env.pages.review import SPEC_AXES, _spectrogram_frame, spectrogram_png

SR = 16000


def matplotlib_png(audio: np.ndarray, sr: int = SR) -> bytes:
    """The picture as matplotlib draws it whole: the reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _, _, S = signal.spectrogram(audio, fs=sr, nperseg=512, noverlap=384, window="hann")
    db = 10 * np.log10(S + 1e-10)
    vmax = float(db.max())
    fig = Figure(figsize=(5.0, 1.9), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(SPEC_AXES)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
              extent=(0, audio.size / sr, 0, sr / 2000))
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.set_ylabel("kHz", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=7, length=2, pad=1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def chirp(seconds: float, sr: int = SR) -> np.ndarray:
    """A rising tone over faint noise: a line across the picture, low on the left, high on the right."""
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * (300 + 2500 * t / seconds) * t) + 0.01 * noise).astype(np.float32)


@pytest.mark.parametrize("seconds", [10.0, 2.5])
def test_the_spectrogram_is_matplotlibs_picture(seconds):
    """The same size; the axes, ticks and labels the same pixels; the image inside them the same colours, to within
    the two resizings (imshow's and Pillow's), and the tone's line in the same place."""
    audio = chirp(seconds)
    ours, theirs = pixels(spectrogram_png(audio)), pixels(matplotlib_png(audio))
    assert ours.shape == theirs.shape == (182, 480, 3)
    _, (left, top, right, bottom) = _spectrogram_frame(round(seconds, 3), SR / 2000)
    outside = np.ones(ours.shape[:2], bool)
    outside[top - 1:bottom + 1, left - 1:right + 1] = False  # the spines may fall a pixel either side of the box
    assert np.abs(ours - theirs)[outside].max() <= 4  # ticks and labels: the same, to the rounding of their blending
    inside = np.abs(ours - theirs)[top + 1:bottom - 1, left + 1:right - 1]
    assert inside.mean() < 6 and np.mean(inside.max(axis=-1) > 64) < 0.01, (inside.mean(), inside.max())

    def line(img: np.ndarray) -> np.ndarray:  # the brightest row of each column: where the tone is
        return img[top + 1:bottom - 1, left + 1:right - 1].sum(axis=-1).argmax(axis=0)

    assert np.abs(line(ours) - line(theirs)).max() <= 2
    assert line(ours)[5] > line(ours)[-5] + 40  # rising: the line nearer the top (row 0) on the right


def test_the_shortest_clip_and_a_silent_one_still_get_axes():
    """The shortest clip a page takes (``_DECODE``'s 0.05 s: fewer analysis windows than the axes have pixels) and
    one of silence get a picture with the axes, not an error."""
    for audio in (np.zeros(SR, np.float32), chirp(0.05)):
        img = pixels(spectrogram_png(audio))
        assert img.shape == (182, 480, 3) and (img.sum(axis=-1) < 100).any()  # black ticks and labels


def test_each_clip_length_has_its_own_axes_drawn_once():
    """The axes of a length are drawn once and kept: a second clip of that length reuses them; another length gets
    its own ticks."""
    _spectrogram_frame.cache_clear()
    spectrogram_png(chirp(10.0))
    spectrogram_png(chirp(10.0) * 0.5)
    spectrogram_png(chirp(3.0))
    info = _spectrogram_frame.cache_info()
    assert (info.hits, info.misses) == (1, 2)
    ten, three = _spectrogram_frame(10.0, 8.0)[0], _spectrogram_frame(3.0, 8.0)[0]
    assert np.asarray(ten).tobytes() != np.asarray(three).tobytes()
