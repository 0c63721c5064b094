"""The log-mel images (``features/logmel.py``) of a batch of equal-length clips, on their device; their MFCCs.

The same frames (``unfold``: 400 samples every 160, no padding), the same periodic Hann window, a 512-point
real FFT, librosa's filterbank as one batched matrix product and the same dB rule, its ``top_db`` floor taken
per clip. float32 throughout, as the numpy path.
"""

from __future__ import annotations

import math

import torch

from acoustic_env.features.logmel import LOGMEL, LogMelSettings, dct_matrix, frame_count, mel_basis, window


def logmel(x: torch.Tensor, settings: LogMelSettings = LOGMEL) -> torch.Tensor:
    """[clips, bands, frames] dB from ``x`` [clips, samples] (float32).

    Raises:
        ClipError: ``too_short``, clips shorter than one window.
    """
    frame_count(x.shape[-1], settings)
    frames = x.to(torch.float32).unfold(-1, settings.win_length, settings.hop_length)  # [clips, frames, win]
    win = torch.as_tensor(window(settings), device=x.device)
    spectrum = torch.fft.rfft(frames * win, n=settings.n_fft)  # [clips, frames, bins]
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.as_tensor(mel_basis(settings), device=x.device) @ power.transpose(-1, -2)  # [clips, bands, frames]
    db = 10.0 * torch.log10(torch.clamp(mel, min=settings.amin))
    db = db - 10.0 * math.log10(max(settings.amin, settings.db_ref))
    floor = db.amax(dim=(-2, -1), keepdim=True) - settings.top_db
    return torch.maximum(db, floor)


def image(x: torch.Tensor, settings: LogMelSettings = LOGMEL) -> torch.Tensor:
    """[clips, rows, frames]: the log-mel of ``x`` [clips, samples], or its MFCCs (``settings.image``), as
    ``features.logmel.compute_image``."""
    db = logmel(x, settings)
    return torch.as_tensor(dct_matrix(settings), device=x.device) @ db if settings.image == "mfcc" else db
