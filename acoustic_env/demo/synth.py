"""Deterministic generator of labelled synthetic soundscapes (offline demo data).

Why this exists: the project learns "urban vs natural" acoustic environment from
AudioSet-style clips, but the real clips need YouTube access.  This module makes
a small stand-in collection that needs no network and still exercises the whole
pipeline:

* every clip is a mix of 2-4 synthetic *sources* of its class (traffic, engines,
  horns, sirens, voices vs. birds, insects, wind, rain, streams) whose
  spectro-temporal character differs the way the real sounds do, so acoustic
  indices can separate the classes;
* the classes overlap as real ones do, so that the demo does not hide a weak
  model or audit (it once scored an audit at precision 0.95 / recall 1.00 that
  reached 0.56 / 0.61 on real recordings): most clips also hold a quieter,
  unlabelled source of the *other* class (birds in a city park, a distant road
  in a forest; AudioSet's labels miss quiet sources too), and the background
  noise level varies over 20 dB, so some clips are dominated by it;
* clips are written at varied sample rates and channel counts, so decoding and
  resampling paths are exercised;
* the segment list (``clips.csv``) uses AudioSet's published format with real
  MIDs, optionally with deliberately flipped class labels, so the label-audit
  code has something to find;
* a few deliberately broken entries (empty, not audio, truncated, missing, NaN
  samples, too short) exercise the error handling of the loaders;
* ``truth.csv`` records what was really generated, so tests and the demo can
  score an audit.

Everything is a pure function of the seed: the same seed gives byte-identical
audio files and CSVs (each clip draws from its own ``default_rng([seed, i])``
stream, and float WAVs are written by hand because libsndfile stamps the
current time into their PEAK chunk).

Only numpy, scipy and soundfile are used.  Synthesis is vectorised (event
loops at most, never per-sample Python loops) so 200 ten-second clips take a
few seconds to tens of seconds on one core.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy import signal

from acoustic_env.csv_writer import csv_bytes
from acoustic_env.embedders.spec import SAMPLE_RATE

__all__ = [
    "AUDIOSET_MIDS",
    "BROKEN_KINDS",
    "CHANNEL_CHOICES",
    "CLASS_MIDS",
    "CLASS_NAMES",
    "NATURAL_SOURCES",
    "SAMPLE_RATES",
    "SOURCE_LABELS",
    "SUPPORTED_FORMATS",
    "URBAN_SOURCES",
    "DemoSet",
    "SourceFn",
    "birdsong",
    "generate_demo",
    "horn",
    "insects",
    "make_clip",
    "make_ytid",
    "passing_engine",
    "rain",
    "siren",
    "stream",
    "traffic_rumble",
    "voices",
    "wind",
]

SourceFn = Callable[[np.random.Generator, int, int], np.ndarray]
"""A source generator: ``(rng, n_samples, sr) -> float32 array of shape (n_samples,)``."""

# --------------------------------------------------------------------------------------
# Labels.  MIDs checked against AudioSet's class_labels_indices.csv (527 classes).
# --------------------------------------------------------------------------------------

#: AudioSet display name -> MID, for every label this module can emit.
AUDIOSET_MIDS: dict[str, str] = {
    "Outside, urban or manmade": "/t/dd00128",
    "Outside, rural or natural": "/t/dd00129",
    "Traffic noise, roadway noise": "/m/0btp2",
    "Vehicle horn, car horn, honking": "/m/0912c9",
    "Siren": "/m/03kmc9",
    "Engine": "/m/02mk9",
    "Speech": "/m/09x0r",
    "Bird vocalization, bird call, bird song": "/m/020bb7",
    "Insect": "/m/03vt0",
    "Wind": "/m/03m9d0z",
    "Rain": "/m/06mb1",
    "Stream": "/m/0j6m2",
}

#: Class name used in truth.csv -> AudioSet display name of the class label.
CLASS_NAMES: dict[str, str] = {
    "urban": "Outside, urban or manmade",
    "natural": "Outside, rural or natural",
}
#: Class name -> MID of the class label.
CLASS_MIDS: dict[str, str] = {c: AUDIOSET_MIDS[n] for c, n in CLASS_NAMES.items()}

#: Source name -> AudioSet display name of the label it carries.
SOURCE_LABELS: dict[str, str] = {
    "traffic": "Traffic noise, roadway noise",
    "engine": "Engine",
    "horn": "Vehicle horn, car horn, honking",
    "siren": "Siren",
    "voices": "Speech",
    "birdsong": "Bird vocalization, bird call, bird song",
    "insects": "Insect",
    "wind": "Wind",
    "rain": "Rain",
    "stream": "Stream",
}

#: Realistic sample rates; every clip picks one so resampling is exercised (and, at the models'
#: own rate, skipped).
SAMPLE_RATES: tuple[int, ...] = (SAMPLE_RATE, 22050, 32000, 44100, 48000)
#: Channel counts a clip may have (mono or stereo).
CHANNEL_CHOICES: tuple[int, ...] = (1, 2)
#: Kinds of broken entries, in the order ``generate_demo`` cycles through them.
BROKEN_KINDS: tuple[str, ...] = (
    "empty",
    "not_audio",
    "truncated",
    "missing",
    "nan_samples",
    "too_short",
)
#: Container formats ``generate_demo`` can write byte-reproducibly.  (Ogg is left
#: out on purpose: libsndfile gives each Ogg stream a random serial number.)
SUPPORTED_FORMATS: dict[str, str] = {"flac": "FLAC", "wav": "WAV"}

_YTID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_TOO_SHORT_S = 0.05
_TRUNCATE_FRACTION = 0.3

# --------------------------------------------------------------------------------------
# Small DSP helpers
# --------------------------------------------------------------------------------------


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _hz(f: float, sr: int) -> float:
    """Clamp a design frequency below Nyquist, so one recipe works at 16 kHz and 48 kHz."""
    return float(min(f, 0.45 * sr))


def _filt(x: np.ndarray, sr: int, btype: str, freq: float | tuple[float, float], order: int = 2) -> np.ndarray:
    """Butterworth filter (SOS form, causal) along the last axis."""
    if isinstance(freq, tuple):
        lo, hi = _hz(freq[0], sr), _hz(freq[1], sr)
        if hi <= lo * 1.05:
            lo = hi / 1.5
        wn: float | tuple[float, float] = (lo, hi)
    else:
        wn = _hz(freq, sr)
    sos = signal.butter(order, wn, btype=btype, fs=sr, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / rms if rms > 1e-12 else x


def _smooth_noise(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Slow random control signal (about N(0, 1)): random knots at ``rate_hz``, linearly interpolated.

    Used for gusts, intensity drifts and intonation; far cheaper than filtering
    white noise to sub-Hz bandwidths.
    """
    dur = n / sr
    n_knots = int(np.ceil(dur * rate_hz)) + 2
    knots = rng.standard_normal(n_knots)
    return np.interp(_time(n, sr) * rate_hz, np.arange(n_knots), knots)


