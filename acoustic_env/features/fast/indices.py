"""scikit-maad's 60 alpha indices, vectorised: one spectrogram, no per-row or per-region Python loops.

Same signature and output as :func:`acoustic_env.features.reference.indices.maad_indices` (values in
``INDEX_NAMES`` order, float64, possibly non-finite). Each index is computed with
the formula scikit-maad 1.5.2 uses, on the same Hann PSD spectrogram, so the
values agree to floating-point rounding (the tests hold them to 1e-6 relative).
The time the library spends goes to Python-level work that does not reach the
60 numbers: per-bin moments, entropies and event tables it returns in a
second data frame, a median computed twice, ``skimage.regionprops`` objects for
every connected region, a pandas frame of regions. Here every per-row quantity
is one numpy reduction over the spectrogram and the regions are measured with
``scipy.ndimage.label`` and ``np.minimum.at``/``np.maximum.at`` (C loops).
Arrays are reused in place where that is easy: with glibc's default malloc a
fresh 1-MB temporary costs more in page faults than the arithmetic done on it.

Quirks of scikit-maad that are reproduced on purpose (changing them would
change the features, which is not this module's business):

* ``soundscape_index`` selects 1 kHz bins with an inclusive nearest-bin rule,
  so "anthrophony" (0–1 kHz) sums the 0–1 and 1–2 kHz bins and "biophony"
  (1–5 kHz) sums 1–2 … 5–6 kHz.
* ``region_of_interest_index`` compares a pixel area with
  ``min_event_duration * min_freq_bw`` (s·Hz), and regions dropped by the
  duration, bandwidth or shape filters still count in ``aROI``; only regions
  dropped by the low-frequency rule are removed from the area.
* ``LEQt`` averages 1-s blocks: a clip shorter than 1 s has none and its
  ``LEQt`` is NaN, as in scikit-maad.
* zero values are replaced by the smallest positive double before taking
  logarithms wherever scikit-maad does so, and nowhere else
  (``temporal_events`` takes ``log10(0) = -inf``).

Thresholds are compared in the linear domain where scikit-maad compares a
logarithm with a threshold in dB (``20 log10(a) >= t`` as ``a >= 10**(t/20)``);
the two differ only for a value within a rounding error of the threshold.

Agreement. On the same signal all 60 indices agree with scikit-maad to 1e-6
relative (in practice 1e-9 or better), with no exception. End to end, with
``fast_separation`` in place of noisereduce, the indices of fg and bg also
agree on real recordings (to 1e-6 on the test recordings). They do not on
clips where the gate closes over most of the clip (a steady pure tone, bursts
in near silence): there fg is noisereduce's rounding residue (~1e-13 of the
input), and the indices built on ranks and thresholds of that residue (the
median-equalised family EAS, ECU, ECV, EPS, EPS_KURT, EPS_SKEW, ACTsp*,
EVNsp*, LFC/MFC/HFC, and AGI, TFSD, NBPEAKS, ZCR) move by up to ~10 %. That is
an ill-conditioning of the reference, not an error of either implementation:
scikit-maad + noisereduce themselves move by as much (up to 70 % on a tone)
when 1 % of the input samples change by one float32 ulp.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, signal

from acoustic_env.config import FeatureParams

_MIN = sys.float_info.min  # scikit-maad's stand-in for 0 before a logarithm
_VADC = 2.0  # scikit-maad's defaults, as the reference calls it
_DBREF = 94.0
_PREF = 20e-6
_ENV_FRAME = 512  # samples per frame of the "fast" envelope
_LEQ_DT = 1.0  # s per block of temporal Leq
# region_of_interest_index's arguments as all_spectral_alpha_indices passes them by default
_ROI = dict(seed_level=13.0, low_level=6.0, min_event_duration=0.025, min_freq_bw=50.0, flim_min=50.0,
            max_ratio_xy=10.0)
_BIN_STEP = 1000.0  # Hz, ADI/AEI/RAOQ bins
_ADI_DB = -50.0
_THIRD_OCTAVES = np.array([16, 20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
                           1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000])


def hann_psd(x: np.ndarray, sr: int, nperseg: int, noverlap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-maad's ``sound.spectrogram(mode='psd')``: (Sxx[f, t], tn, fn), Nyquist row dropped.

    scipy's spectrogram with constant detrending and density scaling, times
    scikit-maad's factor ``2 fs / nperseg``, on strided frames in one rFFT.
    """
    hop = nperseg - noverlap
    n_frames = len(x) // hop - 1  # scikit-maad keeps at most this many frames
    frames = np.lib.stride_tricks.sliding_window_view(x, nperseg)[::hop][:n_frames]
    win = signal.get_window("hann", nperseg)
    buf = frames - frames.mean(axis=1, keepdims=True)
    buf *= win
    spec = sfft.rfft(buf, axis=1, overwrite_x=True)[:, :-1]
    sxx = spec.real**2
    sxx += spec.imag**2
    sxx *= 2.0 / (nperseg * np.sum(win * win))
    sxx = np.ascontiguousarray(sxx.T)
    tn = np.arange(nperseg / 2, len(x) - nperseg / 2 + 1, hop)[:n_frames] / float(sr)
    fn = np.fft.rfftfreq(nperseg, 1.0 / sr)[:-1]
    return sxx, tn, fn


