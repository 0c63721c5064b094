"""The image of a clip: 64 mel bands × 100 frames a second in dB (or their MFCCs), for networks that learn from
the time-frequency plane (a CNN) instead of from the summary vectors of the other features.

One definition, ``LOGMEL``; the numpy function here is librosa's ``melspectrogram`` + ``power_to_db`` on those
settings (tests/test_logmel.py holds it to librosa, and the torch twin, ``features/torch/logmel.py``, to it):

- **Frames.** A periodic Hann window of 400 samples (25 ms) every 160 samples (10 ms), each frame zero-padded
  to a 512-point FFT, power ``|X|²``. Frames hold real audio only (no centring, no padding at the ends, as
  VGGish and YAMNet frame): ``1 + (n − 400) // 160`` frames, 998 for 10 s. A clip shorter than one window has
  no frame: a ``too_short`` error row (:func:`frame_count`).
- **Bands.** librosa's mel filterbank (Slaney scale and area normalisation, as the spectral statistics use),
  64 bands over 0–8000 Hz: the whole band the decode keeps. VGGish's and YAMNet's 125–7500 Hz would drop the
  traffic rumble and wind below 125 Hz that tell an urban recording from a natural one; the first band's
  triangle starts at 0 Hz, so the DC bin has no weight anyway.
- **dB.** ``10·log10(max(P, 1e-10))`` against a fixed reference of 1.0, then cells more than 80 dB below the
  clip's loudest raised to that floor (``top_db``, librosa's default). The decode normalises every clip to
  an RMS of 0.1, so a fixed reference keeps each cell's level relative to the clip's loudness, the same
  scale for every clip; a per-clip maximum reference would move the whole image by its loudest cell (one
  call near the microphone would darken the rest of the clip). The 80-dB floor keeps digital silence in part
  of a clip from stretching the 8-bit range the table stores the image in (``table.encode_images``): the
  quantisation step is at most 80 / 255 = 0.31 dB.
- **Kind** (``image``: ``features.image``). ``logmel``, the dB bands above (``bands`` of them:
  ``features.image_bands``), or ``mfcc``: each frame's first ``mfcc`` cepstral coefficients
  (``features.image_mfcc``), the orthonormal DCT-II of its dB bands, as ``librosa.feature.mfcc`` computes them from
  a log-mel (``S=``), here one matrix product (:func:`dct_matrix`) that the torch twin shares. The MFCC image of
  the studies that trained CNNs on MFCCs; its first row is the frame's mean level, the next ones its spectral shape.
  Either kind is stored in the one image column, ``logmel``, its kind in the column's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.errors import ClipError

#: The feature table's column of the images (``table.IMAGE_TYPE``).
COLUMN = "logmel"


@dataclass(frozen=True)
class LogMelSettings:
    """What computes the image; stored whole in the column's schema metadata (:meth:`metadata`), so that a model
    can check that a table was computed its way."""

    sample_rate: int = SAMPLE_RATE
    bands: int = 64
    win_length: int = 400  # 25 ms
    n_fft: int = 512
    hop_length: int = 160  # 10 ms: 100 frames a second
    window: str = "hann"  # periodic (scipy's and librosa's fftbins)
    center: bool = False
    power: float = 2.0
    fmin: float = 0.0
    fmax: float = 8000.0
    mel_scale: str = "slaney"  # librosa's default: htk=False, norm="slaney"
    db_ref: float = 1.0  # fixed: 10·log10(P / 1.0)
    amin: float = 1e-10
    top_db: float = 80.0  # below the clip's loudest cell
    image: str = "logmel"  # or "mfcc": the DCT of the dB bands
    mfcc: int = 0  # the coefficients an mfcc image keeps (its rows); 0 for a log-mel image

    @property
    def rows(self) -> int:
        """The image's rows: its bands, or its coefficients."""
        return self.mfcc if self.image == "mfcc" else self.bands

    def metadata(self) -> dict[str, object]:
        """The column's schema metadata: these settings, the layout, and the bands' centre frequencies."""
        import librosa

        centres = librosa.mel_frequencies(self.bands + 2, fmin=self.fmin, fmax=self.fmax)[1:-1]
        mfcc = self.image == "mfcc"
        return {"kind": "image", "shape": [self.rows, "frames"],
                "layout": f"row-major [{'coefficients' if mfcc else 'bands'}, frames]",
                "values": f"{'MFCC of the dB bands' if mfcc else 'dB'}, stored as uint8 codes: low + step * code "
                          "per row (table.decode_images)",
                "frame_count": f"1 + (samples - {self.win_length}) // {self.hop_length}", **asdict(self),
                "mel_hz": centres.tolist(), "source": "librosa melspectrogram + power_to_db"
                                                      + (" + feature.mfcc (dct_type=2, norm='ortho')" if mfcc else "")}


