"""noisereduce's non-stationary spectral gating, computed only where the output needs it.

Same signature and output as :func:`acoustic_env.features.reference.separation.separate`.
noisereduce 3.0 is already vectorised per channel; its cost is work whose
result is thrown away or can be had more cheaply:

* it pads the clip with 30,000 zeros on each side (so its time-smoothed noise
  floor sees silence at the edges) and transforms, masks and inverts every
  frame of the padded clip, then crops. Frames that hold only padding have an
  all-zero spectrum: here only the frames that overlap the clip go through the
  FFTs, the mask and the inverse FFT. The noise-floor filter still runs over
  the trailing zero frames (its backward pass starts there) but not over the
  leading ones, where its state is exactly zero;
* its mask smoothing is a 2-D FFT convolution with a separable triangular
  kernel. A triangle is a box convolved with a box, so it is applied here as
  four running means (``uniform_filter1d``), on the frames that need it;
* the overlap-add of the inverse STFT is a Python loop over frames in scipy;
  here it is a sum of a few shifted blocks.

Everything runs in float64 like noisereduce: fg agrees with noisereduce's to
about 1e-9 of its RMS. Where the gate closes, noisereduce's fg is ~1e-13 of the
input, i.e. the rounding noise of its FFT convolution, which a
reimplementation reproduces in level but not sample by sample (see
``fast_indices`` for the indices of fg and bg that are sensitive to it).
Stationary gating (``nr_stationary=True``) is delegated to noisereduce itself.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, signal

from acoustic_env.config import FeatureParams
from acoustic_env.features.reference.separation import separate as reference_separate

# noisereduce.reduce_noise defaults that FeatureParams does not expose
_CHUNK = 600000
_PADDING = 30000
_FREQ_SMOOTH_HZ = 500.0
_TIME_SMOOTH_MS = 50.0
_THRESH_N_MULT = 2.0
_SIGMOID_SLOPE = 10.0


def separate(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Return (fg, bg) float32 arrays of the input's length; ``fg + bg == audio``."""
    x = np.asarray(audio, dtype=np.float32)
    if params.nr_stationary:
        return reference_separate(x, sr, params)
    if not np.any(x):
        return np.zeros_like(x), np.zeros_like(x)
    n = x.size
    # noisereduce's chunking: one padded segment if the clip fits in a chunk, else chunk-sized segments
    bounds = [(0, n)] if n <= _CHUNK else [(a, a + _CHUNK) for a in range(0, n, _CHUNK)]
    fg = np.empty(n, dtype=np.float32)
    for a, b in bounds:
        lo, hi = max(a - _PADDING, 0), min(b + _PADDING, n)
        m = min(b, n) - a
        fg[a : a + m] = _gate_segment(x[lo:hi].astype(np.float64), lo - (a - _PADDING), b - a + 2 * _PADDING,
                                      _PADDING, m, sr, params)
    return fg, (x - fg).astype(np.float32)


