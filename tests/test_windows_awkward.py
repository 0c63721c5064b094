"""Hour-scale inputs that are awkward (issue 61, part 4): a 96 kHz four-channel file, a file on object storage read
by range rather than copied whole, and a file whose transfer fails part-way (its windows so far kept, an error row
for each of the rest). The object store is moto's server behind the fault proxy (tests/s3_fault_proxy.py), which
logs every request's Range header and the bytes it answered, and cuts the transfer when told.
"""

from __future__ import annotations

import io
import sys
import uuid

import numpy as np
import pytest
import s3fs
import soundfile as sf
from s3_fault_proxy import Fault, FaultProxy
from test_windows import SR, _sound, world  # noqa: F401 - the module's model and long recording

from acoustic_env.config import WindowParams
from acoustic_env.jobs.predict import predict
from acoustic_env.jobs.windows import predict_windows

#: Seconds of the long recording on the store: 6 minutes, 11.5 MB of 16-bit samples.
LONG_S = 360
#: The reader's block on the store for these tests, 256 KiB (s3fs reads 50 MB blocks by default: a file this small would be
#: one read whatever the reader does).
BLOCK = 1 << 18


def test_windows_of_a_96k_four_channel_file_are_made_as_its_clips_are(world, tmp_path):  # noqa: F811
    """Each window of a 96 kHz, 4-channel file is resampled and mixed down on its own, as a file holding only it."""
    sr = 96000
    mono = [_sound(k % 2 == 1, seed=300 + k, sr=sr) for k in range(3)]
    parts = [np.stack([x, x // 2, x // 3, -(x // 4)], axis=1) for x in mono]
    for k, audio in enumerate(parts):
        sf.write(tmp_path / f"c{k}.wav", audio, sr, subtype="PCM_16")
    sf.write(tmp_path / "long.wav", np.concatenate(parts), sr, subtype="PCM_16")
    assert sf.info(str(tmp_path / "long.wav")).channels == 4
    clips = predict([str(tmp_path / f"c{k}.wav") for k in range(3)], world["model"]).to_pylist()
    rows = predict_windows([str(tmp_path / "long.wav")], world["model"]).table.to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0, 2), (2, 4), (4, 6)]
    for clip, window in zip(clips, rows):
        assert abs(window["prob_urban"] - clip["prob_urban"]) <= 1e-6 and window["predicted"] == clip["predicted"]


@pytest.fixture
def store(s3_endpoint, monkeypatch, world):  # noqa: F811
    """The proxy in front of moto, this process's clients on it, 1 MB read blocks, and the long recording (six
    minutes: the module's clips repeated) at s3://<a new bucket>/long.wav, written straight to the store:
    (proxy, the file's bytes, its URI)."""
    with FaultProxy(s3_endpoint, lifetime_s=600) as proxy:
        direct = s3fs.S3FileSystem(skip_instance_cache=True)
        bucket = f"long-{uuid.uuid4().hex[:8]}"  # the store lives for the session: a bucket of this test's own
        direct.mkdir(bucket)
        clips = [sf.read(c, dtype="int16")[0] for c in world["clips"]]
        audio = np.concatenate([clips[k % len(clips)] for k in range(LONG_S // 2)])
        buf = io.BytesIO()
        sf.write(buf, audio, SR, format="WAV", subtype="PCM_16")
        direct.pipe(f"{bucket}/long.wav", buf.getvalue())
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        monkeypatch.setattr(s3fs.S3FileSystem, "default_block_size", BLOCK)
        s3fs.S3FileSystem.clear_instance_cache()
        yield proxy, buf.getvalue(), f"s3://{bucket}/long.wav"
        s3fs.S3FileSystem.clear_instance_cache()


def _gets(proxy: FaultProxy) -> list:
    return [e for e in proxy.events if e.method == "GET" and "long.wav" in e.path]


SPARSE = WindowParams(windows=True, window_s=2.0, hop_s=60.0)


def test_a_file_on_object_storage_is_read_by_range_not_copied_whole(store, world):  # noqa: F811
    """Six 2-s windows a minute apart read a few 256 KiB blocks of the 11.5 MB object, each GET a range of at most one
    block, and score as the same file read locally."""
    proxy, data, uri = store
    rows = predict_windows([uri], world["model"], window=SPARSE).table.to_pylist()
    gets = _gets(proxy)
    assert gets and all(e.range and e.range.startswith("bytes=") for e in gets)
    assert max(e.sent for e in gets) <= BLOCK + 65536 and sum(e.sent for e in gets) < len(data) / 4
    assert [r["start_s"] for r in rows] == [60.0 * k for k in range(6)] and all(r["error"] is None for r in rows)
    local = world["root"] / "long6.wav"
    local.write_bytes(data)
    here = predict_windows([str(local)], world["model"], window=SPARSE).table.to_pylist()
    for a, b in zip(rows, here):
        assert abs(a["prob_urban"] - b["prob_urban"]) <= 1e-6 and a["predicted"] == b["predicted"]


def test_a_transfer_that_fails_part_way_keeps_the_windows_before_it_and_an_error_row_for_each_after(
        store, world, monkeypatch):  # noqa: F811
    """The object's first reads pass, then every read (its retries too) has its connection reset: the windows read
    before are scored, and each window after is a row naming the transport's failure (not a truncated file), in
    order, none lost, and no traceback reaches the console."""
    proxy, _, uri = store
    ignored: list = []  # what an exception inside libsndfile's read callback would print, traceback and all
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    proxy.set_schedule([Fault("reset", method="GET", path="long.wav", times=-1, after=3)])
    result = predict_windows([uri], world["model"], window=SPARSE)
    rows = result.table.to_pylist()
    assert [r["start_s"] for r in rows] == [60.0 * k for k in range(6)]
    scored = [r for r in rows if r["error"] is None]
    assert scored and len(scored) < 6 and rows[:len(scored)] == scored  # the windows before the cut, then errors
    assert all(r["prob_urban"] is None and r["error"].startswith("decode/read_failed: ") for r in rows[len(scored):])
    assert proxy.injected("reset") and not ignored
