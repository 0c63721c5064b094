"""Decode any clip to mono float32 at 16 kHz, RMS-normalised.

Rules (documented in the README, section "Decoding"):

* Reading goes through fsspec (local, s3://, gs://, https://) within limits, so
  that no input can hang a worker or fill its memory: a local path must be a
  regular file (a FIFO blocks forever, ``/dev/zero`` never ends), every network
  wait is bounded by ``read_timeout_s`` and reading an opened file by about twice that,
  and a file over ``max_bytes`` is ``too_large``.
* soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF) decodes what it
  knows; audioread (ffmpeg/GStreamer) only the containers libsndfile lacks
  (MP4/M4A, ADTS AAC, WavPack), and a missing backend is said as such.
* Only the frames that will be kept are decoded (``frames=``), so a 500 KB file
  that claims three hours of audio costs ``max_duration_s`` of memory, not GBs.
* Integer and float samples, 1–8 channels (averaged to mono), any rate from
  8 to 96 kHz (resampled with soxr, high quality), checked before any samples
  are read. Float samples far outside ±1 are valid: they are scaled before
  averaging (no overflow), and the RMS normalisation makes the scale irrelevant.
* Segment rules: with ``cut=True`` the file holds the whole video and
  ``start_s..end_s`` is cut out of it. Otherwise the file already is the
  segment; if it is longer than the declared ``end_s - start_s`` it is trimmed
  to that length, if shorter it is kept as it is. Nothing is ever padded here:
  padding would add silence that the indices would measure as part of the
  scene. Anything longer than ``max_duration_s`` is trimmed to it. Bounds that
  are not finite, negative, or reversed are ``bad_segment``.
* Clips shorter than ``min_duration_s`` after these rules are ``too_short``.
* Digital silence is valid data (AudioSet has a Silence class): it is not
  normalised (no division by zero), and it is flagged ``is_silent``.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from acoustic_env.config import DecodeParams
from acoustic_env.errors import ClipError
from acoustic_env.storage import is_local, read_filesystem, transport_failure

STAGE = "decode"
CHUNK = 1 << 20  # bytes per read call: the byte cap and the deadline are checked between calls
NO_BACKEND = "this container (MP4/M4A, AAC or WavPack) needs ffmpeg or GStreamer, and audioread found neither"
_NATIVE = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff", b".snd")


@dataclass(frozen=True)
class DecodedClip:
    audio: np.ndarray  # float32, mono, 16 kHz, RMS = target (unless silent)
    orig_sample_rate: int
    channels: int
    orig_duration_s: float  # of the file (or cut segment) before trimming, from its header
    is_silent: bool


def open_clip(uri: str, params: DecodeParams = DecodeParams()) -> Any:
    """A binary file object of a clip, every network wait bounded by ``read_timeout_s``.

    A local path must be a regular file: a FIFO blocks forever, ``/dev/zero`` never ends.
    Every failure is a ClipError (missing_file, read_failed, ...).
    """
    try:
        fs, path = read_filesystem(uri, params.read_timeout_s)
        if is_local(uri):
            kind = fs.info(path)["type"]
            if kind == "directory":
                raise ClipError(STAGE, "not_audio", f"is a directory: {uri}")
            if kind != "file":
                raise ClipError(STAGE, "not_audio", f"not a regular file (a FIFO, device or socket): {uri}")
        return fs.open(path, "rb")
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001 - transports raise their own types (aiohttp, botocore, ...)
        error_type, reason = transport_failure(exc)
        raise ClipError(STAGE, error_type, f"{reason}: {uri}") from None


def read_bytes(uri: str, params: DecodeParams = DecodeParams()) -> bytes:
    """Fetch a clip's bytes within ``params``' read limits, mapping every failure to a ClipError."""
    chunks: list[bytes] = []
    copy_clip(uri, params, chunks.append)
    return b"".join(chunks)


def copy_clip(uri: str, params: DecodeParams, write: Callable[[bytes], Any], deadline_s: float | None = None) -> int:
    """Read a clip in chunks within ``params``' read limits, each handed to ``write``; return its size in bytes.

    Opening it is one network wait (``read_timeout_s``); reading it once open gets ``deadline_s``, by
    default twice ``read_timeout_s`` (room for one retried wait). The deadline starts at the open, not
    before it: a cold Ray worker runs at a low priority, and on a busy node importing the transport and
    starting its session can take longer than a short timeout, which is not the server's slowness.
    """
    size = 0
    try:
        with open_clip(uri, params) as fh:
            deadline = time.monotonic() + (2 * params.read_timeout_s if deadline_s is None else deadline_s)
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                if size > params.max_bytes:
                    raise ClipError(STAGE, "too_large", f"larger than decode.max_bytes = {params.max_bytes}: {uri}")
                if time.monotonic() > deadline:
                    within = (f"twice decode.read_timeout_s = {params.read_timeout_s}" if deadline_s is None
                              else f"{deadline_s:g}")
                    raise ClipError(STAGE, "read_timeout", f"not read within {within} s: {uri}")
                write(chunk)
    except ClipError:
        raise
    except IsADirectoryError:
        raise ClipError(STAGE, "not_audio", f"is a directory: {uri}") from None
    except Exception as exc:  # noqa: BLE001 - transports raise their own types (aiohttp, botocore, ...)
        error_type, reason = transport_failure(exc)
        raise ClipError(STAGE, error_type, f"{reason}: {uri}") from None
    if not size:
        raise ClipError(STAGE, "empty_file", f"file is empty (0 bytes): {uri}")
    return size


def _container(data: bytes) -> str | None:
    """'native' (libsndfile reads it), 'foreign' (needs audioread) or None (no audio header)."""
    head = data[:12]
    if head.startswith(_NATIVE):
        return "native"
    if head[4:8] == b"ftyp" or head.startswith(b"wvpk"):  # MP4/M4A, WavPack
        return "foreign"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:  # MPEG frame sync
        return "foreign" if head[1] & 0x06 == 0 else "native"  # layer bits 00: ADTS AAC, else MP1/2/3
    return None


def _unless_foreign(head: bytes, sf_exc: Exception) -> None:
    """libsndfile could not read a file: ClipError (not_audio, corrupt) unless its header is a container only
    audioread reads (then return, and audioread tries)."""
    reason = getattr(sf_exc, "error_string", None) or str(sf_exc)  # error_string: no "<BytesIO at 0x…>"
    container = _container(head)
    if container is None:
        raise ClipError(STAGE, "not_audio", f"not a recognised audio file ({reason})") from None
    if container == "native":
        raise ClipError(STAGE, "corrupt", f"audio header found but decoding failed: {reason}") from None


def _riff_shortfall(data: bytes, file_size: int | None = None) -> int:
    """Bytes missing from a RIFF/WAVE data chunk (0 when complete or not a WAV).

    libsndfile silently shortens a cut-off WAV to what is there, so a
    truncated download would pass as a shorter clip; the header says otherwise.
    Placeholder sizes written by streaming encoders (0, 0xFFFFFFFF) are ignored.
    ``data`` may be the file's head only, with ``file_size`` its whole length.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            available = (len(data) if file_size is None else file_size) - pos - 8
            return 0 if size in (0, 0xFFFFFFFF) else max(0, size - available)
        pos += 8 + size + (size & 1)
    return 0


