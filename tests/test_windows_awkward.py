"""Hour-scale inputs that are awkward (issue 61, part 4): 96 kHz four-channel files (16-, 24-bit and float), a file
on object storage read by range rather than copied whole, a file that fails part-way (a transfer cut, a WAV or FLAC
cut short: its windows so far kept, an error row for each of the rest, the other files complete, in this process
and on Ray), and hundreds of short files. The object store is moto's server behind the fault proxy
(tests/s3_fault_proxy.py), which logs every request's Range header and the bytes it answered, and cuts the transfer
when told; the proxy also serves the objects over plain HTTP, which Ray's workers reach without the S3 settings.
"""
from __future__ import annotations

import io
import sys
import tracemalloc
import uuid
from dataclasses import replace

import numpy as np
import pytest
import s3fs
import soundfile as sf
from s3_fault_proxy import Fault, FaultProxy
from test_windows import SR, _sound, world  # noqa: F401 - the module's model and long recording

from acoustic_env.audio.windows import READ_BLOCK
from acoustic_env.config import WindowParams
from acoustic_env.jobs.predict import predict
from acoustic_env.jobs.windows import Span, SpanScorer, predict_windows, score_windows
from acoustic_env.learn.artifact import load_model
from acoustic_env.storage import S3_READ_ATTEMPTS

