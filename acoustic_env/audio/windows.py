"""A long recording as a stream of windows, each decoded as a clip of its own.

An hour at 48 kHz stereo is 1.3 GB of float32 samples: the recording is never read
whole. The file stays open (:func:`~acoustic_env.audio.decode.open_clip`: local,
s3://, https://, the read limits of a clip; or a file object, such as the temporary
file the service spools an upload to) and libsndfile reads one window's frames
at a time, seeking to its start, so memory holds a batch of windows whatever the
length. Each window's frames go through
:func:`~acoustic_env.audio.decode.samples_to_clip`, the very steps a clip file's
frames go through (mono, 16 kHz, RMS-normalised), so a window covering a whole clip
gives that clip's features to the bit.

Windows start at 0, ``hop_s``, 2 ``hop_s``, ... until one reaches the end of the
file; that last one may be shorter (nothing is padded, as for clips), and a tail
shorter than ``decode.min_duration_s`` is left out. Times are counted in the file's own
frames, so ``start_s``/``end_s`` are exact at its sample rate.

A file that fails part-way keeps the windows before the failure: the first window the stream cannot deliver (a
transfer that fails, a file cut short, a FLAC frame that does not decode) is an error row naming the cause, and the
rest of the windows asked for carry the same error without being read (a transfer that keeps failing is tried once
per span, not once per window, each with the store's retries). A WAV cut short is counted to the length its header
declares, so the windows it lost are error rows too rather than missing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO

import soundfile as sf
from fsspec.spec import AbstractBufferedFile

from acoustic_env.audio.decode import STAGE, DecodedClip, check_format, open_clip, samples_to_clip
from acoustic_env.config import DecodeParams
from acoustic_env.errors import ClipError
from acoustic_env.storage import transport_failure


@dataclass(frozen=True)
class Window:
    """One window of a recording: its bounds in seconds and the decoded clip, or why it has none."""

    start_s: float
    end_s: float
    clip: DecodedClip | None
    error: str | None = None


def spans(frames: int, sr: int, window_s: float, hop_s: float, min_s: float) -> Iterator[tuple[int, int]]:
    """(first frame, end frame) of each window of a ``frames``-long recording at ``sr`` Hz, made as they are
    wanted: a list of them would be as long as the recording is over the hop."""
    length, hop = _frames(window_s, sr), _frames(hop_s, sr)
    start = 0
    while start < frames:
        end = min(start + length, frames)
        if end - start >= min_s * sr or start == 0:  # a file shorter than one window is still one window
            yield start, end
        if end == frames:
            return
        start += hop


def span_count(frames: int, sr: int, window_s: float, hop_s: float) -> int:
    """How many windows :func:`spans` makes at most (a short tail it leaves out included), without making them."""
    length, hop = _frames(window_s, sr), _frames(hop_s, sr)
    return min(1 + max(0, -(-(frames - length) // hop)), -(-frames // hop)) if frames else 0


def _frames(seconds: float, sr: int) -> int:
    return max(1, round(seconds * sr))


#: The most one read of a remote recording fetches ahead of what it asked for. s3fs reads 50 MB blocks, so opening a
#: file (its header) and each span's first window would fetch 50 MB, a file under that size whole; 1 MiB is what each
#: span's opening costs beside its own bytes (its header's block), and a GET per half-minute of 16 kHz mono, or per
#: window of 96 kHz four-channel float.
READ_BLOCK = 1 << 20


def open_recording(source: str | bytes | BinaryIO, params: DecodeParams) -> Any:
    """A file object for ``source``: a URI opened within the clip read limits, bytes in memory, or a binary file
    object already open (a temporary file the service spooled an upload to), read from its start."""
    if isinstance(source, str):
        fh = open_clip(source, params)
        if isinstance(fh, AbstractBufferedFile):  # object storage, HTTP: a GET per block from where it is read
            fh.blocksize = fh.cache.blocksize = min(fh.blocksize, READ_BLOCK)
        return _Watched(fh)
    fh = io.BytesIO(source) if isinstance(source, bytes) else source
    if fh.seek(0, io.SEEK_END) == 0:
        raise ClipError(STAGE, "empty_file", "file is empty (0 bytes)")
    fh.seek(0)
    return _Watched(fh)


class _Watched:
    """A file object that keeps its last read error and reads as at its end instead. libsndfile reads through
    callbacks that cannot raise (an exception there is printed, traceback and all, and read as no bytes), so a
    transfer that fails part-way (a connection reset on object storage) reads as an early end of file; the window
    then names the transport's failure (``read_failed``), not a truncated file."""

    def __init__(self, fh: Any) -> None:
        self._fh, self.failure = fh, None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._fh.read(size)
        except Exception as exc:  # noqa: BLE001 - transports raise their own types
            self.failure = exc
            return b""

    def readinto(self, buffer: Any) -> int:
        read_into = self._fh.readinto  # a file object without one: AttributeError, and soundfile calls read
        try:
            return read_into(buffer)
        except Exception as exc:  # noqa: BLE001 - as read
            self.failure = exc
            return 0

    def __getattr__(self, name: str) -> Any:  # seek, tell, close, ...: the file object's own
        return getattr(self._fh, name)

    def __repr__(self) -> str:  # what soundfile's errors name: the file object itself
        return repr(self._fh)


