"""PANNs CNN14 (Kong et al. 2020), the 16 kHz model, written out in PyTorch.

This is the network of panns-inference's ``Cnn14`` (from audioset_tagging_cnn) at the
16 kHz settings of the ``Cnn14_16k_mAP=0.438.pth`` release: 512-sample window, 160 hop,
64 mel bins over 50–8000 Hz. Module and parameter names are identical to that class
(``spectrogram_extractor``, ``logmel_extractor``, ``bn0``, ``conv_block1..6``, ``fc1``,
``fc_audioset``), so the official ``checkpoint['model']`` loads with ``strict=True``.
panns-inference itself is never imported: importing it downloads files.

CNN14 pools over time itself (the sum of the max and the mean over its last feature map,
then ``fc1``), so its 2048-d embedding and 527 AudioSet scores are clip-level outputs of
the network: no pooling is added here. Each clip is run on its own valid samples (clips of
equal length share a forward pass), which is exactly what the reference does for one clip.
Clips shorter than :data:`MIN_SAMPLES` (0.31 s: 32 STFT frames, the least that survives
CNN14's five 2× poolings as one time step) are zero-padded at the end to it.

CNN14 carries its front end inside the network (torchlibrosa's ``Spectrogram`` and
``LogmelFilterBank``), with the STFT as two convolutions and the mel matrix as a parameter;
those modules are mirrored here with the same parameter names so that the official
checkpoint loads strictly.
"""

from __future__ import annotations

from collections import defaultdict

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acoustic_env.embedders.base import Embedder, chunks, pad_batch, pad_to
from acoustic_env.embedders.panns import SPEC
from acoustic_env.embedders.weights import WeightsSource

SAMPLE_RATE = SPEC.sample_rate
WINDOW = 512
HOP = 160
MEL_BINS = 64
FMIN, FMAX = 50.0, 8000.0
NUM_CLASSES = len(SPEC.score_names)
EMBEDDING_DIM = SPEC.dim
TIME_REDUCTION = 32  # five 2× average poolings
MIN_SAMPLES = (TIME_REDUCTION - 1) * HOP


def frame_count(n_samples: int) -> int:
    """Time steps of CNN14's last feature map (the frames it pools) for ``n_samples``."""
    frames = 1 + max(n_samples, MIN_SAMPLES) // HOP  # centred STFT
    return frames // TIME_REDUCTION


class _STFT(nn.Module):
    """torchlibrosa's STFT: DFT rows times a periodic Hann window, applied as 1-D convs."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        window = librosa.filters.get_window("hann", n_fft, fftbins=True)
        k = np.arange(n_fft)
        dft = np.exp(-2j * np.pi * np.outer(k, k) / n_fft)[:, :bins] * window[:, None]
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop_length, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.real(dft).T[:, None, :]))
            self.conv_imag.weight.copy_(torch.from_numpy(np.imag(dft).T[:, None, :]))
        self.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[batch, samples] → real, imag [batch, 1, frames, bins] (centred, reflect-padded)."""
        x = F.pad(waveform[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = self.conv_real(x)[:, None].transpose(2, 3)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)
        return real, imag


class Spectrogram(nn.Module):
    """Power spectrogram; parameter names as torchlibrosa's ``Spectrogram``."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.stft = _STFT(n_fft, hop_length)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """[batch, samples] → [batch, 1, frames, n_fft // 2 + 1]."""
        real, imag = self.stft(waveform)
        return real**2 + imag**2


class LogmelFilterBank(nn.Module):
    """librosa (Slaney) mel filter bank then dB with amin 1e-10, ref 1, no top_db clipping."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                 fmax: float) -> None:
        super().__init__()
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                  fmax=fmax).T
        self.melW = nn.Parameter(torch.from_numpy(mel), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """[..., bins] → [..., mels] in dB."""
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class ConvBlock(nn.Module):
    """Two 3×3 conv + BN + ReLU, then 2-D average pooling (panns ``ConvBlock``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """CNN14, 16 kHz: waveform [B, samples] → (embedding [B, 2048], scores [B, 527])."""

    def __init__(self) -> None:
        super().__init__()
        self.spectrogram_extractor = Spectrogram(WINDOW, HOP)
        self.logmel_extractor = LogmelFilterBank(SAMPLE_RATE, WINDOW, MEL_BINS, FMIN, FMAX)
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, NUM_CLASSES)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, samples] → log-mel [B, 1, frames, 64], in float32 whatever the autocast."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return self.logmel_extractor(self.spectrogram_extractor(waveform.float()))

    def feature_map(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, 1, frames, 64] → the time series CNN14 pools, [B, 2048, frames // 32]."""
        x = self.bn0(log_mel.transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
        return x.mean(dim=3)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.feature_map(self.log_mel(waveform))
        x = x.amax(dim=2) + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, torch.sigmoid(self.fc_audioset(embedding))


class PannsEmbedder(Embedder):
    """CNN14 behind the :class:`~acoustic_env.embedders.base.Embedder` interface."""

    spec = SPEC

    def _embed_clips(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        out = {self.name: np.empty((len(clips), self.dim), dtype=np.float32),
               self.spec.scores_column: np.empty((len(clips), NUM_CLASSES), dtype=np.float32)}
        by_length: dict[int, list[int]] = defaultdict(list)
        padded = [pad_to(clip, MIN_SAMPLES) for clip in clips]
        for i, clip in enumerate(padded):
            by_length[clip.shape[-1]].append(i)
        for members in by_length.values():
            for key, value in self._embed_batch(self._tensor(np.stack([padded[i] for i in members]))).items():
                out[key][members] = value.cpu().numpy()
        return out

    def _embed_batch(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Equal-length clips through CNN14 ``max_batch`` at a time, outputs left on the device."""
        x = pad_batch(batch, MIN_SAMPLES)
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for part in chunks(x.shape[0], self.max_batch):
            with self._autocast():
                parts.append(self.model(x[part]))
        return {self.name: torch.cat([emb.float() for emb, _ in parts]),
                self.spec.scores_column: torch.cat([sc.float() for _, sc in parts])}


def load(weights: WeightsSource, device: str, precision: str, max_batch: int) -> PannsEmbedder:
    """CNN14 from the checked release checkpoint."""
    network, weights_id = weights.network(SPEC.weights, Cnn14)
    return PannsEmbedder(network, weights_id, device, precision, max_batch)