#: Seconds of the long recording on the store: 6 minutes, 11.5 MB of 16-bit samples.
LONG_S = 360
#: The reader's block on the store for the tests that name it, 256 KiB (a window of this file is 64 KB, a minute
#: 1.9 MB: with READ_BLOCK, 1 MiB, six windows a minute apart would still be a read each, but fewer reads to fail).
BLOCK = 1 << 18


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("wav", "FLOAT")])
def test_windows_of_a_96k_four_channel_file_are_made_as_its_clips_are(world, tmp_path, ext, subtype):  # noqa: F811
    """Each window of a 96 kHz, 4-channel file is resampled and mixed down on its own, as a file holding only it."""
    sr = 96000
    mono = [_sound(k % 2 == 1, seed=300 + k, sr=sr) for k in range(3)]
    parts = [np.stack([x, x // 2, x // 3, -(x // 4)], axis=1) for x in mono]
    for k, audio in enumerate(parts):
        sf.write(tmp_path / f"c{k}.{ext}", audio, sr, subtype=subtype)
    sf.write(tmp_path / f"long.{ext}", np.concatenate(parts), sr, subtype=subtype)
    info = sf.info(str(tmp_path / f"long.{ext}"))
    assert (info.samplerate, info.channels, info.subtype) == (sr, 4, subtype)
    clips = predict([str(tmp_path / f"c{k}.{ext}") for k in range(3)], world["model"]).to_pylist()
    rows = predict_windows([str(tmp_path / f"long.{ext}")], world["model"]).table.to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0, 2), (2, 4), (4, 6)]
    for clip, window in zip(clips, rows):
        assert abs(window["prob_urban"] - clip["prob_urban"]) <= 1e-6 and window["predicted"] == clip["predicted"]


def test_a_few_minutes_of_96k_four_channel_audio_are_read_a_window_at_a_time(world, tmp_path):  # noqa: F811
    """Two minutes of 96 kHz, 4-channel, 24-bit FLAC (147 MB as float32 samples): windows a quarter-minute apart come
    out at their times, and far less than the file is ever allocated at once."""
    sr, path = 96000, tmp_path / "field.flac"
    quarter = np.tile(np.concatenate([_sound(False, seed=7, sr=sr), _sound(True, seed=8, sr=sr)]), 4)[:15 * sr] // 2
    with sf.SoundFile(path, "w", sr, 4, "PCM_24") as f:
        for _ in range(8):
            f.write(np.stack([quarter, quarter, quarter // 2, -quarter], axis=1))
    model = load_model(str(world["model"]))
    tracemalloc.start()
    try:
        rows = score_windows(model, [{"clip_id": "field", "uri": str(path)}],
                             WindowParams(windows=True, hop_s=15.0)).table.to_pylist()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(15.0 * k, 15.0 * k + 2) for k in range(8)]
    assert [r["predicted"] for r in rows] == ["urban"] * 8 and all(r["error"] is None for r in rows)
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.fixture
def store(s3_endpoint, monkeypatch, world):  # noqa: F811
    """The proxy in front of moto, this process's clients on it, and ``put(seconds)``: a long recording of that
    length (the module's clips repeated, 16-bit) written straight to s3://<a new bucket>/long.wav and readable
    without credentials: (proxy, put), where put gives (the file's bytes, its URI)."""
    with FaultProxy(s3_endpoint, lifetime_s=600) as proxy:
        direct = s3fs.S3FileSystem(skip_instance_cache=True)
        bucket = f"long-{uuid.uuid4().hex[:8]}"  # the store lives for the session: a bucket of this test's own
        direct.mkdir(bucket)
        clips = [sf.read(c, dtype="int16")[0] for c in world["clips"]]

        def put(seconds: int) -> tuple[bytes, str]:
            buf = io.BytesIO()
            sf.write(buf, np.concatenate([clips[k % len(clips)] for k in range(seconds // 2)]), SR, format="WAV",
                     subtype="PCM_16")
            direct.pipe(f"{bucket}/long.wav", buf.getvalue())
            direct.chmod(f"{bucket}/long.wav", "public-read")  # for the same object over plain HTTP
            return buf.getvalue(), f"s3://{bucket}/long.wav"

        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        yield proxy, put
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """s3fs reads ``BLOCK`` bytes a time (below READ_BLOCK, which only ever lowers the block)."""
    monkeypatch.setattr(s3fs.S3FileSystem, "default_block_size", BLOCK)
    s3fs.S3FileSystem.clear_instance_cache()


def _gets(proxy: FaultProxy) -> list:
    return [e for e in proxy.events if e.method == "GET" and "long.wav" in e.path]


SPARSE = WindowParams(windows=True, window_s=2.0, hop_s=60.0)


def test_a_file_on_object_storage_is_read_by_range_not_copied_whole(store, small_blocks, world):  # noqa: F811
    """Six 2-s windows a minute apart read a few 256 KiB blocks of the 11.5 MB object, each GET a range of at most one
    block, and score as the same file read locally."""
    proxy, put = store
    data, uri = put(LONG_S)
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
        store, small_blocks, world, monkeypatch):  # noqa: F811
    """The object's first reads pass, then every read (its retries too) has its connection reset: the windows read
    before are scored, and each window after is a row naming the transport's failure (not a truncated file), in
    order, none lost, and no traceback reaches the console. Only the first failed window is tried (with the
    store's retries): the rest of its span share its error unread."""
    proxy, put = store
    uri = put(LONG_S)[1]
    ignored: list = []  # what an exception inside libsndfile's read callback would print, traceback and all
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    proxy.set_schedule([Fault("reset", method="GET", path="long.wav", times=-1, after=3)])
    result = predict_windows([uri], world["model"], window=SPARSE)
    rows = result.table.to_pylist()
    assert [r["start_s"] for r in rows] == [60.0 * k for k in range(6)]
    scored = [r for r in rows if r["error"] is None]
    assert scored and len(scored) < 6 and rows[:len(scored)] == scored  # the windows before the cut, then errors
    assert all(r["prob_urban"] is None and r["error"].startswith("decode/read_failed: ") for r in rows[len(scored):])
    # one read's tries (s3fs tries a failed read twice, botocore each S3_READ_ATTEMPTS times), not one per window: 4x
    assert 0 < len(proxy.injected("reset")) <= 2 * S3_READ_ATTEMPTS and not ignored


def test_a_span_late_in_a_long_object_reads_that_span_and_the_header_not_the_file(store, world):  # noqa: F811
    """With s3fs's own settings (50 MB blocks), the last ten windows of a 20-minute object (38 MB) read its header's
    block and theirs: two ranged GETs of at most READ_BLOCK, a few percent of the object, not all of it."""
    proxy, put = store
    data, uri = put(1200)
    model = load_model(str(world["model"]))
    span = Span(0, "long", uri, 590, 600, 1200 * SR, SR)
    rows = SpanScorer(model, WindowParams(windows=True), 2.0, 2.0)(span).to_pylist()
    assert [r["start_s"] for r in rows] == [2.0 * k for k in range(590, 600)] and all(r["error"] is None for r in rows)
    gets = _gets(proxy)
    assert len(gets) == 2 and all(e.range and e.range.startswith("bytes=") for e in gets)
    assert gets[0].range.startswith("bytes=0-") and int(gets[1].range[6:].split("-")[0]) >= 44 + 590 * 2 * SR * 2
    assert sum(e.sent for e in gets) <= 2 * READ_BLOCK + 64 and sum(e.sent for e in gets) < len(data) / 16


def _damaged(world, folder) -> list[dict]:  # noqa: F811
    """The module's 12-s recording cut short as a WAV (7 s of its 12 kept: its header still declares 12) and as a
    16-bit FLAC (60% of its bytes kept), then an intact clip: the rows of a run over the three."""
    data = world["long"].read_bytes()
    (folder / "cut.wav").write_bytes(data[:44 + 7 * SR * 2])
    flac = io.BytesIO()
    sf.write(flac, sf.read(world["long"], dtype="int16")[0], SR, format="FLAC", subtype="PCM_16")
    (folder / "cut.flac").write_bytes(flac.getvalue()[:len(flac.getvalue()) * 6 // 10])
    return [{"clip_id": "cut_wav", "uri": str(folder / "cut.wav")}, {"clip_id": "cut_flac", "uri": str(folder / "cut.flac")},
            {"clip_id": "after", "uri": str(world["clips"][1])}]


def _check_damaged(rows: list[dict], whole: list[dict]) -> None:
    """Each cut file: its 6 windows in order, those before the damage as the intact file's, an error row in one line
    for each of the rest (the WAV's naming where it ends; the FLAC's, what its decoder said); the file after them
    scored."""
    by = {c: [r for r in rows if r["clip_id"] == c] for c in ("cut_wav", "cut_flac", "after")}
    assert [r["clip_id"] for r in rows] == ["cut_wav"] * 6 + ["cut_flac"] * 6 + ["after"]
    for clip, kept, cause in (("cut_wav", 3, "decode/truncated: "), ("cut_flac", None, "decode/corrupt: ")):
        mine = by[clip]
        assert [(r["start_s"], r["end_s"]) for r in mine] == [(2.0 * k, 2.0 * k + 2) for k in range(6)]
        kept = kept or sum(r["error"] is None for r in mine)
        assert 0 < kept < 6 and all(r["error"] is None for r in mine[:kept])
        for r, w in zip(mine[:kept], whole):
            assert r["predicted"] == w["predicted"] and abs(r["prob_urban"] - w["prob_urban"]) <= 1e-6
        assert all(r["error"].startswith(cause) and r["prob_urban"] is None for r in mine[kept:])
        assert all("\n" not in r["error"] for r in mine[kept:])
    wav = by["cut_wav"]  # the window the cut runs through says what it holds; the rest, where the file ends
    assert wav[3]["error"] == f"decode/truncated: file declares {2 * SR} frames here but holds {SR}"
    assert {r["error"] for r in wav[4:]} == {"decode/truncated: the file ends at 7.0 s, its header declares 12.0 s"}
    assert by["after"][0]["error"] is None and by["after"][0]["predicted"] == "natural"


def test_a_file_cut_short_keeps_its_windows_before_the_cut_and_an_error_row_for_each_after(
        world, tmp_path, capfd):  # noqa: F811
    """In spans of two windows (so the damage reaches spans of its own, read afresh): the windows before the cut are
    scored, each after is an error row with the cause in one line, the file after them completes, and libsndfile's
    complaints reach no console."""
    model = load_model(str(world["model"]))
    whole = score_windows(model, [{"clip_id": "long", "uri": str(world["long"])}], WindowParams(windows=True))
    result = score_windows(model, _damaged(world, tmp_path), WindowParams(windows=True, span_windows=2))
    _check_damaged(result.table.to_pylist(), whole.table.to_pylist())
    summary = {s["clip_id"]: s for s in result.summary.to_pylist()}
    assert (summary["cut_wav"]["duration_s"], summary["cut_wav"]["scored"], summary["cut_wav"]["failed"]) == (12.0, 3, 3)
    assert "Traceback" not in "".join(capfd.readouterr())


def _short_files(folder, count: int) -> list[dict]:
    """``count`` 5-s files (the module's clips, a different pair each): rows for a run."""
    rows = []
    for k in range(count):
        path = folder / f"s{k:03d}.wav"
        sf.write(path, np.concatenate([_sound(k % 2 == 1, seed=k, seconds=2.5), _sound(k % 2 == 0, seed=k, seconds=2.5)]),
                 SR, subtype="PCM_16")
        rows.append({"clip_id": f"s{k:03d}", "uri": str(path)})
    return rows


# ----------------------------------------------------------------------------- on Ray

@pytest.mark.slow
def test_on_ray_files_that_fail_part_way_keep_their_windows_and_the_others_complete(
        store, world, tmp_path, ray_session):  # noqa: F811
    """The cut WAV and FLAC on Ray's actors (``in_process_max`` 0) give the rows they give in this process; a
    30-s object (within one READ_BLOCK), over HTTP through the proxy whose every GET after the first three is reset,
    keeps the windows of the spans that read it before and has a read_failed row for each other window (a span
    whose header read fails included); the files after it complete."""
    proxy, put = store
    uri = put(30)[1]
    http = f"{proxy.endpoint}/{uri.removeprefix('s3://')}"
    model = load_model(str(world["model"]))
    rows = _damaged(world, tmp_path)
    window = WindowParams(windows=True, span_windows=2)
    here = score_windows(model, rows, window).table.to_pylist()
    proxy.set_schedule([Fault("reset", method="GET", path="long.wav", times=-1, after=3)])
    on_ray = score_windows(model, [{"clip_id": "http", "uri": http}, *rows], replace(window, in_process_max=0),
                           ).table.to_pylist()
    remote = [r for r in on_ray if r["clip_id"] == "http"]
    assert [r["start_s"] for r in remote] == [2.0 * k for k in range(15)]
    errors = {r["error"].split(":")[0] for r in remote if r["error"] is not None}
    assert errors == {"decode/read_failed"} and any(r["error"] is None for r in remote) and proxy.injected("reset")
    rest = on_ray[len(remote):]
    for a, b in zip(rest, here, strict=True):
        assert (a["clip_id"], a["start_s"], a["error"], a["predicted"]) == (b["clip_id"], b["start_s"], b["error"],
                                                                             b["predicted"])
        assert a["prob_urban"] == b["prob_urban"] or abs(a["prob_urban"] - b["prob_urban"]) <= 1e-6


@pytest.mark.slow
def test_hundreds_of_short_files_on_ray_come_out_file_by_file_from_a_few_blocks(world, tmp_path, monkeypatch,
                                                                                 ray_session):  # noqa: F811
    """200 five-second files (one span each) on Ray: the table is the in-process one, a row per file in the given
    order, and the spans reach the actors in a few dozen blocks (Ray tasks), not 200."""
    import ray.data

    rows = _short_files(tmp_path, 200)
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, window_s=5.0, in_process_max=10_000)
    here = score_windows(model, rows, window).table
    blocks: list[int] = []
    from_items = ray.data.from_items

    def counted(items, **kwargs):
        blocks.append(kwargs["override_num_blocks"])
        return from_items(items, **kwargs)

    monkeypatch.setattr(ray.data, "from_items", counted)
    on_ray = score_windows(model, rows, replace(window, in_process_max=0)).table
    assert on_ray["clip_id"].to_pylist() == [r["clip_id"] for r in rows]
    assert on_ray.drop_columns(["prob_urban", "prob_natural"]).equals(here.drop_columns(["prob_urban", "prob_natural"]))
    np.testing.assert_allclose(on_ray["prob_urban"].to_numpy(), here["prob_urban"].to_numpy(), atol=1e-6)
    assert len(blocks) == 1 and blocks[0] <= 200 // 4, blocks