class Recording:
    """An open recording: its length, and its windows read as they are wanted.

    A file libsndfile cannot open (not audio, or MP4/M4A, which it lacks) raises
    ClipError on entry; a window that cannot be made (NaN samples, a truncated file) is
    a Window with its error, and the windows after it still come.
    """

    def __init__(self, source: str | bytes | BinaryIO, params: DecodeParams) -> None:
        self.source, self.params = source, params

    def __enter__(self) -> Recording:
        self._fh = open_recording(self.source, self.params)
        try:
            self._file = sf.SoundFile(self._fh)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            self._fh.close()
            if self._fh.failure is not None:  # the header's transfer failed: not a file libsndfile cannot read
                raise ClipError(STAGE, *transport_failure(self._fh.failure)) from None
            reason = getattr(exc, "error_string", None) or str(exc)
            raise ClipError(STAGE, "not_audio", f"libsndfile cannot read it ({reason}); windows need WAV, FLAC, "
                                                "OGG or MP3 (convert other formats with ffmpeg first)") from None
        try:
            check_format(self._file.samplerate, self._file.channels)
        except ClipError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: Any) -> None:
        self._file.close()
        self._fh.close()

    @property
    def duration_s(self) -> float:
        return self.frames / self._file.samplerate

    @property
    def frames(self) -> int:
        """The frames the file declares: a WAV cut short holds fewer (libsndfile reads it as shorter), and the
        windows it lost are error rows rather than missing."""
        return declared_frames(self._file)

    @property
    def sample_rate(self) -> int:
        return int(self._file.samplerate)

    def windows(self, window_s: float, hop_s: float, most: int | None = None, first: int = 0,
                end: int | None = None) -> Iterator[Window]:
        """The windows in order (see the module docstring for where they start and end); with ``first`` and
        ``end``, only windows ``first`` .. ``end - 1`` of them (a span, as a Ray task scores it), read from
        their own frames: the windows before are never read.

        ClipError, before any window is read, for a file with no samples (too_short) or
        one that would give more than ``most`` windows (too_many_windows).
        """
        if self.frames <= 0:
            raise ClipError(STAGE, "too_short", "no audio samples in the file")
        count = span_count(self.frames, self.sample_rate, window_s, hop_s)
        if most is not None and count > most:
            raise ClipError(STAGE, "too_many_windows",
                            f"{self.duration_s:.1f} s in windows of {window_s:g} s every {hop_s:g} s is {count} "
                            f"windows, more than max_windows = {most}: take a longer hop or raise max_windows")
        return self._read(window_s, hop_s, first, end)

    def window_count(self, window_s: float, hop_s: float, most: int | None = None) -> int:
        """How many windows :meth:`windows` gives (the short tail it leaves out not counted), none of them read;
        its ClipErrors."""
        self.windows(window_s, hop_s, most)  # the checks only: the generator reads nothing until drawn
        return sum(1 for _ in spans(self.frames, self.sample_rate, window_s, hop_s, self.params.min_duration_s))

    def _read(self, window_s: float, hop_s: float, first: int = 0, end: int | None = None) -> Iterator[Window]:
        f, sr = self._file, self._file.samplerate
        dtype = "float64" if f.subtype == "DOUBLE" else "float32"  # as decode_bytes reads
        cut = (f"{STAGE}/truncated: the file ends at {f.frames / sr:.1f} s, its header declares "
               f"{self.frames / sr:.1f} s")
        broken: str | None = None  # the stream's failure: the windows after it are not read
        for start, stop in islice(spans(self.frames, sr, window_s, hop_s, self.params.min_duration_s), first, end):
            if broken is None and start >= f.frames:  # past the end of a WAV cut short
                broken = cut
            if broken is not None:
                yield Window(start / sr, stop / sr, None, broken)
                continue
            window = _window(f, start, stop, dtype, self.params, self._fh)
            if window.error is not None and not window.error.startswith(SAMPLE_ERRORS):
                short = self.frames > f.frames and window.error.startswith(f"{STAGE}/truncated:")
                broken = cut if short else window.error
            yield window


