"""Decoding: every odd-but-valid input decodes; every broken one is a named ClipError."""

from __future__ import annotations

import http.server
import os
import socket
import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_clip

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams
from acoustic_env.errors import ClipError

P = DecodeParams()


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
def test_sample_rates_resample_to_16k(tmp_path, sr):
    clip = decode_clip(str(tone_clip(tmp_path / "a.wav", seconds=1.0, sr=sr)), P)
    assert clip.orig_sample_rate == sr
    assert clip.audio.dtype == np.float32
    assert abs(clip.audio.size - 16000) <= 1
    assert np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-3)
    # the 440 Hz tone survives resampling: the spectral peak stays at 440 Hz
    spec = np.abs(np.fft.rfft(clip.audio))
    assert np.argmax(spec) * 16000 / clip.audio.size == pytest.approx(440, abs=2)


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
def test_channels_averaged_to_mono(tmp_path, channels):
    clip = decode_clip(str(tone_clip(tmp_path / "a.wav", channels=channels)), P)
    assert clip.channels == channels and clip.audio.ndim == 1


@pytest.mark.parametrize("subtype,fmt", [("PCM_U8", "WAV"), ("PCM_16", "WAV"), ("PCM_24", "FLAC"), ("PCM_32", "WAV"),
                                         ("FLOAT", "WAV"), ("DOUBLE", "WAV"), ("VORBIS", "OGG"), ("MPEG_LAYER_III", "MP3")])
def test_sample_formats_and_containers(tmp_path, subtype, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    tone_clip(path, sr=16000 if fmt != "MP3" else 44100, subtype=subtype)
    clip = decode_clip(str(path), P)
    assert clip.audio.size == pytest.approx(1.5 * 16000, abs=1200)  # MP3 adds encoder padding
    assert np.isfinite(clip.audio).all()


def test_stereo_with_opposite_phase_is_silent_not_an_error(tmp_path):
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 300 * t)
    sf.write(tmp_path / "a.wav", np.stack([x, -x], axis=1), 16000, subtype="FLOAT")
    clip = decode_clip(str(tmp_path / "a.wav"), P)
    assert clip.is_silent and not np.any(clip.audio)


def test_digital_silence_is_valid_and_flagged(tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros(32000, dtype=np.int16), 16000)
    clip = decode_clip(str(tmp_path / "s.wav"), P)
    assert clip.is_silent
    assert np.all(clip.audio == 0) and np.isfinite(clip.audio).all()


def test_longer_than_segment_is_trimmed_shorter_is_kept(tmp_path):
    path = str(tone_clip(tmp_path / "a.wav", seconds=3.0))
    assert decode_clip(path, P, start_s=30.0, end_s=32.0).audio.size == 32000  # trimmed to the declared 2 s
    assert decode_clip(path, P, start_s=30.0, end_s=40.0).audio.size == 48000  # declared 10 s, kept at 3 s
    assert decode_clip(path, DecodeParams(max_duration_s=1.0)).audio.size == 16000


def test_cut_segment_from_whole_video(tmp_path):
    sr = 16000
    x = np.zeros(5 * sr, dtype=np.float32)
    x[2 * sr:3 * sr] = np.sin(2 * np.pi * 500 * np.arange(sr) / sr)  # only second 2..3 is loud
    sf.write(tmp_path / "v.wav", x, sr, subtype="FLOAT")
    clip = decode_clip(str(tmp_path / "v.wav"), P, start_s=2.0, end_s=3.0, cut=True)
    assert clip.audio.size == sr and not clip.is_silent
    assert clip.orig_duration_s == pytest.approx(1.0)


def _error(path: str, **kw) -> ClipError:
    with pytest.raises(ClipError) as info:
        decode_clip(path, P, **kw)
    return info.value


def test_missing_file(tmp_path):
    assert _error(str(tmp_path / "nope.flac")).error_type == "missing_file"


def test_empty_file(tmp_path):
    (tmp_path / "e.flac").write_bytes(b"")
    assert _error(str(tmp_path / "e.flac")).error_type == "empty_file"


def test_not_audio(tmp_path):
    (tmp_path / "t.flac").write_text("this is a text file, not audio\n" * 20)
    assert _error(str(tmp_path / "t.flac")).error_type == "not_audio"


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_truncated_file(tmp_path, fmt):
    full = tone_clip(tmp_path / f"full.{fmt}", seconds=3.0)
    data = full.read_bytes()
    (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) // 3])
    err = _error(str(tmp_path / f"cut.{fmt}"))
    assert err.error_type in {"truncated", "corrupt"}
    assert err.stage == "decode"


