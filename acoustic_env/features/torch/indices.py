"""scikit-maad's 60 alpha indices (``fast/indices.py``) on a batch of equal-length clips.

The same formulas as the fast path, each a reduction over a ``[clip, ...]`` tensor in
float64, so the two agree to rounding. What the fast path does with scipy is done so:

* medians by one sort (numpy's: the mean of the two middle values for an even count);
* the connected regions of ``region_of_interest_index``: on a CPU by scipy's labelling
  (the fast path's), on a GPU by label propagation with hooking and pointer jumping
  (``_label_hooks``); then areas and bounding boxes by ``scatter_reduce`` over the active
  pixels;
* the band, bin and third-octave selections are constant matrices or slices built once
  from the frequency axis (it is the same for every clip of the batch).

``NBPEAKS`` (scipy's ``find_peaks`` with distances and prominences, a sequential scan)
is the one index taken on the host, per clip, from its 512-value mean spectrum.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast import indices as fast
from acoustic_env.features.fast.indices import (
    _ADI_DB,
    _BIN_STEP,
    _DBREF,
    _ENV_FRAME,
    _LEQ_DT,
    _PREF,
    _ROI,
    _THIRD_OCTAVES,
    _VADC,
)

_MIN = sys.float_info.min
_DTYPE = torch.float64
_JUMPS = 2  # pointer jumps per labelling round: fewer rounds (each ends in a check that syncs a GPU)


def indices_and_psd(x: torch.Tensor, sr: int, params: FeatureParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The 60 indices [clip, 60] (float64, may hold non-finite values) and the PSD spectrogram [clip, f, t]."""
    x = x.to(_DTYPE)
    temporal = temporal_indices(x, sr, params)
    sxx, tn, fn = hann_psd(x, sr, params.maad_nperseg, params.maad_noverlap)
    return torch.cat([temporal, spectral_indices(sxx, tn, fn, params)], dim=1), sxx


