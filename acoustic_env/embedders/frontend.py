"""Google's log-mel front end, shared by VGGish and YAMNet, written to reproduce the published one.

VGGish and YAMNet share Google's front end (``mel_features.py`` in tensorflow/models,
research/audioset): STFT magnitude with a 25 ms periodic Hann window and 10 ms hop,
zero-padded to a 512-point FFT, 64 HTK-mel bands over 125–7500 Hz (the DC bin
excluded), then ``log(mel + offset)``, framed into 96-frame patches. It is computed in
float64 so that it matches the NumPy reference to ~1e-12, far inside the 1e-5 budget;
it is a small share of the work next to the networks. (PANNs CNN14 carries its own front
end inside the network: :mod:`acoustic_env.embedders.panns.model`.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from acoustic_env.embedders.spec import SAMPLE_RATE

STFT_WINDOW = 400  # 25 ms at 16 kHz
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512  # next power of two above the window
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
PATCH_FRAMES = 96  # 0.96 s of 10 ms frames

# Samples needed for one 96-frame patch: 95 hops plus one whole window (0.975 s).
PATCH_SAMPLES = (PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as Google's front end uses it."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def google_mel_matrix(num_spectrogram_bins: int = FFT_LENGTH // 2 + 1,
                      sample_rate: int = SAMPLE_RATE, num_mel_bins: int = MEL_BANDS,
                      lower_hz: float = MEL_MIN_HZ, upper_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """Triangular HTK-mel weights [bins, mel], zero for the DC bin, as in ``mel_features``."""
    bins_mel = _hz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(_hz_to_mel(lower_hz), _hz_to_mel(upper_hz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


class GoogleLogMel(nn.Module):
    """Waveform → log-mel spectrogram → 96-frame patches, Google's way, in float64.

    ``log_offset`` is 0.01 for VGGish and 0.001 for YAMNet; ``patch_hop`` is 96 frames
    for VGGish (no overlap) and 48 for YAMNet (0.48 s). Buffers are not persistent, so
    they never enter a checkpoint.
    """

    def __init__(self, log_offset: float, patch_hop: int) -> None:
        super().__init__()
        self.log_offset = log_offset
        self.patch_hop = patch_hop
        n = np.arange(STFT_WINDOW, dtype=np.float64)
        periodic_hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / STFT_WINDOW)
        self.register_buffer("window", torch.from_numpy(periodic_hann), persistent=False)
        self.register_buffer("mel", torch.from_numpy(google_mel_matrix()), persistent=False)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[..., samples] → [..., frames, 64]; only whole STFT windows, as the reference frames them."""
        frames = waveform.to(self.window.dtype).unfold(-1, STFT_WINDOW, STFT_HOP)
        magnitude = torch.fft.rfft(frames * self.window, n=FFT_LENGTH).abs()
        return torch.log(magnitude @ self.mel + self.log_offset)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[..., samples] (at least :data:`PATCH_SAMPLES`) → patches [..., patches, 96, 64], float64.

        One clip ([samples]) or equal-length clips ([clips, samples]) alike: the device stage
        frames a whole batch in one call.
        """
        return self.log_mel(waveform).unfold(-2, PATCH_FRAMES, self.patch_hop).transpose(-1, -2)