def maad_indices(audio: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The 60 indices in INDEX_NAMES order (float64, may hold non-finite values)."""
    return indices_and_psd(audio, sr, params)[0]


def indices_and_psd(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """The 60 indices and the spectrogram they were computed on (left intact: the spectral statistics reuse it)."""
    x = np.asarray(audio, dtype=np.float64)
    with np.errstate(all="ignore"):
        temporal = temporal_indices(x, sr, params)
        sxx, tn, fn = hann_psd(x, sr, params.maad_nperseg, params.maad_noverlap)
        spectral = spectral_indices(sxx, tn, fn, params)
    return np.concatenate([temporal, spectral]), sxx


# ---------------------------------------------------------------- helpers


def _db(x: np.ndarray | float, factor: float = 10.0) -> np.ndarray:
    """scikit-maad's power2dB (factor 10) / amplitude2dB (factor 20): zeros become its _MIN_."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    return factor * np.log10(np.where(x == 0, _MIN, x))


def _mean_db(db: np.ndarray) -> float:
    """scikit-maad's mean_dB of a 1-D array (NaN when empty)."""
    return float(_db(np.mean(10.0 ** (db / 10.0))) if db.size else np.nan)


def _entropy(x: np.ndarray) -> float:
    """scikit-maad's normalised Shannon entropy of a non-negative 1-D array.

    (Its rescaling branch for negative inputs never applies: every caller here
    passes powers, variances or counts.)
    """
    n = x.size
    if n == 1:
        return 0.0
    if not x.any():
        return 1.0
    pmf = x / np.sum(x)
    pmf = np.where(pmf == 0, _MIN, pmf)
    return float(-np.sum(pmf * np.log(pmf)) / np.log(n))


def _moments(x: np.ndarray) -> tuple[float, float, float, float]:
    """scikit-maad's moments: mean, variance, and skewness/kurtosis normalised by (N - 1)."""
    m = np.mean(x)
    z = x - m
    z2 = z * z
    var = np.mean(z2)
    std = np.sqrt(var)
    n1 = x.size - 1
    return (float(m), float(var), float(np.einsum("i,i->", z2, z) / n1 / std**3),
            float(np.einsum("i,i->", z2, z2) / n1 / std**4))


def _band(fn: np.ndarray, lo: float, hi: float) -> slice:
    """scikit-maad's index_bw on a sorted axis: from the bin nearest to lo to the bin nearest to hi."""
    return slice(int(np.abs(fn - lo).argmin()), int(np.abs(fn - hi).argmin()) + 1)


def _into_bins(row_sums: np.ndarray, fn: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """scikit-maad's into_bins summed over time: per-bin mean over rows × mean row count; bin starts."""
    edges = np.arange(fn[0], fn[-1] + step, step)
    idx = np.searchsorted(edges, fn, side="right") - 1  # rows with edges[b] <= fn < edges[b+1]
    valid = (idx >= 0) & (idx < edges.size - 1)
    counts = np.bincount(idx[valid], minlength=edges.size - 1).astype(np.float64)
    sums = np.bincount(idx[valid], weights=row_sums[valid], minlength=edges.size - 1)
    return sums / counts * np.mean(counts), edges[:-1]


def _gini(x: np.ndarray) -> float:
    """scikit-maad's Gini coefficient (uncorrected)."""
    if np.sum(x) == 0:
        return 0.0
    x = np.sort(x)
    n = x.size
    return float((2 * np.sum(x * np.arange(1, n + 1)) / np.sum(x) - (n + 1)) / n)


def _row_median(x: np.ndarray) -> np.ndarray:
    """np.median along the last axis of finite data, by one sort (half the time of its partitions)."""
    s = np.sort(x, axis=-1)
    n = s.shape[-1]
    return s[..., n // 2] if n % 2 else (s[..., n // 2 - 1] + s[..., n // 2]) / 2


def _shifted(active: np.ndarray, lo: int, hi: int, combine: np.ufunc) -> np.ndarray:
    """combine(active[..., i + k] for k in lo..hi) for every i, with False beyond the ends (0 in lo..hi)."""
    out = active.copy()
    n = active.shape[-1]
    for k in range(lo, hi + 1):  # over the structuring element, a few shifts: not over the data
        if k > 0:
            combine(out[..., : max(n - k, 0)], active[..., k:], out=out[..., : max(n - k, 0)])
            if combine is np.logical_and:
                out[..., max(n - k, 0):] = False
        elif k < 0:
            combine(out[..., -k:], active[..., : max(n + k, 0)], out=out[..., -k:])
            if combine is np.logical_and:
                out[..., : min(-k, n)] = False
    return out


def _events(active: np.ndarray, reject: int) -> tuple[np.ndarray, np.ndarray]:
    """Events along the last axis: (samples on, runs) after scikit-maad's erosion then dilation.

    scikit-maad erodes and dilates with ``reject + 1`` ones; with scipy.ndimage's
    origin for even sizes that is an all() over offsets -c..size-1-c, then an
    any() over the mirrored offsets.
    """
    if reject:
        size, c = reject + 1, (reject + 1) // 2
        active = _shifted(_shifted(active, -c, size - 1 - c, np.logical_and), c + 1 - size, c, np.logical_or)
    n_on = active.sum(axis=-1)
    n_runs = active[..., 0].astype(np.int64) + np.sum(active[..., 1:] & ~active[..., :-1], axis=-1)
    return n_on, n_runs


# ---------------------------------------------------------------- temporal


def temporal_indices(s: np.ndarray, fs: int, params: FeatureParams) -> np.ndarray:
    """The 16 temporal indices of ``all_temporal_alpha_indices`` (fast envelope, Nt=512)."""
    zcr = np.count_nonzero(np.diff(s > 0)) / (len(s) / fs)
    mean_t, var_t, skew_t, kurt_t = _moments(s)
    leq_t = _temporal_leq(s, fs, params)
    k = len(s) // _ENV_FRAME
    frames = s[: k * _ENV_FRAME].reshape(k, _ENV_FRAME)
    env = np.maximum(frames.max(axis=1), -frames.min(axis=1))  # max |s| per frame
    env2 = env**2
    env_db = _db(env2)
    bgn_t = float(np.median(env_db))
    snr_t = _mean_db(env_db) - bgn_t
    med = float(np.median(env))
    h_t = _entropy(env2)
    thr = params.maad_db_threshold
    act_db = _db(env, 20.0) - bgn_t
    act = act_db >= thr
    act_mean = _mean_db(act_db[act_db > thr])
    act_mean = 0.0 if np.isnan(act_mean) else act_mean
    dt = _ENV_FRAME / fs
    evn_db = 10 * np.log10(env2) - bgn_t  # no zero guard here in scikit-maad
    reject = int(round(params.maad_reject_duration_s / dt))
    n_on, n_runs = _events(evn_db >= thr, reject)
    evn_mean = n_on / n_runs * dt if n_on else 0.0
    evn_fraction = n_on * dt / (dt * k)
    evn_count = n_runs / ((k - 1) * dt)
    return np.array([zcr, mean_t, var_t, skew_t, kurt_t, leq_t, bgn_t, snr_t, med, h_t,
                     np.mean(act), np.sum(act), act_mean, evn_fraction, evn_mean, evn_count], dtype=np.float64)


def _temporal_leq(s: np.ndarray, fs: int, params: FeatureParams) -> float:
    """scikit-maad's temporal_leq: energy mean of the Leq of each whole 1-s block."""
    dn = int(np.floor(_LEQ_DT * fs))
    n = len(s) // dn
    blocks = s[: n * dn].reshape(n, dn)
    rms = np.sqrt(np.einsum("ij,ij->i", blocks, blocks) / dn) * (_VADC / 2)
    rms[rms == 0] = _MIN
    leq = 20 * np.log10(rms) - params.maad_sensitivity_dbv - params.maad_gain_db + _DBREF - 20 * np.log10(_PREF / 2e-05)
    return _mean_db(leq)


# ---------------------------------------------------------------- spectral


def spectral_indices(sxx: np.ndarray, tn: np.ndarray, fn: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The 44 spectral indices of ``all_spectral_alpha_indices`` (R_compatible='soundecology')."""
    flim_low, flim_mid, flim_hi = params.maad_flim_low, params.maad_flim_mid, params.maad_flim_hi
    n_t = sxx.shape[1]
    dt = tn[1] - tn[0]
    amp = np.sqrt(sxx)
    s_power = np.mean(sxx, axis=1)
    s_amp = np.sqrt(np.einsum("ij,ij->i", amp, amp) / n_t)
    out: list[float] = list(_moments(s_amp))
    out.append(_number_of_peaks(s_amp, fn))
    gain = 10 ** (params.maad_gain_db / 20) * 10 ** (params.maad_sensitivity_dbv / 20)
    p = (np.sqrt(s_power) * (_VADC / 2) / gain) ** 2
    p[p == 0] = _MIN
    out.append(float(10 * np.log10(np.sum(p) / _PREF**2)))  # LEQf
    med = _row_median(sxx)
    out.extend(_spectral_snr(s_power, med))  # ENRf, BGNf, SNRf
    out.append(_entropy(s_power))  # Hf
    eq = _median_equalized(sxx, med)
    out.extend(_spectral_entropy(eq, fn, (flim_mid[0], flim_hi[1])))  # EAS ... EPS_SKEW
    amp_sum = np.sum(amp, axis=1)
    grad = np.diff(amp, axis=1)
    curv = np.diff(grad, axis=1)
    rou = float(np.einsum("ij,ij->", curv, curv))  # roughness: squared second difference along time
    np.abs(grad, out=grad)
    out.append(float(np.sum(np.sum(grad, axis=1) / amp_sum)))  # ACI
    out.extend(_soundscape_index(s_power * n_t, fn, flim_low, flim_mid))  # NDSI, rBA, Anthro, Bio
    out.append(_bioacoustics_index(amp_sum / n_t / np.max(amp), fn, flim_mid))  # BI
    out.append(rou)  # ROU
    out.extend(_adi_aei(amp, fn, flim_low[0], flim_mid[1]))  # ADI, AEI
    thr = params.maad_db_threshold
    thr_lin = 10 ** (thr / 10)
    active = eq >= thr_lin
    row_active = active.sum(axis=1)
    for lo, hi in (flim_low, flim_mid, flim_hi):  # LFC, MFC, HFC
        out.append(float(np.mean(row_active[_band(fn, lo, hi)] / n_t)))
    strong = eq[eq > thr_lin]
    out += [float(np.mean(row_active / n_t)), float(np.mean(row_active)),
            _mean_db(10 * np.log10(strong)) if strong.size else 0.0]  # ACTspFract, ACTspCount, ACTspMean
    n_on, n_runs = _events(active, int(round(3 * dt / dt)))  # rejectDuration defaults to 3 frames
    mean_len = np.where(n_runs > 0, n_on / np.where(n_runs > 0, n_runs, 1), 0.0)
    out += [float(np.mean(n_on * dt / (dt * n_t))), float(np.mean(mean_len * dt)),
            float(np.mean(n_runs / ((n_t - 1) * dt)))]  # EVNspFract, EVNspMean, EVNspCount
    out.append(_tfsd(amp, fn, flim_mid))
    out.extend(_more_entropy(s_power))  # H_Havrda ... H_GiniSimpson
    out.append(_raoq(s_power, fn))
    out.append(_agi(grad, dt))
    out.extend(_roi_index(sxx, tn, fn))  # nROI, aROI
    return np.array(out, dtype=np.float64)


def _number_of_peaks(s_amp: np.ndarray, fn: np.ndarray) -> float:
    """scikit-maad's number_of_peaks with its defaults: 200 Hz apart, slopes of 1 dB on each side."""
    s = _db(s_amp, 20.0)
    idx, prop = signal.find_peaks(s, height=None, distance=200 / (fn[1] - fn[0]), prominence=0)
    keep = (s[idx] - s[prop["left_bases"]] >= 1) & (s[idx] - s[prop["right_bases"]] > 1)
    return float(np.count_nonzero(keep))


def _spectral_snr(s_power: np.ndarray, med: np.ndarray) -> tuple[float, float, float]:
    """ENRf, BGNf, SNRf: the noise profile is the per-bin median smoothed over 25 then 5 bins."""
    enr = float(_db(np.sum(s_power)))
    profile = ndimage.uniform_filter1d(ndimage.uniform_filter1d(med, 25, mode="nearest"), 5, mode="nearest")
    bgn = float(_db(np.sum(profile)))
    return enr, bgn, enr - bgn


def _median_equalized(sxx: np.ndarray, med: np.ndarray) -> np.ndarray:
    """scikit-maad's median_equalizer: (Sxx - median) / (median - min) per bin, floored at 1."""
    norm = med - np.min(sxx, axis=1)
    norm[norm <= 0] = sxx.max()
    eq = sxx - med[:, None]
    eq /= norm[:, None]
    return np.maximum(eq, 1.0, out=eq)


def _spectral_entropy(eq: np.ndarray, fn: np.ndarray, flim: tuple[float, float]) -> list[float]:
    """EAS, ECU, ECV, EPS, EPS_KURT, EPS_SKEW of the median-equalised spectrogram within flim."""
    band = _band(fn, *flim)
    x = eq[band]
    x_mean = np.mean(x, axis=1)
    dev = x - x_mean[:, None]
    x_var = np.einsum("ij,ij->i", dev, dev) / x.shape[1]
    out = [1 - _entropy(x_mean), 1 - _entropy(x_var), 1 - _entropy(x_var / x_mean)]
    peaks = fn[np.argmax(x, axis=0) + band.start]
    hist, _ = np.histogram(peaks, bins=x.shape[0], range=flim)
    if np.sum(hist) == 0:
        return out + [np.nan] * 3
    hist = hist / np.sum(hist)
    _, _, skew, kurt = _moments(hist)
    return out + [1 - _entropy(hist), kurt, skew]


def _soundscape_index(row_sums: np.ndarray, fn: np.ndarray, flim_low, flim_mid) -> list[float]:
    """NDSI, rBA, AnthroEnergy, BioEnergy on bins as wide as the low band (soundecology mode)."""
    energy, bins = _into_bins(row_sums, fn, flim_low[1] - flim_low[0])
    bio = np.sum(energy[_band(bins, *flim_mid)])
    anthro = np.sum(energy[_band(bins, *flim_low)])
    return [float((bio - anthro) / (bio + anthro)), float(bio / anthro), float(anthro), float(bio)]


def _bioacoustics_index(mean_norm_amp: np.ndarray, fn: np.ndarray, flim) -> float:
    """BI, soundecology flavour: area of the mean normalised dB spectrum above its minimum in flim."""
    db = _db(mean_norm_amp, 20.0)[_band(fn, *flim)]
    return float(np.sum(db - np.min(db)) / (fn[1] - fn[0]))


def _adi_aei(amp: np.ndarray, fn: np.ndarray, fmin: float, fmax: float) -> tuple[float, float]:
    """ADI (Shannon) and AEI (Gini) of the fraction of pixels above -50 dB of the maximum, per 1 kHz band."""
    ratio = amp / np.max(amp)
    row_count = np.sum(ratio >= 10 ** (_ADI_DB / 20), axis=1).astype(np.float64)
    n_bands = int(np.floor((fmax - fmin) / _BIN_STEP))
    f0 = (fmin + _BIN_STEP * np.arange(n_bands)).astype(np.int64)  # scikit-maad truncates to int
    nearest = lambda f: fn[np.abs(fn[None, :] - f[:, None]).argmin(axis=1)][:, None]  # noqa: E731
    members = (fn >= nearest(f0)) & (fn <= nearest(f0 + int(_BIN_STEP)))  # _band for every band at once
    s = members @ row_count / (members.sum(axis=1) * amp.shape[1])
    return _entropy(s) * np.log(s.size), _gini(s)


def _tfsd(amp: np.ndarray, fn: np.ndarray, flim) -> float:
    """TFSD: share of the third-octave time-frequency second derivative that lies within flim."""
    x = np.log10(amp)
    centre = _THIRD_OCTAVES[(_THIRD_OCTAVES >= np.min(fn)) & (_THIRD_OCTAVES <= np.max(fn))]
    start = np.searchsorted(fn, centre / 2**0.1666666, side="left")
    stop = np.searchsorted(fn, centre * 2**0.1666666, side="right")
    padded = np.vstack([x, np.zeros((1, x.shape[1]))])  # reduceat needs stop < len; the extra row is never summed
    sums = np.add.reduceat(padded, np.ravel(np.column_stack([start, stop])), axis=0)[::2]
    sums[start >= stop] = 0.0
    grad = np.diff(np.diff(sums, axis=1), axis=0)
    total = np.sum(np.abs(grad))
    tfsd = np.sum(np.abs(grad[_band(centre[:-1], *flim)])) / total
    return 0.0 if np.isnan(tfsd) else float(tfsd)


def _more_entropy(x: np.ndarray, order: int = 3) -> list[float]:
    """Havrda, Rényi, paired Shannon, gamma and Gini-Simpson entropies of the mean spectrum."""
    pmf = x / np.sum(x)
    pmf = np.where(pmf == 0, _MIN, pmf)
    p_order = np.sum(pmf**order)
    return [float((1 - p_order) / (2 ** (order - 1) - 1)), float(np.log(p_order) / (1 - order)),
            float(-np.sum(pmf * np.log(pmf)) - np.sum((1 - pmf) * np.log(1 - pmf))),
            float((1 - np.sum(pmf ** (1 / order)) ** order) / (1 - 2 ** (order - 1))), float(1 - np.sum(pmf**2))]


def _raoq(s_power: np.ndarray, fn: np.ndarray) -> float:
    """Rao's quadratic entropy of the mean spectrum in 1 kHz bins."""
    p, bins = _into_bins(s_power, fn, _BIN_STEP)
    p = p / np.sum(p)
    b = bins / (bins.max() - bins.min())
    return float(np.sum(p[:, None] * p[None, :] * np.abs(b[:, None] - b[None, :])) * 2 * np.sqrt(2))


def _agi(grad: np.ndarray, dt: float) -> float:
    """AGI: |time gradient| (given, overwritten) normalised by its per-bin median, averaged."""
    grad /= dt
    m = _row_median(grad)
    m[m == 0] = _MIN
    grad /= m[:, None]
    return float(np.mean(np.mean(grad, axis=1)))


def _roi_index(sxx: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> tuple[float, float]:
    """nROI (regions per minute) and aROI (% of the spectrogram) of region_of_interest_index.

    Regions are the 8-connected components above ``low_level`` dB that contain
    a pixel above ``seed_level`` dB, after removing the per-frame mean and the
    per-bin median (scikit-maad's rain and noise removal).
    """
    dt, df = tn[1] - tn[0], fn[1] - fn[0]
    db = np.log10(np.where(sxx == 0, _MIN, sxx))  # power2dB(db_range=96) + 96, in place
    db *= 10.0
    np.clip(db, -96.0, 0.0, out=db)
    db += 96.0
    db -= np.mean(db, axis=0)
    np.maximum(db, 0.0, out=db)
    db -= _row_median(db)[:, None]
    np.maximum(db, 0.0, out=db)
    labels, n = ndimage.label(db > _ROI["low_level"], structure=np.ones((3, 3)))
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[labels[db > _ROI["seed_level"]]] = True
    seeded[0] = False
    flat = labels.ravel()
    pix = np.flatnonzero(seeded[flat])
    lab = flat[pix]
    row, col = np.divmod(pix, labels.shape[1])
    area = np.bincount(lab, minlength=n + 1)
    box = np.full((4, n + 1), -1, dtype=np.int64)
    box[[0, 2]] = labels.size
    np.minimum.at(box[0], lab, row)
    np.maximum.at(box[1], lab, row)
    np.minimum.at(box[2], lab, col)
    np.maximum.at(box[3], lab, col)
    min_y, max_y, min_x, max_x = box
    kept = seeded & (area >= _ROI["min_event_duration"] * _ROI["min_freq_bw"])
    shaped = kept & ((max_x - min_x) * dt >= _ROI["min_event_duration"]) & ((max_y - min_y) * df >= _ROI["min_freq_bw"])
    if shaped.any():
        low = shaped & (min_y <= max(1, round(_ROI["flim_min"] / df)))
        kept &= ~low
        shaped &= ~low
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (max_y - min_y) / (max_x - min_x)
    n_roi = np.count_nonzero(shaped & (ratio < _ROI["max_ratio_xy"]))
    return n_roi / (tn[-1] / 60), float(np.sum(area[kept]) / labels.size * 100)


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``indices`` group, vectorised (``feature_groups``); leaves its power spectrogram in ``shared["psd"]``
    for the spectral statistics of the same signal."""
    indices, shared["psd"] = indices_and_psd(audio, sr, params)
    return indices