LOGMEL = LogMelSettings()


def image_settings(params: Any) -> LogMelSettings:
    """The settings of the image ``params`` (``FeatureParams``: ``image``, ``image_bands``, ``image_mfcc``) ask for;
    ``LOGMEL`` itself for the defaults."""
    mfcc = params.image == "mfcc"
    return replace(LOGMEL, bands=int(params.image_bands), image=params.image,
                   mfcc=int(params.image_mfcc) if mfcc else 0)


def column_features(meta: dict[str, Any] | None, bands: int) -> dict[str, Any]:
    """The ``features.image*`` settings an image column's metadata records (``LogMelSettings.metadata``): those
    of a log-mel image of ``bands`` bands for a column whose metadata predates the image kinds, or has none."""
    meta = meta or {}
    mfcc = meta.get("image") == "mfcc"
    return {"image": "mfcc" if mfcc else "logmel", "image_bands": int(meta.get("bands", bands)),
            **({"image_mfcc": int(meta["mfcc"])} if mfcc else {})}


def frame_count(samples: int, settings: LogMelSettings = LOGMEL) -> int:
    """The frames of a clip of ``samples``; ClipError ``too_short`` for a clip shorter than one window."""
    if samples < settings.win_length:
        raise ClipError("features", "too_short",
                        f"{1000 * samples / settings.sample_rate:.1f} ms is shorter than one log-mel window "
                        f"({settings.win_length} samples, {1000 * settings.win_length / settings.sample_rate:g} ms)")
    return 1 + (samples - settings.win_length) // settings.hop_length


@lru_cache(maxsize=4)
def mel_basis(settings: LogMelSettings = LOGMEL) -> np.ndarray:
    """librosa's mel filterbank [bands, n_fft // 2 + 1] (float32), as ``melspectrogram`` builds it."""
    import librosa

    return librosa.filters.mel(sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.bands,
                               fmin=settings.fmin, fmax=settings.fmax)


@lru_cache(maxsize=4)
def window(settings: LogMelSettings = LOGMEL) -> np.ndarray:
    """The analysis window (float32, ``win_length`` samples), as librosa takes it from scipy."""
    from scipy import signal  # here: scipy.signal takes 0.5 s to import, and a driver only names the column

    return signal.get_window(settings.window, settings.win_length, fftbins=True).astype(np.float32)


def logmel(audio: np.ndarray, settings: LogMelSettings = LOGMEL) -> np.ndarray:
    """The log-mel image of one clip (float32 at ``settings.sample_rate``): float32 dB [bands, frames].

    Each frame's 400 windowed samples are the first of its 512 FFT points; librosa centres the window in the
    512 instead, a circular shift that changes the phase only, never the power.

    Raises:
        ClipError: ``too_short``, a clip shorter than one window.
    """
    from scipy import fft as sfft

    x = np.asarray(audio, dtype=np.float32)
    n = frame_count(x.size, settings)
    frames = np.lib.stride_tricks.sliding_window_view(x, settings.win_length)[:: settings.hop_length][:n]
    spectrum = sfft.rfft(frames * window(settings), n=settings.n_fft, axis=1)  # [frames, bins] complex64
    power = spectrum.real**2 + spectrum.imag**2
    return to_db(mel_basis(settings) @ power.T, settings)


@lru_cache(maxsize=4)
def dct_matrix(settings: LogMelSettings) -> np.ndarray:
    """[mfcc, bands] float32: the first ``mfcc`` rows of the orthonormal DCT-II over the bands, so that
    ``dct_matrix @ db`` is ``scipy.fft.dct(db, type=2, norm="ortho", axis=0)[:mfcc]`` (``librosa.feature.mfcc``)."""
    from scipy import fft as sfft

    return sfft.dct(np.eye(settings.bands), type=2, norm="ortho", axis=0)[: settings.mfcc].astype(np.float32)


def compute_image(audio: np.ndarray, settings: LogMelSettings = LOGMEL) -> np.ndarray:
    """The image of one clip as ``settings`` say: its log-mel (:func:`logmel`), or that log-mel's MFCCs,
    float32 [rows, frames].

    Raises:
        ClipError: ``too_short``, a clip shorter than one window.
    """
    db = logmel(audio, settings)
    return dct_matrix(settings) @ db if settings.image == "mfcc" else db


def to_db(mel: np.ndarray, settings: LogMelSettings = LOGMEL) -> np.ndarray:
    """Mel power [bands, frames] → dB against the fixed reference, floored ``top_db`` below the loudest cell
    (``librosa.power_to_db``)."""
    db = 10.0 * np.log10(np.maximum(mel, np.float32(settings.amin)))
    db -= np.float32(10.0 * np.log10(max(settings.amin, settings.db_ref)))
    return np.maximum(db, db.max() - np.float32(settings.top_db))