def _colored_noise(rng: np.random.Generator, shape: tuple[int, ...], sr: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (1 = pink, 2 = brown), via FFT shaping."""
    n = shape[-1]
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1] if n > 1 else 1.0
    spec *= (f / 20.0) ** (-exponent / 2.0) * (f >= 15.0)  # no sub-audio drift
    return np.fft.irfft(spec, n=n, axis=-1)


def _scatter(n: int, starts: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Add equal-length event waveforms ``events[k]`` into a length-``n`` signal at ``starts[k]``.

    One ``bincount`` instead of a Python loop over thousands of droplets/bubbles.
    """
    if len(starts) == 0:
        return np.zeros(n)
    length = events.shape[1]
    idx = starts[:, None] + np.arange(length)[None, :]
    keep = idx < n
    return np.bincount(idx[keep], weights=events[keep], minlength=n)[:n]


def _harmonics(phase: np.ndarray, amps: list[float], f_max_hz: float, sr: int) -> np.ndarray:
    """Sum of harmonics ``sum_k amps[k-1] * sin(2 pi k phase)`` (phase in cycles), none above Nyquist.

    Uses the Chebyshev recursion sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x),
    so only one sin/cos pair is evaluated however many harmonics there are.
    """
    x = 2 * np.pi * (phase % 1.0)
    s_prev, s_k = np.zeros_like(x), np.sin(x)
    two_c = 2.0 * np.cos(x)
    out = np.zeros_like(x)
    for k, a in enumerate(amps, start=1):
        if k * f_max_hz >= 0.48 * sr:
            break
        out += a * s_k
        s_prev, s_k = s_k, two_c * s_k - s_prev
    return out


def _out(x: np.ndarray) -> np.ndarray:
    return _unit_rms(np.nan_to_num(x)).astype(np.float32)


# --------------------------------------------------------------------------------------
# Urban sources
# --------------------------------------------------------------------------------------


def traffic_rumble(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Distant traffic: low-passed brown-ish noise with slow amplitude modulation.

    Energy sits below ~500 Hz and swells over seconds as traffic flows, which is
    what drives the low spectral centroid and low acoustic complexity of urban scenes.
    """
    x = _colored_noise(rng, (n_samples,), sr, exponent=1.7)
    x = _filt(x, sr, "lowpass", float(rng.uniform(300, 700)), order=4)
    t = _time(n_samples, sr)
    am = 1.0 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    am *= np.exp(0.3 * _smooth_noise(rng, n_samples, sr, 0.5))
    return _out(x * am)


def passing_engine(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """One to three vehicles passing by: harmonic engine tone (80-200 Hz) with a Doppler glide.

    Each pass has a rise/fall envelope centred on the closest approach and a
    pitch that drops through it (tanh glide), the signature of a drive-by.
    """
    t = _time(n_samples, sr)
    dur = n_samples / sr
    out = np.zeros(n_samples)
    for _ in range(int(rng.integers(1, 4))):
        f0 = rng.uniform(80, 200)
        tc = rng.uniform(0.1, 0.9) * dur
        width = rng.uniform(0.1, 0.3) * dur + 1e-3
        doppler = rng.uniform(0.04, 0.12)
        f = f0 * (1.0 - doppler * np.tanh((t - tc) / (0.3 * width)))
        f *= 1.0 + 0.01 * _smooth_noise(rng, n_samples, sr, 3.0)  # throttle wobble
        phase = np.cumsum(f) / sr
        amps = [1.0, 0.7, 0.5, 0.35, 0.25, 0.15]
        tone = _harmonics(phase, amps, f0 * 1.2, sr)
        # Firing-rate modulated mechanical noise gives the tone its grit.
        grit = _filt(rng.standard_normal(n_samples), sr, "bandpass", (200.0, 1500.0))
        grit *= 0.5 + 0.5 * np.sin(2 * np.pi * phase * 0.5)
        env = 1.0 / (1.0 + ((t - tc) / width) ** 2)
        out += rng.uniform(0.5, 1.0) * env * (tone + 0.4 * grit)
    return _out(out)


def horn(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Car horns: short bursts of two simultaneous harmonic tones around 400-500 Hz.

    Abrupt onsets and a stable, harmonically rich two-tone chord make horns a
    strongly tonal, impulsive mid-frequency event.
    """
    dur = n_samples / sr
    out = np.zeros(n_samples)
    amps = [1.0, 0.6, 0.45, 0.3, 0.2, 0.12, 0.08]
    for _ in range(int(rng.integers(1, 6))):
        length = int(min(rng.uniform(0.12, 0.9), dur) * sr)
        if length < 8:
            continue
        start = int(rng.integers(0, max(1, n_samples - length)))
        tl = np.arange(length) / sr
        f1 = rng.uniform(400, 440)
        f2 = f1 * rng.uniform(1.12, 1.22)
        burst = _harmonics(f1 * tl, amps, f1, sr) + _harmonics(f2 * tl, amps, f2, sr)
        ramp = np.minimum(1.0, np.minimum(tl, tl[::-1]) / 0.01)
        out[start : start + length] += rng.uniform(0.5, 1.0) * burst * ramp
    return _out(out)


def siren(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Emergency siren: "wail" or "yelp" FM sweep between ~600 and ~1500 Hz.

    The sweep is periodic (seconds for wail, ~0.3 s for yelp) and the whole
    siren fades in and out as the vehicle approaches and leaves.
    """
    t = _time(n_samples, sr)
    dur = n_samples / sr
    lo = rng.uniform(600, 800)
    hi = rng.uniform(1200, 1500)
    period = rng.uniform(2.0, 6.0) if rng.random() < 0.6 else rng.uniform(0.2, 0.4)
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    f = lo + (hi - lo) * sweep
    phase = np.cumsum(f) / sr
    tone = _harmonics(phase, [1.0, 0.35, 0.2], hi, sr)
    tc = rng.uniform(0.2, 0.8) * dur
    env = 1.0 / (1.0 + ((t - tc) / (rng.uniform(0.3, 1.0) * dur)) ** 2)
    return _out(tone * env)


_VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # /a/
    (270.0, 2290.0, 3010.0),  # /i/
    (300.0, 870.0, 2240.0),  # /u/
    (530.0, 1840.0, 2480.0),  # /e/
)


def voices(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Babble of 2-6 talkers: glottal pulse trains through vowel formants, 4 Hz syllables.

    Talkers get their own pitch (100-250 Hz, with intonation) and syllable
    timing; each syllable picks a vowel.  Excitations are summed per vowel and
    filtered once per vowel (cascaded formant resonators), which keeps it cheap.
    """
    buses = np.zeros((len(_VOWELS), n_samples))
    for _ in range(int(rng.integers(2, 7))):
        f0 = rng.uniform(100, 250) * (1.0 + 0.08 * _smooth_noise(rng, n_samples, sr, 2.0))
        pulses = np.flatnonzero(np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0))  # one per period
        rate = rng.uniform(3.5, 5.0) * (1.0 + 0.15 * _smooth_noise(rng, n_samples, sr, 1.0))
        syll = (np.cumsum(rate) / sr + rng.uniform(0, 1))[pulses]
        env = np.sin(np.pi * (syll % 1.0)) ** 2
        env *= _smooth_noise(rng, n_samples, sr, 0.4)[pulses] > -0.6  # pauses between phrases
        n_syll = int(syll[-1]) + 2 if len(syll) else 1
        vowel = rng.integers(0, len(_VOWELS), size=n_syll)[syll.astype(np.int64)]
        # The excitation is sparse (one impulse per glottal period): touch only those samples.
        np.add.at(buses, (vowel, pulses), env * rng.uniform(0.5, 1.0))
    out = np.zeros(n_samples)
    for v, formants in enumerate(_VOWELS):
        # Cascade formant resonators (Klatt-style vocal tract), one SOS call per vowel.
        sos = np.vstack([signal.tf2sos(*signal.iirpeak(fc, Q=fc / 90.0, fs=sr)) for fc in formants if fc < 0.45 * sr])
        out += signal.sosfilt(sos, buses[v])
    out = signal.lfilter([1.0], [1.0, -0.9], out)  # glottal spectral tilt (LTI, so applied once)
    return _out(out)


# --------------------------------------------------------------------------------------
# Natural sources
# --------------------------------------------------------------------------------------


def birdsong(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Birdsong: phrases of short chirps and trills with fast FM in the 2-6 kHz band.

    Phrases are either trills (rapidly repeated down-sweeps, 8-25 per second)
    or warbles (fast sinusoidal FM); both are near-pure tones with many sharp
    onsets, which raises acoustic complexity and the spectral centroid.
    """
    dur = n_samples / sr
    out = np.zeros(n_samples)
    n_phrases = max(1, int(rng.poisson(rng.uniform(0.4, 1.2) * dur)))
    for _ in range(n_phrases):
        length = int(min(rng.uniform(0.3, 2.0), dur) * sr)
        if length < 16:
            continue
        start = int(rng.integers(0, max(1, n_samples - length)))
        tl = np.arange(length) / sr
        if rng.random() < 0.5:  # trill of down-sweeping chirps
            rate = rng.uniform(8, 25)
            cyc = tl * rate
            frac = cyc % 1.0
            f_hi = rng.uniform(3500, 6000)
            f_lo = rng.uniform(2000, f_hi - 500)
            f = f_hi - (f_hi - f_lo) * frac
            duty = rng.uniform(0.4, 0.8)
            env = np.where(frac < duty, np.sin(np.pi * np.minimum(frac / duty, 1.0)) ** 2, 0.0)
        else:  # warble: fast sinusoidal FM
            fc = rng.uniform(2800, 5000)
            dev = rng.uniform(300, 1000)
            f = fc + dev * np.sin(2 * np.pi * rng.uniform(10, 40) * tl)
            gate = np.sin(np.pi * ((tl * rng.uniform(3, 8)) % 1.0)) ** 2
            env = gate
        f = np.clip(f, 2000, 6000)
        phrase = np.sin(2 * np.pi * np.cumsum(f) / sr) * env * np.hanning(length)
        out[start : start + length] += rng.uniform(0.3, 1.0) * phrase
    return _out(out)


def insects(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Insect stridulation: narrowband carriers at 4-7 kHz pulsed 20-50 times a second.

    Crickets group the pulses into chirps (1-3 per second); katydids/cicadas
    keep going.  The steady high narrow band is typical of rural soundscapes.
    """
    t = _time(n_samples, sr)
    out = np.zeros(n_samples)
    for _ in range(int(rng.integers(1, 4))):
        fc = rng.uniform(4000, 7000)
        f = fc * (1.0 + 0.005 * _smooth_noise(rng, n_samples, sr, 5.0))
        carrier = np.sin(2 * np.pi * np.cumsum(f) / sr)
        pulse = (t * rng.uniform(20, 50) + rng.uniform(0, 1)) % 1.0
        duty = rng.uniform(0.3, 0.7)
        env = np.where(pulse < duty, np.sin(np.pi * np.minimum(pulse / duty, 1.0)) ** 2, 0.0)
        if rng.random() < 0.6:  # cricket-like chirp groups
            group = (t * rng.uniform(1.0, 3.0) + rng.uniform(0, 1)) % 1.0
            env *= group < rng.uniform(0.3, 0.7)
        out += rng.uniform(0.4, 1.0) * carrier * env
    return _out(out)


def wind(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Wind: band-passed noise with slow gusts; gusts also brighten the sound.

    A broad low/mid band (~100 Hz to ~1.5 kHz) follows a slowly varying gust
    envelope; a weaker upper band follows the envelope squared, as stronger
    gusts excite foliage and edges.
    """
    gust = np.exp(0.7 * _smooth_noise(rng, n_samples, sr, rng.uniform(0.2, 0.6)))
    low = _filt(rng.standard_normal(n_samples), sr, "bandpass", (rng.uniform(80, 200), rng.uniform(600, 1500)))
    high = _filt(rng.standard_normal(n_samples), sr, "bandpass", (1500.0, rng.uniform(3000, 6000)))
    return _out(_unit_rms(low) * gust + 0.4 * _unit_rms(high) * gust**2)


def rain(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Rain: dense random droplet clicks over broadband (high-passed) noise.

    Droplets are Poisson impulses (hundreds to thousands per second) with
    heavy-tailed amplitudes and ~1 ms decays; the result is bright, broadband
    and impulsive.
    """
    dur = n_samples / sr
    hiss = _unit_rms(_filt(rng.standard_normal(n_samples), sr, "highpass", rng.uniform(300, 800)))
    n_drops = int(rng.poisson(rng.uniform(300, 2500) * dur))
    imp = np.bincount(
        rng.integers(0, n_samples, size=n_drops),
        weights=rng.lognormal(0.0, 0.8, size=n_drops) * rng.choice([-1.0, 1.0], size=n_drops),
        minlength=n_samples,
    )[:n_samples]
    decay = np.exp(-1.0 / (rng.uniform(0.3, 1.5) * 1e-3 * sr))
    drops = signal.lfilter([1.0], [1.0, -decay], imp)
    drops = _unit_rms(_filt(drops, sr, "highpass", 1000.0))
    intensity = np.exp(0.25 * _smooth_noise(rng, n_samples, sr, 0.3))
    return _out((rng.uniform(0.3, 0.8) * hiss + drops) * intensity)


def stream(rng: np.random.Generator, n_samples: int, sr: int) -> np.ndarray:
    """Stream: many short decaying, rising-pitch sinusoids (bubbles, 300-2000 Hz) over pink noise.

    Each bubble rings for a few ms with a slight upward glide (Minnaert
    resonance of a rising bubble); all bubbles are synthesised as one matrix and
    scattered into the signal in one step.
    """
    dur = n_samples / sr
    bed = _unit_rms(_filt(_colored_noise(rng, (n_samples,), sr, 1.0), sr, "lowpass", 4000.0))
    n_bub = int(rng.poisson(rng.uniform(60, 250) * dur))
    length = max(2, int(0.02 * sr))
    tl = (np.arange(length) / sr).astype(np.float32)
    f0 = np.exp(rng.uniform(np.log(300), np.log(2000), size=n_bub))[:, None].astype(np.float32)
    glide = rng.uniform(5, 30, size=n_bub)[:, None].astype(np.float32)
    tau = rng.uniform(0.002, 0.006, size=n_bub)[:, None].astype(np.float32)
    amp = rng.lognormal(0.0, 0.5, size=n_bub)[:, None].astype(np.float32)
    # float32 matrix (bubbles x samples): phase is the integral of f0 * (1 + glide * t).
    phase = f0 * (tl + np.float32(0.5) * glide * tl**2)
    bubbles = amp * np.exp(-tl / tau) * np.sin(np.float32(2 * np.pi) * phase)
    starts = rng.integers(0, max(1, n_samples - 1), size=n_bub)
    bub = _unit_rms(_scatter(n_samples, starts, bubbles))
    return _out(bub + rng.uniform(0.3, 0.7) * bed)


#: Source name -> generator, per class.
URBAN_SOURCES: dict[str, SourceFn] = {
    "traffic": traffic_rumble,
    "engine": passing_engine,
    "horn": horn,
    "siren": siren,
    "voices": voices,
}
NATURAL_SOURCES: dict[str, SourceFn] = {
    "birdsong": birdsong,
    "insects": insects,
    "wind": wind,
    "rain": rain,
    "stream": stream,
}
_CLASS_SOURCES: dict[str, dict[str, SourceFn]] = {"urban": URBAN_SOURCES, "natural": NATURAL_SOURCES}
#: Share of clips with an unlabelled source of the other class, and its level (dB, the class's own sources
#: are at -12..0 dB before the mix is normalised).
CONFUSER_PROB = 0.6
CONFUSER_DB = (-15.0, -3.0)
#: Background (pink noise) level in dB: from barely audible to as loud as a quiet source.
BACKGROUND_DB = (-32.0, -12.0)


# --------------------------------------------------------------------------------------
# Clip mixing
# --------------------------------------------------------------------------------------


def _shift(x: np.ndarray, d: int) -> np.ndarray:
    """Delay by ``d`` samples (zero-filled), for small inter-channel time differences."""
    if d <= 0 or d >= len(x):
        return x
    return np.concatenate([np.zeros(d, dtype=x.dtype), x[:-d]])


def make_clip(
    rng: np.random.Generator,
    cls: str,
    duration_s: float,
    sr: int,
    channels: int,
    n_sources: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Mix 2-4 sources of class ``cls``, often an unlabelled one of the other class, and a pink background.

    Returns ``(audio, source_names)`` with ``audio`` float32 of shape
    ``(n_samples, channels)``, peak below 1 so 16-bit encoding never clips.
    Levels are random per source (0 to -12 dB); with probability
    ``CONFUSER_PROB`` one source of the other class is added at
    ``CONFUSER_DB`` (not in ``source_names``: a label list misses quiet
    sources); the background sits at ``BACKGROUND_DB``. In stereo each source
    is panned and slightly delayed and the background is decorrelated, which is
    how real field recordings look.
    """
    if cls not in _CLASS_SOURCES:
        raise ValueError(f"unknown class {cls!r}; expected one of {sorted(_CLASS_SOURCES)}")
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    pool = _CLASS_SOURCES[cls]
    n = max(1, int(round(duration_s * sr)))
    k = int(rng.integers(2, 5)) if n_sources is None else int(n_sources)
    names = sorted(rng.choice(list(pool), size=min(k, len(pool)), replace=False).tolist())
    other = next(p for c, p in _CLASS_SOURCES.items() if c != cls)
    confuser = str(rng.choice(sorted(other))) if rng.random() < CONFUSER_PROB else None
    mix = np.zeros((channels, n))
    for name in names + ([confuser] if confuser else []):
        level_db = rng.uniform(*CONFUSER_DB) if name == confuser else rng.uniform(-12, 0)
        x = (pool.get(name) or other[name])(rng, n, sr).astype(np.float64) * 10 ** (level_db / 20)
        if channels == 1:
            mix[0] += x
        else:
            pan = rng.uniform(0.1, 0.9) * np.pi / 2  # constant-power pan
            d = int(rng.uniform(0, 0.0006) * sr)
            left, right = (x, _shift(x, d)) if rng.random() < 0.5 else (_shift(x, d), x)
            mix[0] += np.cos(pan) * left
            mix[1] += np.sin(pan) * right
    bg = _colored_noise(rng, (channels, n), sr, exponent=rng.uniform(0.8, 1.2))
    bg /= max(float(np.sqrt(np.mean(bg**2))), 1e-12)
    mix += bg * 10 ** (rng.uniform(*BACKGROUND_DB) / 20)
    peak = float(np.max(np.abs(mix)))
    mix *= 10 ** (rng.uniform(-12, -1) / 20) / max(peak, 1e-12)
    return mix.T.astype(np.float32), names


# --------------------------------------------------------------------------------------
# File writing
# --------------------------------------------------------------------------------------


def make_ytid(rng: np.random.Generator) -> str:
    """An 11-character YouTube-style id over ``[A-Za-z0-9_-]``."""
    return "".join(_YTID_ALPHABET[i] for i in rng.integers(0, len(_YTID_ALPHABET), size=11))


def _encode(audio: np.ndarray, sr: int, fmt: str) -> bytes:
    """Encode as 16-bit PCM in ``fmt``; in-memory so the bytes can be cut for ``truncated``."""
    buf = io.BytesIO()
    sf.write(buf, audio, sr, format=SUPPORTED_FORMATS[fmt], subtype="PCM_16")
    return buf.getvalue()


def _float_wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """Minimal IEEE-float WAV writer.

    libsndfile adds a PEAK chunk with the current time to float WAVs, which
    would break byte-for-byte reproducibility, so the NaN file is written here.
    """
    audio = np.ascontiguousarray(audio, dtype="<f4")
    if audio.ndim == 1:
        audio = audio[:, None]
    channels = audio.shape[1]
    data = audio.tobytes()
    fmt_chunk = struct.pack("<HHIIHH", 3, channels, sr, sr * channels * 4, channels * 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class DemoSet:
    """What ``generate_demo`` wrote: paths and counts (``n_good + n_broken`` rows in clips.csv)."""

    out_dir: Path
    clips_csv: Path
    truth_csv: Path
    audio_dir: Path
    n_good: int
    n_broken: int
    n_flipped: int


def _balanced_classes(rng: np.random.Generator, n: int, extra: str) -> list[str]:
    """``n`` class names, half each (the odd one out is ``extra``), in seed-shuffled order."""
    other = "natural" if extra == "urban" else "urban"
    labels = [extra] * ((n + 1) // 2) + [other] * (n // 2)
    return [labels[i] for i in rng.permutation(n)]


def generate_demo(
    out_dir: str | Path,
    n_clips: int = 200,
    seed: int = 0,
    duration_s: float = 10.0,
    label_noise: float = 0.0,
    n_broken: int = 6,
    fmt: str = "flac",
) -> DemoSet:
    """Write a labelled synthetic soundscape collection into ``out_dir``.

    ``n_clips`` is the total number of rows in ``clips.csv``; ``n_broken`` of
    them are deliberately broken (cycling through :data:`BROKEN_KINDS`) and the
    other ``n_good = n_clips - n_broken`` are real clips, half urban and half
    natural.  ``label_noise`` flips the class MID of exactly
    ``round(label_noise * n_good)`` good clips in ``clips.csv``.

    Layout::

        out_dir/audio/{YTID}_{start_ms}.{fmt}   (the nan_samples entry is .wav)
        out_dir/clips.csv                       AudioSet segment-list format
        out_dir/truth.csv                       what was really generated

    Same arguments -> byte-identical files.  Existing files with the same names
    are overwritten; other files in ``audio/`` are left alone.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in SUPPORTED_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(SUPPORTED_FORMATS)}, got {fmt!r}")
    if n_clips < 0 or n_broken < 0 or n_broken > n_clips:
        raise ValueError("need 0 <= n_broken <= n_clips")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError("label_noise must be in [0, 1]")
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")

    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    n_good = n_clips - n_broken

    # Plan everything from one "meta" stream; audio comes from per-clip streams
    # so a clip's sound depends only on (seed, clip index).
    meta = np.random.default_rng([seed, 0x5E6])
    ytids: list[str] = []
    seen: set[str] = set()
    while len(ytids) < n_clips:
        y = make_ytid(meta)
        if y not in seen:
            seen.add(y)
            ytids.append(y)
    starts_s = (meta.integers(0, 30, size=n_clips) * 10).tolist()
    # Good clips: balanced, the odd one urban; broken: odd one natural, so totals differ by <= 1.
    classes = _balanced_classes(meta, n_good, "urban") + _balanced_classes(meta, n_broken, "natural")
    broken_kind = [""] * n_good + [BROKEN_KINDS[i % len(BROKEN_KINDS)] for i in range(n_broken)]
    n_flip = int(round(label_noise * n_good))
    flip_idx = set(meta.choice(n_good, size=n_flip, replace=False).tolist()) if n_flip else set()
    srs = meta.choice(SAMPLE_RATES, size=n_clips).tolist()
    chans = meta.choice(CHANNEL_CHOICES, size=n_clips).tolist()

    clip_rows: list[tuple[str, float, float, list[str]]] = []
    truth_rows: list[dict[str, object]] = []
    for i in range(n_clips):
        rng = np.random.default_rng([seed, i])
        ytid, start, cls, kind = ytids[i], float(starts_s[i]), classes[i], broken_kind[i]
        sr, ch = int(srs[i]), int(chans[i])
        clip_id = f"{ytid}_{int(start * 1000)}"
        path = audio_dir / f"{clip_id}.{fmt}"
        dur = _TOO_SHORT_S if kind == "too_short" else duration_s
        # Broken entries that never hold decodable samples still get a plausible label.
        if kind in ("", "truncated", "too_short", "nan_samples"):
            audio, sources = make_clip(rng, cls, dur, sr, ch)
        else:
            audio, sources = None, sorted(rng.choice(list(_CLASS_SOURCES[cls]), size=2, replace=False).tolist())
        truth_sr, truth_ch = sr, ch
        if kind == "":
            path.write_bytes(_encode(audio, sr, fmt))
        elif kind == "empty":
            path.write_bytes(b"")
            truth_sr = truth_ch = 0
        elif kind == "not_audio":
            path.write_bytes(
                f"This is not audio: placeholder for {clip_id} (acoustic-env demo, seed {seed}).\n".encode()
            )
            truth_sr = truth_ch = 0
        elif kind == "truncated":
            # Always FLAC bytes: a cut FLAC fails to decode, a cut WAV just reads short.
            data = _encode(audio, sr, "flac")
            path.write_bytes(data[: int(len(data) * _TRUNCATE_FRACTION)])
        elif kind == "missing":
            truth_sr = truth_ch = 0
        elif kind == "nan_samples":
            audio = audio.copy()
            n = audio.shape[0]
            audio[rng.integers(0, n, size=max(1, n // 100))] = np.nan
            (audio_dir / f"{clip_id}.wav").write_bytes(_float_wav_bytes(audio, sr))
        elif kind == "too_short":
            path.write_bytes(_encode(audio, sr, fmt))

        flipped = i in flip_idx
        given = ("natural" if cls == "urban" else "urban") if flipped else cls
        labels = [CLASS_MIDS[given]] + sorted({AUDIOSET_MIDS[SOURCE_LABELS[s]] for s in sources})
        clip_rows.append((ytid, start, start + duration_s, labels))
        truth_rows.append(
            {
                "clip_id": clip_id,
                "true_class": cls,
                "given_class": given,
                "flipped": int(flipped),
                "broken": int(kind != ""),
                "broken_kind": kind,
                "sample_rate": truth_sr,
                "channels": truth_ch,
            }
        )

    # AudioSet lists are sorted by YTID; sorting also hides broken entries among good ones.
    order = sorted(range(n_clips), key=lambda j: clip_rows[j][0])
    clips_csv = out_dir / "clips.csv"
    n_pos = sum(len(r[3]) for r in clip_rows)
    n_unique = len({m for r in clip_rows for m in r[3]})
    lines = [
        f"# Segments csv created by acoustic-env demo (seed {seed})",
        f"# num_ytids={len(set(ytids))}, num_segs={n_clips}, "
        f"num_unique_labels={n_unique}, num_positive_labels={n_pos}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    for j in order:
        ytid, start, end, labels = clip_rows[j]
        lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(labels)}"')
    clips_csv.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")

    truth_csv = out_dir / "truth.csv"
    fields = ["clip_id", "true_class", "given_class", "flipped", "broken", "broken_kind", "sample_rate", "channels"]
    truth_csv.write_bytes(csv_bytes(fields, [truth_rows[j] for j in order]))

    return DemoSet(
        out_dir=out_dir,
        clips_csv=clips_csv,
        truth_csv=truth_csv,
        audio_dir=audio_dir,
        n_good=n_good,
        n_broken=n_broken,
        n_flipped=n_flip,
    )