def hann_psd(x: torch.Tensor, sr: int, nperseg: int, noverlap: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``fast.hann_psd`` for a batch: (Sxx[clip, f, t], tn, fn)."""
    hop = nperseg - noverlap
    n = x.shape[-1]
    n_frames = n // hop - 1
    frames = x.unfold(-1, nperseg, hop)[:, :n_frames]
    win = torch.hann_window(nperseg, periodic=True, dtype=_DTYPE, device=x.device)
    spec = torch.fft.rfft((frames - frames.mean(dim=-1, keepdim=True)) * win, dim=-1)[..., :-1]
    sxx = (spec.real**2 + spec.imag**2) * (2.0 / (nperseg * float(torch.sum(win * win))))
    tn = np.arange(nperseg / 2, n - nperseg / 2 + 1, hop)[:n_frames] / float(sr)
    fn = np.fft.rfftfreq(nperseg, 1.0 / sr)[:-1]
    return sxx.transpose(1, 2).contiguous(), tn, fn


# ---------------------------------------------------------------- helpers (last axis, batched)


def _db(x: torch.Tensor, factor: float = 10.0) -> torch.Tensor:
    x = x.abs()
    return factor * torch.log10(torch.where(x == 0, _MIN, x))


def _mean_db(db: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """scikit-maad's mean_dB over the last axis (of the masked values; NaN when none)."""
    power = 10.0 ** (db / 10.0)
    if mask is None:
        return _db(power.mean(dim=-1))
    count = mask.sum(dim=-1)
    mean = torch.where(mask, power, 0.0).sum(dim=-1) / count
    return torch.where(count > 0, _db(mean), torch.nan)


def _entropy(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    if n == 1:
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    pmf = x / x.sum(dim=-1, keepdim=True)
    pmf = torch.where(pmf == 0, _MIN, pmf)
    h = -torch.sum(pmf * torch.log(pmf), dim=-1) / np.log(n)
    return torch.where((x != 0).any(dim=-1), h, 1.0)


def _moments(x: torch.Tensor) -> torch.Tensor:
    """[..., 4]: mean, variance, and skewness/kurtosis normalised by (N - 1), over the last axis."""
    m = x.mean(dim=-1, keepdim=True)
    z = x - m
    z2 = z * z
    var = z2.mean(dim=-1)
    std = torch.sqrt(var)
    n1 = x.shape[-1] - 1
    return torch.stack([m[..., 0], var, (z2 * z).sum(dim=-1) / n1 / std**3, (z2 * z2).sum(dim=-1) / n1 / std**4], -1)


def _median(x: torch.Tensor) -> torch.Tensor:
    s = x.sort(dim=-1).values
    n = s.shape[-1]
    return s[..., n // 2] if n % 2 else (s[..., n // 2 - 1] + s[..., n // 2]) / 2


def _events(active: torch.Tensor, reject: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``fast._events`` along the last axis: erosion then dilation by shifts, then (samples on, runs)."""
    if reject:
        size, c = reject + 1, (reject + 1) // 2
        active = _shifted(_shifted(active, -c, size - 1 - c, torch.logical_and, False), c + 1 - size, c,
                          torch.logical_or, False)
    n_on = active.sum(dim=-1)
    n_runs = active[..., 0].long() + (active[..., 1:] & ~active[..., :-1]).sum(dim=-1)
    return n_on, n_runs


def _shifted(active: torch.Tensor, lo: int, hi: int, combine, fill: bool) -> torch.Tensor:
    """combine(active[..., i + k] for k in lo..hi), with ``fill`` beyond the ends (False for both uses)."""
    n = active.shape[-1]
    padded = torch.nn.functional.pad(active, (max(-lo, 0), max(hi, 0)), value=fill)
    out = active.clone()
    for k in range(lo, hi + 1):  # over the structuring element: a few shifts, not the data
        if k:
            out = combine(out, padded[..., max(-lo, 0) + k : max(-lo, 0) + k + n])
    return out


def _band(fn: np.ndarray, lo: float, hi: float) -> slice:
    return fast._band(fn, lo, hi)


def _into_bins(row_sums: torch.Tensor, fn: np.ndarray, step: float) -> tuple[torch.Tensor, np.ndarray]:
    """``fast._into_bins`` as a constant [bins, f] matrix applied to [clip, f]."""
    edges = np.arange(fn[0], fn[-1] + step, step)
    idx = np.searchsorted(edges, fn, side="right") - 1
    member = (idx[None, :] == np.arange(edges.size - 1)[:, None]).astype(np.float64)
    counts = member.sum(axis=1)
    weights = torch.as_tensor(member / counts[:, None] * np.mean(counts), device=row_sums.device)
    return row_sums @ weights.T, edges[:-1]


# ---------------------------------------------------------------- temporal


def temporal_indices(s: torch.Tensor, fs: int, params: FeatureParams) -> torch.Tensor:
    """The 16 temporal indices [clip, 16]."""
    n = s.shape[-1]
    zcr = torch.count_nonzero(torch.diff((s > 0).to(torch.int8), dim=-1), dim=-1) / (n / fs)
    moments = _moments(s)
    dn = int(np.floor(_LEQ_DT * fs))
    blocks = s[:, : (n // dn) * dn].reshape(s.shape[0], n // dn, dn)
    rms = torch.sqrt((blocks * blocks).sum(dim=-1) / dn) * (_VADC / 2)
    rms = torch.where(rms == 0, _MIN, rms)
    leq = (20 * torch.log10(rms) - params.maad_sensitivity_dbv - params.maad_gain_db + _DBREF
           - 20 * np.log10(_PREF / 2e-05))
    leq_t = _mean_db(leq) if n // dn else torch.full((s.shape[0],), torch.nan, dtype=_DTYPE, device=s.device)
    k = n // _ENV_FRAME
    frames = s[:, : k * _ENV_FRAME].reshape(s.shape[0], k, _ENV_FRAME)
    env = torch.maximum(frames.amax(dim=-1), -frames.amin(dim=-1))
    env2 = env**2
    env_db = _db(env2)
    bgn_t = _median(env_db)
    snr_t = _mean_db(env_db) - bgn_t
    med = _median(env)
    h_t = _entropy(env2)
    thr = params.maad_db_threshold
    act_db = _db(env, 20.0) - bgn_t[:, None]
    act = act_db >= thr
    act_mean = torch.nan_to_num(_mean_db(act_db, act_db > thr), nan=0.0)
    dt = _ENV_FRAME / fs
    evn_db = 10 * torch.log10(env2) - bgn_t[:, None]
    reject = int(round(params.maad_reject_duration_s / dt))
    n_on, n_runs = _events(evn_db >= thr, reject)
    evn_mean = torch.where(n_on > 0, n_on / n_runs * dt, 0.0)
    evn_fraction = n_on * dt / (dt * k)
    evn_count = n_runs / ((k - 1) * dt)
    return torch.stack([zcr.to(_DTYPE), *moments.unbind(-1), leq_t, bgn_t, snr_t, med, h_t,
                        act.to(_DTYPE).mean(dim=-1), act.sum(dim=-1).to(_DTYPE), act_mean,
                        evn_fraction, evn_mean, evn_count], dim=1).to(_DTYPE)


# ---------------------------------------------------------------- spectral


def spectral_indices(sxx: torch.Tensor, tn: np.ndarray, fn: np.ndarray, params: FeatureParams) -> torch.Tensor:
    """The 44 spectral indices [clip, 44], in ``fast.spectral_indices``' order."""
    flim_low, flim_mid, flim_hi = params.maad_flim_low, params.maad_flim_mid, params.maad_flim_hi
    n_t = sxx.shape[-1]
    dt = float(tn[1] - tn[0])
    amp = torch.sqrt(sxx)
    s_power = sxx.mean(dim=-1)
    s_amp = torch.sqrt((amp * amp).sum(dim=-1) / n_t)
    out: list[torch.Tensor] = [*_moments(s_amp).unbind(-1)]
    out.append(torch.tensor([fast._number_of_peaks(a, fn) for a in s_amp.cpu().numpy()],  # host: see module doc
                            dtype=_DTYPE, device=sxx.device))
    gain = 10 ** (params.maad_gain_db / 20) * 10 ** (params.maad_sensitivity_dbv / 20)
    p = (torch.sqrt(s_power) * (_VADC / 2) / gain) ** 2
    p = torch.where(p == 0, _MIN, p)
    out.append(10 * torch.log10(p.sum(dim=-1) / _PREF**2))  # LEQf
    med = _median(sxx)
    enr = _db(s_power.sum(dim=-1))
    bgn = _db(_uniform_nearest(_uniform_nearest(med, 25), 5).sum(dim=-1))
    out += [enr, bgn, enr - bgn, _entropy(s_power)]  # ENRf, BGNf, SNRf, Hf
    norm = med - sxx.amin(dim=-1)
    norm = torch.where(norm <= 0, sxx.amax(dim=(1, 2))[:, None], norm)
    eq = torch.clamp((sxx - med[..., None]) / norm[..., None], min=1.0)
    out += _spectral_entropy(eq, fn, (flim_mid[0], flim_hi[1]))  # EAS ... EPS_SKEW
    amp_sum = amp.sum(dim=-1)
    grad = torch.diff(amp, dim=-1)
    curv = torch.diff(grad, dim=-1)
    rou = (curv * curv).sum(dim=(1, 2))
    grad = grad.abs()
    out.append((grad.sum(dim=-1) / amp_sum).sum(dim=-1))  # ACI
    out += _soundscape_index(s_power * n_t, fn, flim_low, flim_mid)  # NDSI, rBA, Anthro, Bio
    amp_max = amp.amax(dim=(1, 2))
    bi = _db(amp_sum / n_t / amp_max[:, None], 20.0)[:, _band(fn, *flim_mid)]
    out.append((bi - bi.amin(dim=-1, keepdim=True)).sum(dim=-1) / (fn[1] - fn[0]))  # BI
    out.append(rou)  # ROU
    out += _adi_aei(amp, amp_max, fn, flim_low[0], flim_mid[1])  # ADI, AEI
    thr_lin = 10 ** (params.maad_db_threshold / 10)
    active = eq >= thr_lin
    row_active = active.sum(dim=-1).to(_DTYPE)
    for lo, hi in (flim_low, flim_mid, flim_hi):  # LFC, MFC, HFC
        out.append((row_active[:, _band(fn, lo, hi)] / n_t).mean(dim=-1))
    strong = eq > thr_lin
    act_mean = _mean_db(10 * torch.log10(eq).flatten(1), strong.flatten(1))
    out += [(row_active / n_t).mean(dim=-1), row_active.mean(dim=-1), torch.nan_to_num(act_mean, nan=0.0)]
    n_on, n_runs = _events(active, 3)  # rejectDuration defaults to 3 frames
    mean_len = torch.where(n_runs > 0, n_on / n_runs.clamp(min=1), 0.0)
    out += [(n_on * dt / (dt * n_t)).mean(dim=-1), (mean_len * dt).mean(dim=-1),
            (n_runs / ((n_t - 1) * dt)).mean(dim=-1)]  # EVNspFract, EVNspMean, EVNspCount
    out.append(_tfsd(amp, fn, flim_mid))
    out += _more_entropy(s_power)  # H_Havrda ... H_GiniSimpson
    out.append(_raoq(s_power, fn))
    out.append(_agi(grad, dt))
    out += _roi_index(sxx, tn, fn)  # nROI, aROI
    return torch.stack([o.to(_DTYPE) for o in out], dim=1)


def _uniform_nearest(x: torch.Tensor, size: int) -> torch.Tensor:
    """scipy's ``uniform_filter1d(x, size, mode='nearest')`` along the last axis (odd size)."""
    h = size // 2
    padded = torch.nn.functional.pad(x[:, None], (h, h), mode="replicate")[:, 0]
    return padded.unfold(-1, size, 1).mean(dim=-1)


def _spectral_entropy(eq: torch.Tensor, fn: np.ndarray, flim: tuple[float, float]) -> list[torch.Tensor]:
    band = _band(fn, *flim)
    x = eq[:, band]
    x_mean = x.mean(dim=-1)
    dev = x - x_mean[..., None]
    x_var = (dev * dev).sum(dim=-1) / x.shape[-1]
    out = [1 - _entropy(x_mean), 1 - _entropy(x_var), 1 - _entropy(x_var / x_mean)]
    peaks = torch.as_tensor(fn, device=eq.device)[x.argmax(dim=1) + band.start]  # [clip, t]
    hist = _histogram(peaks, x.shape[1], flim)
    total = hist.sum(dim=-1, keepdim=True)
    pmf = hist / total
    moments = _moments(pmf)
    ok = total[:, 0] > 0
    return out + [torch.where(ok, v, torch.nan) for v in (1 - _entropy(pmf), moments[:, 3], moments[:, 2])]


def _histogram(v: torch.Tensor, bins: int, rng: tuple[float, float]) -> torch.Tensor:
    """``np.histogram(row, bins, range=rng)`` of each row: equal bins, the last closed, outliers dropped."""
    edges = torch.as_tensor(np.linspace(rng[0], rng[1], bins + 1), device=v.device)
    idx = torch.bucketize(v, edges, right=True) - 1
    idx = torch.where(v == edges[-1], bins - 1, idx)
    inside = (idx >= 0) & (idx < bins)
    hist = torch.zeros(v.shape[0], bins + 1, dtype=_DTYPE, device=v.device)
    hist.scatter_add_(1, torch.where(inside, idx, bins), torch.ones_like(v, dtype=_DTYPE))
    return hist[:, :bins]


def _soundscape_index(row_sums: torch.Tensor, fn: np.ndarray, flim_low, flim_mid) -> list[torch.Tensor]:
    energy, bins = _into_bins(row_sums, fn, flim_low[1] - flim_low[0])
    bio = energy[:, _band(bins, *flim_mid)].sum(dim=-1)
    anthro = energy[:, _band(bins, *flim_low)].sum(dim=-1)
    return [(bio - anthro) / (bio + anthro), bio / anthro, anthro, bio]


def _adi_aei(amp: torch.Tensor, amp_max: torch.Tensor, fn: np.ndarray, fmin: float, fmax: float
             ) -> list[torch.Tensor]:
    row_count = (amp / amp_max[:, None, None] >= 10 ** (_ADI_DB / 20)).sum(dim=-1).to(_DTYPE)
    n_bands = int(np.floor((fmax - fmin) / _BIN_STEP))
    f0 = (fmin + _BIN_STEP * np.arange(n_bands)).astype(np.int64)
    nearest = lambda f: fn[np.abs(fn[None, :] - f[:, None]).argmin(axis=1)][:, None]  # noqa: E731
    members = ((fn >= nearest(f0)) & (fn <= nearest(f0 + int(_BIN_STEP)))).astype(np.float64)
    weights = torch.as_tensor(members / (members.sum(axis=1)[:, None] * amp.shape[-1]), device=amp.device)
    s = row_count @ weights.T
    return [_entropy(s) * np.log(s.shape[-1]), _gini(s)]


def _gini(x: torch.Tensor) -> torch.Tensor:
    total = x.sum(dim=-1)
    n = x.shape[-1]
    rank = torch.arange(1, n + 1, dtype=_DTYPE, device=x.device)
    g = (2 * (x.sort(dim=-1).values * rank).sum(dim=-1) / total - (n + 1)) / n
    return torch.where(total == 0, 0.0, g)


def _tfsd(amp: torch.Tensor, fn: np.ndarray, flim) -> torch.Tensor:
    x = torch.log10(amp)
    centre = _THIRD_OCTAVES[(_THIRD_OCTAVES >= np.min(fn)) & (_THIRD_OCTAVES <= np.max(fn))]
    start = np.searchsorted(fn, centre / 2**0.1666666, side="left")
    stop = np.searchsorted(fn, centre * 2**0.1666666, side="right")
    zero = x.new_zeros(x.shape[0], x.shape[-1])
    # a loop over the ~27 third-octave bands (a slice sum each: log10(0) = -inf must not meet a 0 weight)
    sums = torch.stack([x[:, a:b].sum(dim=1) if a < b else zero for a, b in zip(start, stop)], dim=1)
    grad = torch.diff(torch.diff(sums, dim=-1), dim=1)
    total = grad.abs().sum(dim=(1, 2))
    tfsd = grad[:, _band(centre[:-1], *flim)].abs().sum(dim=(1, 2)) / total
    return torch.nan_to_num(tfsd, nan=0.0, posinf=np.inf, neginf=-np.inf)


def _more_entropy(x: torch.Tensor, order: int = 3) -> list[torch.Tensor]:
    pmf = x / x.sum(dim=-1, keepdim=True)
    pmf = torch.where(pmf == 0, _MIN, pmf)
    p_order = (pmf**order).sum(dim=-1)
    return [(1 - p_order) / (2 ** (order - 1) - 1), torch.log(p_order) / (1 - order),
            -(pmf * torch.log(pmf)).sum(dim=-1) - ((1 - pmf) * torch.log(1 - pmf)).sum(dim=-1),
            (1 - (pmf ** (1 / order)).sum(dim=-1) ** order) / (1 - 2 ** (order - 1)), 1 - (pmf**2).sum(dim=-1)]


def _raoq(s_power: torch.Tensor, fn: np.ndarray) -> torch.Tensor:
    p, bins = _into_bins(s_power, fn, _BIN_STEP)
    p = p / p.sum(dim=-1, keepdim=True)
    b = bins / (bins.max() - bins.min())
    dist = torch.as_tensor(np.abs(b[:, None] - b[None, :]), device=p.device)
    return ((p @ dist) * p).sum(dim=-1) * 2 * np.sqrt(2)


def _agi(grad: torch.Tensor, dt: float) -> torch.Tensor:
    grad = grad / dt
    m = _median(grad)
    m = torch.where(m == 0, _MIN, m)
    return (grad / m[..., None]).mean(dim=-1).mean(dim=-1)


def roi_levels(sxx: torch.Tensor) -> torch.Tensor:
    """The spectrogram in dB above the noise that the regions are drawn on (``fast._roi_index``'s rain and noise
    removal): 96 dB of range, less each frame's mean, less each bin's median, floored at 0."""
    db = torch.clamp(10.0 * torch.log10(torch.where(sxx == 0, _MIN, sxx)), -96.0, 0.0) + 96.0
    db = torch.clamp(db - db.mean(dim=1, keepdim=True), min=0.0)
    return torch.clamp(db - _median(db)[..., None], min=0.0)


def _roi_index(sxx: torch.Tensor, tn: np.ndarray, fn: np.ndarray) -> list[torch.Tensor]:
    """nROI and aROI of ``fast._roi_index``: regions by label propagation, measured over the active pixels.

    Only the active pixels are scattered (the inactive ones, most of the image, would all
    hit label 0, and a GPU serialises atomics on one address), and the per-clip totals are
    sums over each clip's slice of the label axis.
    """
    dt, df = float(tn[1] - tn[0]), float(fn[1] - fn[0])
    db = roi_levels(sxx)
    b, nf, nt = db.shape
    active = db > _ROI["low_level"]
    labels = _label(active)  # [clip, f, t]: a region number within its clip (1 to nf * nt), 0 outside
    clip = torch.arange(b, device=db.device)[:, None, None].expand_as(labels)
    on = active.flatten().nonzero()[:, 0]
    slot = (clip * (nf * nt) + labels - 1).flatten()[on]  # one slot per possible region: [clip, pixel]
    pix = on % (nf * nt)
    row, col = pix // nt, pix % nt
    n_slots = b * nf * nt
    seeded = torch.zeros(n_slots, dtype=torch.bool, device=db.device)
    seeded[slot[(db > _ROI["seed_level"]).flatten()[on]]] = True
    area = torch.bincount(slot, minlength=n_slots)
    big = torch.full((n_slots,), nf * nt, device=db.device)
    min_y = big.scatter_reduce(0, slot, row, "amin")
    max_y = torch.full_like(big, -1).scatter_reduce(0, slot, row, "amax")
    min_x = big.scatter_reduce(0, slot, col, "amin")
    max_x = torch.full_like(big, -1).scatter_reduce(0, slot, col, "amax")
    kept = seeded & (area >= _ROI["min_event_duration"] * _ROI["min_freq_bw"])
    shaped = kept & ((max_x - min_x) * dt >= _ROI["min_event_duration"]) & ((max_y - min_y) * df >= _ROI["min_freq_bw"])
    low = shaped & (min_y <= max(1, round(_ROI["flim_min"] / df)))
    kept &= ~low
    shaped &= ~low
    ratio = (max_y - min_y) / (max_x - min_x)
    n_roi = (shaped & (ratio < _ROI["max_ratio_xy"])).view(b, -1).sum(dim=1).to(_DTYPE)
    kept_area = (area * kept).view(b, -1).sum(dim=1).to(_DTYPE)
    return [n_roi / (float(tn[-1]) / 60), kept_area / (nf * nt) * 100]


def _label(active: torch.Tensor) -> torch.Tensor:
    """The 8-connected components of each [f, t] image of active pixels: [clip, f, t] int64, numbered from 1
    within each clip, 0 outside; scipy's on the host (a hundred times faster there than the scans of
    ``_label_hooks``, which are a GPU's way, with no copy to the host and back)."""
    if active.device.type == "cpu":
        return torch.from_numpy(np.stack([ndimage.label(image, structure=np.ones((3, 3)))[0].astype(np.int64)
                                          for image in active.numpy()]))
    return _label_hooks(active)


def _label_hooks(active: torch.Tensor) -> torch.Tensor:
    """8-connected components on a device: every pixel labelled with its region's largest pixel number + 1
    (numbered within its clip), 0 outside regions.

    Every pixel starts with its own number + 1, which names a pixel of its region whose label
    is at least as large (the root). Each round a pixel takes the largest label of its 3×3
    neighbourhood, and where that is larger than its own it also raises its root's label
    (hooking: the whole tree behind that root follows at the next jump); then each pixel
    jumps to its root's label, twice. Labels only grow and stay within their region, so
    they settle in a few rounds (5 to 10 on 10-s soundscapes, where spreading to neighbours
    alone took 50 to 100). The one scatter writes each pixel's slot or its root's, never
    one address for all: a GPU serialises atomics that meet.
    """
    b, nf, nt = active.shape
    per = nf * nt
    dtype = torch.int32 if per < 2**31 else torch.int64
    own = torch.arange(per, device=active.device).expand(b, per)
    labels = torch.where(active, own.view(b, nf, nt).to(dtype) + 1, 0).view(b, per)
    while True:
        before = labels
        seen = torch.where(active, _max3x3(labels.view(b, nf, nt)), 0).view(b, per)
        root = (labels.long() - 1).clamp(min=0)
        labels = seen.scatter_reduce(1, torch.where(seen > labels, root, own), seen, "amax")
        for _ in range(_JUMPS):
            labels = labels.gather(1, (labels.long() - 1).clamp(min=0)) * active.view(b, per)
        if torch.equal(labels, before):
            return labels.view(b, nf, nt).long()


def _max3x3(x: torch.Tensor) -> torch.Tensor:
    """The largest value of each pixel's 3×3 neighbourhood of [clip, f, t] (0 beyond the edges), separably."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    along_t = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    return torch.maximum(torch.maximum(along_t[:, :-2], along_t[:, 1:-1]), along_t[:, 2:])


def group(x: torch.Tensor, sr: int, params: FeatureParams, shared: dict[str, Any]) -> torch.Tensor:
    """The ``indices`` group of a batch (``feature_groups``); leaves the batch's power spectrograms in
    ``shared["psd"]`` for the spectral statistics."""
    indices, shared["psd"] = indices_and_psd(x, sr, params)
    return indices