def _check_segment(start_s: float | None, end_s: float | None) -> None:
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ClipError(STAGE, "bad_segment", f"{name} = {value!r}: segment bounds must be finite seconds >= 0")
    if start_s is not None and end_s is not None and end_s < start_s:
        raise ClipError(STAGE, "bad_segment", f"end_s = {end_s} is before start_s = {start_s}")


def check_format(sr: int, channels: int) -> None:
    """Refuse what the pipeline does not take before a single sample is allocated."""
    if not 1 <= channels <= 8:
        raise ClipError(STAGE, "unsupported", f"{channels} channels (1 to 8 are supported)")
    if not 8000 <= sr <= 96000:
        raise ClipError(STAGE, "unsupported", f"sample rate {sr} Hz (8 to 96 kHz are supported)")


def _decode_soundfile(data: bytes, start_s: float | None, end_s: float | None,
                      keep_s: float) -> tuple[np.ndarray, int, int]:
    """(frames × channels, rate, frames the header says the segment has): at most ``keep_s`` decoded."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        sr = f.samplerate
        check_format(sr, f.channels)
        start = min(int(round((start_s or 0.0) * sr)), f.frames)
        stop = f.frames if end_s is None else min(int(round(end_s * sr)), f.frames)
        available = max(0, stop - start)
        want = min(available, int(round(keep_s * sr)))
        if start:
            f.seek(start)
        # float64 only where the file holds doubles: finite values beyond float32's range stay finite
        audio = f.read(frames=want, dtype="float64" if f.subtype == "DOUBLE" else "float32", always_2d=True)
    if audio.shape[0] < want:
        raise ClipError(STAGE, "truncated", f"file declares {want} frames but holds {audio.shape[0]}")
    return audio, sr, available


def _decode_audioread(data: bytes, start_s: float | None, end_s: float | None,
                      keep_s: float) -> tuple[np.ndarray, int, int]:
    """Fallback for containers libsndfile lacks; audioread needs a real file and a backend (ffmpeg)."""
    import audioread  # optional backend; imported here so a missing ffmpeg only hurts this path

    with tempfile.NamedTemporaryFile(suffix=".audio", delete=False) as tmp:
        tmp.write(data)
    try:
        with audioread.audio_open(tmp.name) as f:
            sr, ch = f.samplerate, f.channels
            check_format(sr, ch)
            start = int(round((start_s or 0.0) * sr))
            total = int(round(f.duration * sr))
            stop = total if end_s is None else min(total, int(round(end_s * sr)))
            limit = min(stop, start + int(round(keep_s * sr)))
            pcm = bytearray()
            for block in f:  # 16-bit PCM; stop as soon as the kept frames are in
                pcm += block
                if len(pcm) >= limit * ch * 2:
                    break
    except audioread.NoBackendError:
        raise ClipError(STAGE, "unsupported", NO_BACKEND) from None
    finally:
        os.unlink(tmp.name)
    audio = np.frombuffer(bytes(pcm[: limit * ch * 2]), dtype="<i2").astype(np.float32) / 32768.0
    audio = audio[: len(audio) // ch * ch].reshape(-1, ch)
    return audio[start:limit], sr, max(0, stop - start)


def decode_bytes(data: bytes, params: DecodeParams, start_s: float | None = None, end_s: float | None = None,
                 cut: bool = False, uri: str = "") -> DecodedClip:
    """Bytes of any supported file → DecodedClip, or ClipError naming what is wrong."""
    if not data:
        raise ClipError(STAGE, "empty_file", f"file is empty (0 bytes): {uri}")
    _check_segment(start_s, end_s)
    seg_start, seg_end = (start_s, end_s) if cut else (None, None)
    keep_s = params.max_duration_s
    if not cut and start_s is not None and end_s is not None and end_s > start_s:
        keep_s = min(keep_s, end_s - start_s)
    missing = _riff_shortfall(data)
    if missing:
        raise ClipError(STAGE, "truncated", f"WAV data chunk is {missing} bytes shorter than its header declares")
    try:
        audio, sr, available = _decode_soundfile(data, seg_start, seg_end, keep_s)
    except ClipError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as sf_exc:
        _unless_foreign(data, sf_exc)
        try:
            audio, sr, available = _decode_audioread(data, seg_start, seg_end, keep_s)
        except ClipError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend failure means "corrupt" here
            raise ClipError(STAGE, "corrupt", f"decoding failed: {type(exc).__name__}: {exc}") from None
    return samples_to_clip(audio, sr, available, params)


def samples_to_clip(audio: np.ndarray, sr: int, available: int, params: DecodeParams) -> DecodedClip:
    """Frames × channels as read → the mono, 16 kHz, RMS-normalised clip (or ClipError).

    Shared by :func:`decode_bytes` and the window reader (:mod:`acoustic_env.audio.windows`),
    so a window of a long file is made exactly as a file holding only that window is.
    """
    if audio.size == 0:
        raise ClipError(STAGE, "too_short", "no audio samples in the file (or in the requested segment)")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise ClipError(STAGE, "nan_samples", f"{bad} NaN/inf samples")
    scale = max(1.0, float(np.max(np.abs(audio))))
    if scale > 1.0:  # float samples beyond ±1 (up to 1e308): scale first so that no sum overflows
        audio = audio / scale
    channels = audio.shape[1]
    mono = audio.mean(axis=1, dtype=np.float64)
    if mono.size / sr < params.min_duration_s:
        raise ClipError(STAGE, "too_short", f"{mono.size / sr:.3f} s < minimum {params.min_duration_s} s")
    if sr != params.sample_rate:
        mono = soxr.resample(mono, sr, params.sample_rate, quality="HQ")
    rms_scaled = float(np.sqrt(np.mean(mono**2)))
    silent = rms_scaled * scale < params.silence_rms
    if not silent:
        mono = mono * (params.target_rms / rms_scaled)
    return DecodedClip(audio=mono.astype(np.float32), orig_sample_rate=int(sr), channels=int(channels),
                       orig_duration_s=available / sr, is_silent=bool(silent))


def decode_clip(uri: str, params: DecodeParams, start_s: float | None = None, end_s: float | None = None,
                cut: bool = False) -> DecodedClip:
    """Read and decode one clip (see the module docstring for the rules)."""
    _check_segment(start_s, end_s)  # before reading: a bad row costs no I/O
    return decode_bytes(read_bytes(uri, params), params, start_s, end_s, cut, uri)


def file_duration(path: str) -> float:
    """Seconds of audio in a local file, every frame decoded a block at a time, so memory holds one block
    whatever the file's size (``audioset fetch`` checks each download so, before it keeps it). ClipError as
    :func:`decode_bytes` would raise for the file: not_audio, corrupt, truncated, unsupported, empty_file."""
    size = os.path.getsize(path)
    if not size:
        raise ClipError(STAGE, "empty_file", f"file is empty (0 bytes): {path}")
    with open(path, "rb") as fh:
        head = fh.read(CHUNK)
    missing = _riff_shortfall(head, size)
    if missing:
        raise ClipError(STAGE, "truncated", f"WAV data chunk is {missing} bytes shorter than its header declares")
    try:
        with sf.SoundFile(path) as f:
            check_format(f.samplerate, f.channels)
            frames = sum(len(block) for block in f.blocks(blocksize=1 << 16, dtype="float32"))
            return frames / f.samplerate
    except ClipError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as sf_exc:
        _unless_foreign(head, sf_exc)
    import audioread

    try:
        with audioread.audio_open(path) as f:
            check_format(f.samplerate, f.channels)
            pcm_bytes = sum(len(block) for block in f)  # 16-bit PCM, a block at a time
            return pcm_bytes / (2 * f.channels) / f.samplerate
    except ClipError:
        raise
    except audioread.NoBackendError:
        raise ClipError(STAGE, "unsupported", NO_BACKEND) from None
    except Exception as exc:  # noqa: BLE001 - every backend failure means "corrupt" here
        raise ClipError(STAGE, "corrupt", f"decoding failed: {type(exc).__name__}: {exc}") from None
