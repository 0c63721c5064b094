"""Decode any clip to mono float32 at 16 kHz, RMS-normalised.

Rules (documented in the README, section "Decoding"):

* Reading goes through fsspec (local, s3://, gs://, https://). soundfile
  (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF) decodes first;
  audioread (ffmpeg/GStreamer, via librosa's fallback path) handles the rest.
* Integer and float samples, 1–8 channels (averaged to mono), any rate from
  8 to 96 kHz (resampled with soxr, high quality).
* Segment rules: with ``cut=True`` the file holds the whole video and
  ``start_s..end_s`` is cut out of it. Otherwise the file already is the
  segment; if it is longer than the declared ``end_s - start_s`` it is trimmed
  to that length, if shorter it is kept as it is. Nothing is ever padded here:
  padding would add silence that the indices would measure as part of the
  scene. Anything longer than ``max_duration_s`` is trimmed to it.
* Clips shorter than ``min_duration_s`` after these rules are ``too_short``.
* Digital silence is valid data (AudioSet has a Silence class): it is not
  normalised (no division by zero), and it is flagged ``is_silent``.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import fsspec
import numpy as np
import soundfile as sf
import soxr

from acoustic_env.config import DecodeParams
from acoustic_env.errors import ClipError

STAGE = "decode"
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff", b".snd", b"wvpk")


@dataclass(frozen=True)
class DecodedClip:
    audio: np.ndarray  # float32, mono, 16 kHz, RMS = target (unless silent)
    orig_sample_rate: int
    channels: int
    orig_duration_s: float  # of the decoded file (or cut segment) before trimming
    is_silent: bool


def read_bytes(uri: str) -> bytes:
    """Fetch a clip's bytes, mapping transport failures to error rows."""
    try:
        with fsspec.open(uri, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        if getattr(exc.__cause__, "status", None) in (401, 403):  # fsspec's HTTP layer wraps refusals
            raise ClipError(STAGE, "permission_denied", f"access denied (HTTP {exc.__cause__.status}): {uri}") from None
        raise ClipError(STAGE, "missing_file", f"no such file: {uri}") from None
    except PermissionError:
        raise ClipError(STAGE, "permission_denied", f"permission denied: {uri}") from None
    except IsADirectoryError:
        raise ClipError(STAGE, "not_audio", f"is a directory: {uri}") from None
    except Exception as exc:  # noqa: BLE001 - transports raise their own types (aiohttp, botocore, ...)
        if getattr(exc, "status", None) in (401, 403):  # HTTP(S) access refused
            raise ClipError(STAGE, "permission_denied", f"access denied (HTTP {exc.status}): {uri}") from None
        raise ClipError(STAGE, "read_failed", f"{type(exc).__name__}: {exc}") from None
    if not data:
        raise ClipError(STAGE, "empty_file", f"file is empty (0 bytes): {uri}")
    return data


def _looks_like_audio(data: bytes) -> bool:
    head = data[:12]
    if head.startswith(_MAGIC) or head[4:8] == b"ftyp":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG frame sync


def _riff_shortfall(data: bytes) -> int:
    """Bytes missing from a RIFF/WAVE data chunk (0 when complete or not a WAV).

    libsndfile silently shortens a cut-off WAV to what is there, so a
    truncated download would pass as a shorter clip; the header says otherwise.
    Placeholder sizes written by streaming encoders (0, 0xFFFFFFFF) are ignored.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            available = len(data) - pos - 8
            return 0 if size in (0, 0xFFFFFFFF) else max(0, size - available)
        pos += 8 + size + (size & 1)
    return 0


def _decode_soundfile(data: bytes, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(io.BytesIO(data)) as f:
        sr = f.samplerate
        start = int(round((start_s or 0.0) * sr))
        stop = int(round(end_s * sr)) if end_s is not None else -1
        if start:
            f.seek(min(start, f.frames))
        frames = -1 if stop < 0 else max(0, min(stop, f.frames) - start)
        declared = f.frames - start if frames < 0 else frames
        audio = f.read(frames=frames, dtype="float32", always_2d=True)
    if audio.shape[0] < declared:
        raise ClipError(STAGE, "truncated", f"file declares {declared} frames but holds {audio.shape[0]}")
    return audio, sr


def _decode_audioread(data: bytes, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, int]:
    """Fallback for containers libsndfile lacks (m4a/AAC, ...): audioread needs a real file."""
    import audioread  # optional backend; imported here so a missing ffmpeg only hurts this path

    with tempfile.NamedTemporaryFile(suffix=".audio", delete=False) as tmp:
        tmp.write(data)
    try:
        with audioread.audio_open(tmp.name) as f:
            sr, ch = f.samplerate, f.channels
            pcm = b"".join(f)
    finally:
        os.unlink(tmp.name)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    audio = audio[: len(audio) // ch * ch].reshape(-1, ch)
    start = int(round((start_s or 0.0) * sr))
    stop = int(round(end_s * sr)) if end_s is not None else None
    return audio[start:stop], sr


def decode_bytes(data: bytes, params: DecodeParams, start_s: float | None = None, end_s: float | None = None,
                 cut: bool = False, uri: str = "") -> DecodedClip:
    """Bytes of any supported file → DecodedClip, or ClipError naming what is wrong."""
    if not data:
        raise ClipError(STAGE, "empty_file", f"file is empty (0 bytes): {uri}")
    seg_start, seg_end = (start_s, end_s) if cut else (None, None)
    missing = _riff_shortfall(data)
    if missing:
        raise ClipError(STAGE, "truncated", f"WAV data chunk is {missing} bytes shorter than its header declares")
    try:
        audio, sr = _decode_soundfile(data, seg_start, seg_end)
    except ClipError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as sf_exc:
        if not _looks_like_audio(data):
            raise ClipError(STAGE, "not_audio", f"not a recognised audio file ({sf_exc})") from None
        try:
            audio, sr = _decode_audioread(data, seg_start, seg_end)
        except Exception as exc:  # noqa: BLE001 - every backend failure means "corrupt" here
            raise ClipError(STAGE, "corrupt", f"audio header found but decoding failed: {sf_exc}; "
                                              f"fallback: {type(exc).__name__}: {exc}") from None
    if audio.size == 0:
        raise ClipError(STAGE, "too_short", "no audio samples in the file (or in the requested segment)")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise ClipError(STAGE, "nan_samples", f"{bad} NaN/inf samples")
    channels = audio.shape[1]
    if not 1 <= channels <= 8:
        raise ClipError(STAGE, "unsupported", f"{channels} channels (1 to 8 are supported)")
    if not 8000 <= sr <= 96000:
        raise ClipError(STAGE, "unsupported", f"sample rate {sr} Hz (8 to 96 kHz are supported)")
    mono = audio.mean(axis=1, dtype=np.float64)
    orig_duration = mono.size / sr
    keep_s = params.max_duration_s
    if not cut and start_s is not None and end_s is not None and end_s > start_s:
        keep_s = min(keep_s, end_s - start_s)
    mono = mono[: int(round(keep_s * sr))]
    if mono.size / sr < params.min_duration_s:
        raise ClipError(STAGE, "too_short", f"{mono.size / sr:.3f} s < minimum {params.min_duration_s} s")
    if sr != params.sample_rate:
        mono = soxr.resample(mono, sr, params.sample_rate, quality="HQ")
    rms = float(np.sqrt(np.mean(mono**2)))
    silent = rms < params.silence_rms
    if not silent:
        mono = mono * (params.target_rms / rms)
    return DecodedClip(audio=mono.astype(np.float32), orig_sample_rate=int(sr), channels=int(channels),
                       orig_duration_s=float(orig_duration), is_silent=bool(silent))


def decode_clip(uri: str, params: DecodeParams, start_s: float | None = None, end_s: float | None = None,
                cut: bool = False) -> DecodedClip:
    """Read and decode one clip (see the module docstring for the rules)."""
    return decode_bytes(read_bytes(uri), params, start_s, end_s, cut, uri)
