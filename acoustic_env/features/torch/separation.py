"""noisereduce's non-stationary spectral gating (``fast/separation.py``) on a batch of equal-length clips.

The whole zero-padded segment goes through the STFT, the mask and the inverse, as in
noisereduce itself (the fast path skips the all-zero frames; on a GPU the extra third of
frames costs less than the indexing would). The noise floor's zero-phase one-pole
filter, a recurrence along time, is applied as one matrix product per direction: the
filter's impulse response, with scipy's steady-state start folded into its first
column, is a lower-triangular [frames, frames] matrix. Float64 throughout, like noisereduce.

Clips longer than noisereduce's 600,000-sample chunk and stationary gating go to the
fast path (the chunked case is not batched; stationary gating is noisereduce's own).
"""

from __future__ import annotations

import numpy as np
import torch

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast import separation as fast
from acoustic_env.features.fast.separation import (
    _CHUNK,
    _FREQ_SMOOTH_HZ,
    _PADDING,
    _SIGMOID_SLOPE,
    _THRESH_N_MULT,
    _TIME_SMOOTH_MS,
)

_DTYPE = torch.float64


def separate(x: torch.Tensor, sr: int, params: FeatureParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(fg, bg) float32 [clips, samples] of equal-length float32 clips ``x``; ``fg + bg == x``."""
    n = x.shape[-1]
    if params.nr_stationary or n > _CHUNK:
        pairs = [fast.separate(c, sr, params) for c in x.cpu().numpy()]
        fg = torch.from_numpy(np.stack([p[0] for p in pairs])).to(x.device)
        return fg, x - fg
    n_fft = params.nr_n_fft
    hop = n_fft // 4
    half = n_fft // 2
    length = n + 2 * _PADDING
    n_frames = length // hop + 1
    n_grad_t = int(_TIME_SMOOTH_MS / (hop / sr * 1000))
    n_grad_f = int(_FREQ_SMOOTH_HZ / (sr / (n_fft / 2)))
    if n_grad_f < 1 or n_grad_t < 1:
        raise ValueError(f"nr_n_fft={n_fft} is too small for noisereduce's mask smoothing")
    padded = torch.zeros(x.shape[0], (n_frames - 1) * hop + n_fft, dtype=_DTYPE, device=x.device)
    padded[:, half + _PADDING : half + _PADDING + n] = x
    win = torch.hann_window(n_fft, periodic=True, dtype=_DTYPE, device=x.device)
    spec = torch.fft.rfft(padded.unfold(-1, n_fft, hop) * win, dim=-1)  # [clip, frame, bin]
    mag = spec.abs().transpose(1, 2)  # [clip, bin, frame]
    floor = _smoothed_floor(mag, sr, hop, params.nr_time_constant_s)
    mask = torch.sigmoid((mag / floor - 1.0 - _THRESH_N_MULT) * _SIGMOID_SLOPE)
    if not (n_grad_t == 1 and n_grad_f == 1):
        mask = _triangle_smooth(_triangle_smooth(mask, n_grad_f, 1), n_grad_t, 2)
    mask = mask * params.nr_prop_decrease + (1.0 - params.nr_prop_decrease)
    gated = torch.fft.irfft(spec * mask.transpose(1, 2), n=n_fft, dim=-1) * win
    audio = _overlap_add(gated, hop)
    norm = _overlap_add((win * win).expand(1, n_frames, n_fft), hop)
    begin = half + _PADDING
    fg = (audio[:, begin : begin + n] / norm[:, begin : begin + n]).to(torch.float32)
    fg = torch.where(x.abs().amax(dim=1, keepdim=True) > 0, fg, torch.zeros_like(fg))  # silence: as fast (0/0 in the mask)
    return fg, x - fg


def _smoothed_floor(mag: torch.Tensor, sr: int, hop: int, time_constant_s: float) -> torch.Tensor:
    """scipy's ``filtfilt(padtype=None)`` of noisereduce's one-pole filter along the last axis.

    ``y[t] = b x[t] + (1 - b) y[t-1]`` started from ``y[-1] = x[0]`` (lfilter_zi's steady
    state) is ``y = x @ M.T`` with ``M[t, k] = b (1-b)^(t-k)`` (k <= t) plus ``(1-b)^(t+1)`` in column 0.
    """
    t_frames = time_constant_s * sr / float(hop)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    m = _filter_matrix(mag.shape[-1], b, mag.device)
    forward = mag @ m.T
    backward = forward.flip(-1) @ m.T
    return backward.flip(-1)


def _filter_matrix(n: int, b: float, device: torch.device) -> torch.Tensor:
    t = torch.arange(n, dtype=_DTYPE, device=device)
    lag = t[:, None] - t[None, :]
    m = torch.where(lag >= 0, b * (1.0 - b) ** lag.clamp(min=0), torch.zeros((), dtype=_DTYPE, device=device))
    m[:, 0] += (1.0 - b) ** (t + 1)
    return m


def _triangle_smooth(x: torch.Tensor, n_grad: int, dim: int) -> torch.Tensor:
    """'same' convolution along ``dim`` with noisereduce's normalised triangle of 2 n_grad + 1 taps, zeros beyond.

    As shifted sums, one per tap (a loop over the kernel, not the data): torch's float64
    conv1d on CPU is 20 times slower than this.
    """
    tri = np.concatenate([np.linspace(0, 1, n_grad + 1, endpoint=False), np.linspace(1, 0, n_grad + 2)])[1:-1]
    tri /= tri.sum()
    n = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - dim) + [n_grad, n_grad]
    padded = torch.nn.functional.pad(x, pad)
    out = torch.zeros_like(x)
    for k, w in enumerate(tri):
        out += float(w) * padded.narrow(dim, k, n)
    return out


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add rows of ``frames`` [clip, frame, width] hop samples apart (width a multiple of hop)."""
    b, n, width = frames.shape
    r = width // hop
    blocks = frames.reshape(b, n, r, hop)
    out = frames.new_zeros(b, n + r - 1, hop)
    for q in range(r):  # n_fft / hop = 4 shifted sums, not a loop over frames or clips
        out[:, q : q + n] += blocks[:, :, q]
    return out.reshape(b, -1)
