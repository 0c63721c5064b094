"""One AudioSet segment → one clip file, by the user's downloader command; a failure is a row with its reason.

AudioSet publishes segment lists, not audio: the audio is on YouTube, under its
uploaders' and YouTube's terms. The command that fetches a segment is therefore the
user's (``FetchConfig.downloader``; by default yt-dlp fetches the video's audio and ffmpeg
cuts the segment, both installed by the user). It runs in a shell in a fresh temporary
directory with its placeholders filled in, shell-quoted: ``{url}`` (from
``url_template``, the YTID URL-encoded), ``{ytid}``, ``{start}``, ``{end}``, ``{duration}`` (seconds),
``{tmp}`` (the directory) and ``{out}``, where it must write the clip.

What becomes of a run (``reason`` of a failure row):

* longer than ``timeout_s``: its whole process group is killed, ``timeout``;
* exit status 0 and ``{out}`` decodes to audio: the clip, copied to its place in one
  step (a local file is renamed into place, an object-store PUT is atomic), so a clip
  file is always whole, and its presence is what a resumed run skips. The check streams
  the file (:func:`acoustic_env.audio.decode.file_duration`: its header, then every frame a
  block at a time), never holding it in memory;
* exit status 0 but no ``{out}``, or nothing in it that decodes: ``no_audio``;
* a ``{out}`` over ``max_bytes`` (not read at all), or one more than a second longer than
  its segment (a whole video, not its cut): ``too_large``;
* another exit status: ``no_audio`` when its error output says the media has no audio
  stream (ffmpeg's and yt-dlp's messages, :data:`NO_AUDIO_MESSAGES`), else
  ``unavailable`` (a removed or private video, a refused download); the last line of
  the error output, secrets redacted, is the row's message.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from acoustic_env.audio.decode import file_duration
from acoustic_env.audio.manifest import YTID
from acoustic_env.errors import ClipError
from acoustic_env.storage import filesystem, is_local, join, redact

#: Error output that means "this media has no audio stream" (ffmpeg, yt-dlp), matched case-insensitively.
NO_AUDIO_MESSAGES = ("does not contain any stream", "matches no streams", "no audio stream",
                     "requested format is not available", "output file is empty")
REASONS = ("unavailable", "no_audio", "too_large", "timeout", "bad_id", "bad_segment", "write_failed")
MIN_CLIP_S = 0.1  # any length from a tenth of a second is a clip (a video may end inside its segment)
LONGER_S = 1.0  # a clip this much longer than its segment is not a cut of it
#: The clip ids that name a file: ``<YTID>_<start ms>`` (an id is data; any other never becomes a path).
CLIP_ID = re.compile(rf"{YTID}_\d+")


@dataclass(frozen=True)
class Downloader:
    """The command template and its limits (from ``FetchConfig``)."""

    command: str
    url_template: str
    clip_format: str
    timeout_s: float
    max_bytes: int


def clip_name(clip_id: str, clip_format: str) -> str:
    """The clip's file name; ValueError for an id that is not ``<YTID>_<start ms>`` (``../x``, ``a/b``: never
    a path; the job refuses such rows before any download, as ``bad_id``)."""
    if not CLIP_ID.fullmatch(clip_id):
        raise ValueError(f"clip id {clip_id!r} is not <YouTube id>_<start ms>: it names no file")
    return f"{clip_id}.{clip_format}"


def command_line(downloader: Downloader, segment: dict[str, Any], tmp: str, out: str) -> str:
    """The shell command of one segment, every placeholder shell-quoted (the YTID in the URL URL-encoded too)."""
    start, end = segment["start_s"], segment["end_s"]
    url = downloader.url_template.format(ytid=quote(segment["YTID"], safe=""))
    values = {"url": url, "ytid": segment["YTID"],
              "start": f"{start:.3f}", "end": f"{end:.3f}", "duration": f"{end - start:.3f}", "tmp": tmp, "out": out}
    return downloader.command.format(**{k: shlex.quote(v) for k, v in values.items()})


def fetch_segment(segment: dict[str, Any], downloader: Downloader, audio_dir: str, not_before: float = 0.0
                  ) -> dict[str, Any]:
    """Fetch one segment (``YTID``, ``start_s``, ``end_s``, ``clip_id``) into ``audio_dir``; the result row.

    Waits until ``not_before`` (epoch seconds) first: the rate limit's slot for this download.
    """
    time.sleep(max(0.0, not_before - time.time()))
    started = time.time()
    row = {"clip_id": segment["clip_id"], "YTID": segment["YTID"], "start_s": segment["start_s"],
           "end_s": segment["end_s"], "ok": False, "reason": None, "message": None, "uri": None,
           "duration_s": None, "started_at": started, "elapsed_s": None}
    name = clip_name(segment["clip_id"], downloader.clip_format)
    with tempfile.TemporaryDirectory(prefix="acoustic-env-fetch-") as tmp:
        out = os.path.join(tmp, name)
        reason, message = _run(command_line(downloader, segment, tmp, out), tmp, downloader.timeout_s)
        if reason is None:
            reason, message, duration = _check(out, segment["end_s"] - segment["start_s"], downloader.max_bytes)
            row["duration_s"] = duration
        if reason is None:
            try:
                row["uri"] = _put(out, join(audio_dir, name))
            except OSError as exc:
                reason, message = "write_failed", f"{type(exc).__name__}: {exc}"
    row.update(ok=reason is None, reason=reason, message=redact(message) if message else None,
               elapsed_s=round(time.time() - started, 3))
    return row


def _run(command: str, cwd: str, timeout_s: float) -> tuple[str | None, str | None]:
    """Run the command in its own process group; (None, None) on exit status 0, else (reason, message)."""
    proc = subprocess.Popen(command, shell=True, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell and everything it started (yt-dlp, ffmpeg)
        except ProcessLookupError:  # it ended just now
            pass
        proc.communicate()
        return "timeout", f"the downloader ran longer than {timeout_s:g} s and was stopped"
    if proc.returncode == 0:
        return None, None
    text = err.decode("utf-8", "replace").strip()
    last = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
    if any(m in text.lower() for m in NO_AUDIO_MESSAGES):
        return "no_audio", last
    return "unavailable", last


def _check(out: str, segment_s: float, max_bytes: int) -> tuple[str | None, str | None, float | None]:
    """Whether the downloader's file is the segment's audio: (None, None, seconds), else (reason, why, None).

    Streamed: the size first (over ``max_bytes`` the file is not read), then the header and every frame
    a block at a time, so a download of any size costs a block of memory.
    """
    if not os.path.isfile(out) or not os.path.getsize(out):
        return "no_audio", "the downloader exited without error but wrote no clip to {out}", None
    size = os.path.getsize(out)
    if size > max_bytes:
        return "too_large", f"the clip written is {size} bytes, over max_bytes = {max_bytes}", None
    try:
        duration = file_duration(out)
    except ClipError as exc:
        return "no_audio", f"the clip written does not decode as audio ({exc.error_type}: {exc.message})", None
    if duration < MIN_CLIP_S:
        return "no_audio", f"the clip written holds {duration:.3f} s of audio (under {MIN_CLIP_S} s)", None
    if duration > segment_s + LONGER_S:
        return "too_large", (f"the clip written is {duration:.1f} s, its segment {segment_s:.1f} s: "
                             "not a cut of the segment"), None
    return None, None, round(duration, 3)


def _put(local: str, uri: str) -> str:
    """Copy a finished clip to its place in one step (a rename locally, one PUT on object storage)."""
    fs, path = filesystem(uri)
    if is_local(uri):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = posixpath.join(posixpath.dirname(path), f".tmp-{os.getpid()}-{posixpath.basename(path)}")
        fs.put_file(local, tmp)
        os.replace(tmp, path)
    else:
        fs.put_file(local, path)
    return uri