def _gate_segment(data: np.ndarray, offset: int, length: int, out_start: int, out_len: int, sr: int,
                  params: FeatureParams) -> np.ndarray:
    """Gate a zero-padded segment of ``length`` samples holding ``data`` at ``offset``.

    Returns the gated samples ``out_start : out_start + out_len`` of the segment,
    as noisereduce's ``spectral_gating_nonstationary`` computes them.
    """
    n_fft = params.nr_n_fft
    hop = n_fft // 4
    half = n_fft // 2  # scipy's stft pads half a window of zeros at each end (boundary='zeros')
    n_frames = length // hop + 1
    win = signal.get_window("hann", n_fft)
    # frames overlapping the data (all others are exactly zero) and the output (a subset of them)
    first, last = _overlapping(offset + half, offset + half + data.size, hop, n_fft, n_frames)
    out_first, out_last = _overlapping(out_start + half, out_start + half + out_len, hop, n_fft, n_frames)
    padded = np.zeros((last - first) * hop + n_fft)
    start = offset + half - first * hop
    padded[start : start + data.size] = data
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spec = sfft.rfft(frames * win, axis=1)  # [frame, bin], frames first..last
    n_grad_t = int(_TIME_SMOOTH_MS / (hop / sr * 1000))
    n_grad_f = int(_FREQ_SMOOTH_HZ / (sr / (n_fft / 2)))
    if n_grad_f < 1 or n_grad_t < 1:
        raise ValueError(f"nr_n_fft={n_fft} is too small for noisereduce's mask smoothing")
    smooth = not (n_grad_t == 1 and n_grad_f == 1)
    ext = n_grad_t if smooth else 0  # frames of context the time smoothing reads
    lo, hi = max(out_first - ext, 0), min(out_last + ext, n_frames - 1) + 1
    # The noise floor needs every frame up to the end of the segment, but none before a zero frame
    # preceding everything read here: the filter's state is exactly zero there, as in noisereduce.
    base = max(min(lo, first) - 1, 0)
    n_bins = spec.shape[1]
    mag = np.zeros((n_bins, n_frames - base))  # [bin, frame]: the filters run along contiguous rows
    np.abs(spec.T, out=mag[:, first - base : last + 1 - base])
    floor = _smoothed_floor(mag, sr, hop, params.nr_time_constant_s)
    # the mask, with the zero margins its smoothing reads beyond the edges
    pf, pt = (n_grad_f, n_grad_t) if smooth else (0, 0)
    padded_mask = np.zeros((n_bins + 2 * pf, hi - lo + 2 * pt))
    mask = padded_mask[pf : pf + n_bins, pt : pt + hi - lo]
    np.divide(mag[:, lo - base : hi - base], floor[:, lo - base : hi - base], out=mask)
    mask -= 1.0 + _THRESH_N_MULT  # sigmoid(((m - fl) / fl - thresh) * slope), in place
    mask *= -_SIGMOID_SLOPE
    np.exp(mask, out=mask)
    mask += 1.0
    np.reciprocal(mask, out=mask)
    if smooth:
        scratch = np.empty_like(padded_mask)
        _triangle_smooth(padded_mask, n_grad_f + 1, 0, scratch)
        _triangle_smooth(padded_mask, n_grad_t + 1, 1, scratch)
    mask = mask[:, out_first - lo : out_last + 1 - lo]
    if params.nr_prop_decrease != 1.0:
        mask *= params.nr_prop_decrease
        mask += 1.0 - params.nr_prop_decrease
    gated_spec = spec[out_first - first : out_last + 1 - first]
    gated_spec *= mask.T
    gated = sfft.irfft(gated_spec, n=n_fft, axis=1)
    gated *= win
    audio, norm = _overlap_add(gated, win * win, hop)
    begin = out_start + half - out_first * hop
    out = audio[begin : begin + out_len]
    out /= norm[begin : begin + out_len]
    return out


def _overlapping(a: int, b: int, hop: int, n_fft: int, n_frames: int) -> tuple[int, int]:
    """First and last frame whose window [f*hop, f*hop + n_fft) overlaps [a, b)."""
    return max(0, -(-(a - n_fft + 1) // hop)), min(n_frames - 1, (b - 1) // hop)


def _smoothed_floor(mag: np.ndarray, sr: int, hop: int, time_constant_s: float) -> np.ndarray:
    """noisereduce's get_time_smoothed_representation: a zero-phase one-pole filter along the last axis.

    scipy's ``filtfilt(padtype=None)`` written out (forward pass started from
    the steady state of the first sample, backward pass from that of the last):
    the same two ``lfilter`` calls without filtfilt's copies of the array.
    """
    t_frames = time_constant_s * sr / float(hop)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    num, den = np.array([b], dtype=mag.dtype), np.array([1.0, b - 1.0], dtype=mag.dtype)
    zi = signal.lfilter_zi(num, den).astype(mag.dtype)
    forward, _ = signal.lfilter(num, den, mag, axis=-1, zi=zi * mag[:, :1])
    backward, _ = signal.lfilter(num, den, forward[:, ::-1], axis=-1, zi=zi * forward[:, -1:])
    return backward[:, ::-1]


def _triangle_smooth(x: np.ndarray, size: int, axis: int, scratch: np.ndarray) -> None:
    """In place, 'same' convolution along axis with a normalised triangle of 2*size - 1 taps, as two boxes.

    ``x`` must hold size - 1 zeros beyond the data at both ends of ``axis``:
    the first box spreads values there and the second must still see them.
    """
    ndimage.uniform_filter1d(x, size, axis=axis, mode="constant", output=scratch)
    ndimage.uniform_filter1d(scratch, size, axis=axis, mode="constant", origin=-1 if size % 2 == 0 else 0, output=x)


def _overlap_add(frames: np.ndarray, win2: np.ndarray, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlap-add rows of ``frames`` hop samples apart; also the summed squared window (istft's norm)."""
    n, width = frames.shape
    r = -(-width // hop)
    if r * hop != width:
        frames = np.pad(frames, ((0, 0), (0, r * hop - width)))
        win2 = np.pad(win2, (0, r * hop - width))
    blocks = frames.reshape(n, r, hop)
    out = np.zeros((n + r - 1, hop))
    norm = np.zeros((n + r - 1, hop))
    for q in range(r):  # r = n_fft / hop = 4 shifted sums, not a loop over frames
        out[q : q + n] += blocks[:, q]
        norm[q : q + n] += win2[q * hop : (q + 1) * hop]
    return out.ravel(), norm.ravel()