#: The errors of a window's own samples; any other is the stream's, and the windows after it share it unread.
SAMPLE_ERRORS = (f"{STAGE}/too_short:", f"{STAGE}/nan_samples:")


def declared_frames(f: sf.SoundFile) -> int:
    """The frames a WAV's header declares when the file holds fewer (libsndfile notes ``data : <bytes> (should be
    <bytes held>)`` and reads only those), else the frames libsndfile reads. A header that says 0 or 0xFFFFFFFF
    (a recorder that never wrote the length) declares nothing."""
    data = re.search(r"^data\s*:\s*(\d+) \(should be \d+\)", f.extra_info, re.MULTILINE)
    align = re.search(r"Block Align\s*:\s*(\d+)", f.extra_info)
    if data is None or align is None or int(data[1]) in (0, 0xFFFFFFFF) or int(align[1]) <= 0:
        return int(f.frames)
    return max(int(f.frames), int(data[1]) // int(align[1]))


def _window(f: sf.SoundFile, start: int, end: int, dtype: str, params: DecodeParams,
            fh: _Watched | None = None) -> Window:
    """Frames ``start``..``end`` of the open file as a Window (its error instead of a clip when it fails); ``fh``:
    the file object it reads through, whose read error names a failure."""
    sr = f.samplerate
    try:
        if fh is not None:
            fh.failure = None
        try:
            f.seek(start)
        except sf.LibsndfileError as exc:  # a FLAC cut short or damaged before here
            raise ClipError(STAGE, "corrupt", f"cannot seek to {start / sr:.1f} s, the file is cut short or damaged "
                                              f"before it ({exc.error_string})") from None
        audio = f.read(frames=end - start, dtype=dtype, always_2d=True)
        if audio.shape[0] < end - start and fh is not None and fh.failure is not None:
            raise ClipError(STAGE, *transport_failure(fh.failure))
        if audio.shape[0] < end - start:
            raise ClipError(STAGE, "truncated", f"file declares {end - start} frames here but holds {audio.shape[0]}")
        clip = samples_to_clip(audio, sr, end - start, params)
    except ClipError as exc:
        return Window(start / sr, end / sr, None, str(exc))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return Window(start / sr, end / sr, None, f"{STAGE}/corrupt: {exc}")
    return Window(start / sr, end / sr, clip)