def test_corrupt_body(tmp_path):
    full = tone_clip(tmp_path / "full.flac", seconds=3.0)
    data = bytearray(full.read_bytes())
    data[200:] = os.urandom(len(data) - 200)  # a valid header over garbage frames
    (tmp_path / "bad.flac").write_bytes(bytes(data))
    assert _error(str(tmp_path / "bad.flac")).error_type in {"truncated", "corrupt"}


def test_nan_samples(tmp_path):
    x = np.full(16000, 0.1, dtype=np.float32)
    x[100] = np.nan
    x[200] = np.inf
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    err = _error(str(tmp_path / "n.wav"))
    assert err.error_type == "nan_samples" and "2 NaN/inf" in err.message


def test_too_short(tmp_path):
    path = str(tone_clip(tmp_path / "s.wav", seconds=0.1))
    assert _error(path).error_type == "too_short"


def test_segment_beyond_end_of_file_is_too_short(tmp_path):
    path = str(tone_clip(tmp_path / "v.wav", seconds=2.0))
    assert _error(path, start_s=30.0, end_s=40.0, cut=True).error_type == "too_short"


def test_permission_denied_local(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode; the HTTP and S3 tests cover access refusal")
    path = tone_clip(tmp_path / "locked.wav")
    path.chmod(0)
    assert _error(str(path)).error_type == "permission_denied"


def _serve(tmp_path, status_for=None):
    """A loopback HTTP server over ``tmp_path``; ``status_for(path)`` may answer an error code instead."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def do_GET(self):  # noqa: N802 - the stdlib's name
            code = status_for(self.path) if status_for else None
            if code:
                self.send_error(code)
            else:
                super().do_GET()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_permission_denied_over_http(tmp_path):
    """A real HTTP server on loopback that refuses one file with 403 and lacks another (404)."""
    tone_clip(tmp_path / "open.wav")
    server = _serve(tmp_path, lambda path: 403 if "locked" in path else None)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert decode_clip(f"{base}/open.wav", P).audio.size == 24000
        assert _error(f"{base}/locked.wav").error_type == "permission_denied"
        assert _error(f"{base}/absent.wav").error_type == "missing_file"
    finally:
        server.shutdown()


def test_server_errors_and_refused_connections_are_read_failed_not_missing(tmp_path):
    server = _serve(tmp_path, lambda path: 500)
    try:
        err = _error(f"http://127.0.0.1:{server.server_address[1]}/a.wav")
        assert err.error_type == "read_failed" and "HTTP 500" in err.message
    finally:
        server.shutdown()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    err = _error(f"http://127.0.0.1:{port}/a.wav")
    assert err.error_type == "read_failed" and "connect" in err.message.lower()


def test_finite_samples_far_beyond_full_scale_are_valid_audio(tmp_path):
    x = np.full(16000, 1e300) * np.sign(np.sin(2 * np.pi * 50 * np.arange(16000) / 16000) + 1e-9)
    sf.write(tmp_path / "loud.wav", np.stack([x, x], axis=1), 16000, subtype="DOUBLE")
    clip = decode_clip(str(tmp_path / "loud.wav"), P)
    assert np.isfinite(clip.audio).all() and not clip.is_silent
    assert np.sqrt(np.mean(clip.audio.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize("start,end,cut", [(float("nan"), 10.0, False), (0.0, float("inf"), True), (-1.0, 2.0, True),
                                           (5.0, 2.0, False), (5.0, 2.0, True)])
def test_impossible_segment_bounds_are_bad_segment(tmp_path, start, end, cut):
    err = _error(str(tone_clip(tmp_path / "a.wav", seconds=2.0)), start_s=start, end_s=end, cut=cut)
    assert err.error_type == "bad_segment" and err.stage == "decode"


def test_messages_quote_no_python_objects(tmp_path):
    (tmp_path / "t.wav").write_text("plain text that is no audio at all\n" * 20)
    data = bytearray(tone_clip(tmp_path / "full.flac", seconds=3.0).read_bytes())
    data[200:] = bytes(len(data) - 200)
    (tmp_path / "bad.flac").write_bytes(bytes(data))
    for name in ("t.wav", "bad.flac"):
        err = _error(str(tmp_path / name))
        assert " at 0x" not in err.message and "<_io" not in err.message, err.message


def test_container_that_needs_ffmpeg_says_so(tmp_path):
    import audioread

    if any("ffmpeg" in b.__module__ or "gst" in b.__module__ for b in audioread.available_backends()):
        pytest.skip("an audioread backend is installed: the fallback decodes or reports corrupt")
    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + os.urandom(4000))
    err = _error(str(tmp_path / "a.m4a"))
    assert err.error_type == "unsupported" and "ffmpeg" in err.message
