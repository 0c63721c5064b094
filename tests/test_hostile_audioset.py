"""Hostile inputs, third round: the AudioSet commands (`audioset sample`, `audioset fetch`), as a careless
or hostile user would drive them (issue 44's cases 1, 5, 8, 9, 11, 13 and 14; `audioset rescore`'s cases
are in tests/test_audioset_rescore.py, on its audit).

Every case runs the command in this process (``main()``; no Ray: fetch's downloads are replaced by a
function that fails the test if it is called, where the case must never reach them, and run by
``fetch_segment`` itself, where the download is the subject) and checks what the user sees: exit status 2
and one line naming the flag, row or file, no traceback, nothing written outside the output, no input
replaced.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from acoustic_env.audioset.fetch import Downloader, command_line, fetch_segment
from acoustic_env.cli import main

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"
HEAD = "# test list\n# YTID, start_seconds, end_seconds, positive_labels\n"
GOOD = [f'vidgood000{i}, {10.0 * i:.3f}, {10.0 * i + 10:.3f}, "{URBAN if i % 2 else NATURAL}"' for i in range(1, 5)]
#: Ids that are not YouTube ids: paths of every kind, an empty id, a NUL, a space, one far too long.
BAD_IDS = ["../../evil", "..", "a/b", "a\\b", "/etc/passwd", "", "vid\x00aaaaaaa", "vid aaaaaaa", "x" * 300,
           "vidgood0001/../../x"]


def _lines(path: Path, rows: list[str]) -> Path:
    path.write_text(HEAD + "\n".join(rows) + "\n")
    return path


def _ytids(path: Path) -> list[str]:
    """The YTIDs of a segment list's data rows, read as text."""
    return [line.split(",")[0] for line in path.read_text().splitlines() if not line.startswith("#")]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert all(w in lines[0] for w in words), (words, err)


def _sample(segments: Path, output: Path | str, *extra: str) -> list[str]:
    return ["audioset", "sample", "--segments", str(segments), "--output", str(output), "--task", "urban_natural",
            *(extra or ("--per-class", "10"))]


@pytest.fixture
def no_downloads(monkeypatch):
    """fetch's Ray layer, replaced: a case that must not start Ray fails the test if it reaches it."""
    def refuse(*args, **kwargs):
        raise AssertionError("run_downloads was called (Ray would start)")

    monkeypatch.setattr("acoustic_env.jobs.audioset.fetch.run_downloads", refuse)


def _fetch(segments: Path, output: Path, *extra: str) -> list[str]:
    return ["audioset", "fetch", "--segments", str(segments), "--output", str(output),
            "--downloader", "cp /nonexistent {out}", *extra]


# ----------------------------------------------------------------------------- ids are data (cases 1, 13)

@pytest.mark.parametrize("ytid", BAD_IDS)
def test_sample_refuses_a_row_whose_id_is_not_a_youtube_id(tmp_path, capsys, ytid):
    segments = _lines(tmp_path / "list.csv", GOOD[:2] + [f'{ytid}, 0.000, 10.000, "{URBAN}"'] + GOOD[2:])
    code, out, err = _run(_sample(segments, tmp_path / "s.csv"), capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "s.report.json").read_text())
    assert report["left_out"]["bad_id"] == 1 and report["clips"] == 4
    [refused] = report["refused_rows"]
    assert refused["row"] == 3 and refused["reason"] == "bad_id" and repr(ytid) in refused["message"]
    assert f"refused data row 3: YTID {ytid!r} is not a YouTube id" in out
    assert _ytids(tmp_path / "s.csv") == [f"vidgood000{i}" for i in range(1, 5)]


@pytest.mark.parametrize("start,end", [(-5.0, 5.0), (-0.001, 10.0), (10.0, 10.0), (20.0, 10.0), (1e300, 1e301),
                                       (0.0, float("inf"))])
def test_sample_draws_no_segment_fetch_would_refuse(tmp_path, capsys, start, end):
    """A negative start (or any bounds fetch refuses) is bad_segment in the sample too, so the fetched set
    is the sample."""
    segments = _lines(tmp_path / "list.csv", GOOD + [f'vidbadseg01, {start}, {end}, "{URBAN}"'])
    code, out, err = _run(_sample(segments, tmp_path / "s.csv"), capsys)
    report = json.loads((tmp_path / "s.report.json").read_text())
    assert code == 0 and report["left_out"]["bad_segment"] == 1 and "vidbadseg01" not in _ytids(tmp_path / "s.csv")
    assert "refused data row 5: start" in out, out


def test_fetch_segment_never_turns_an_id_into_a_path(tmp_path):
    """Even called directly, the download of an id that is not <YTID>_<ms> writes nothing anywhere."""
    source = tmp_path / "src.wav"
    sf.write(source, np.zeros(8000, np.float32), 8000)
    audio = tmp_path / "deep" / "out" / "audio"
    downloader = Downloader(f"cp {shlex.quote(str(source))} {{out}}", "http://127.0.0.1/{ytid}", "wav", 10.0, 2**20)
    for ytid in ("../../evil", "a/b", "/tmp/x", ".."):
        with pytest.raises(ValueError, match="names no file"):
            fetch_segment({"YTID": ytid, "start_s": 0.0, "end_s": 1.0, "clip_id": f"{ytid}_0"}, downloader, str(audio))
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != source]
    assert written == [], written


def test_fetch_refuses_bad_rows_before_any_download_and_names_them(tmp_path, capsys, no_downloads):
    rows = [f'{y}, 0.000, 10.000, "{URBAN}"' for y in BAD_IDS] + ['vidbadseg01, -10.000, 0.000, "/t/dd00128"']
    segments = _lines(tmp_path / "list.csv", rows)
    code, out, err = _run(_fetch(segments, tmp_path / "out"), capsys)
    assert code == 0, err
    failures = pq.read_table(tmp_path / "out" / "failures").to_pylist()
    assert sorted(f["reason"] for f in failures) == ["bad_id"] * len(BAD_IDS) + ["bad_segment"]
    assert sorted(int(f["message"].split(":")[0].removeprefix("data row ")) for f in failures) == list(
        range(1, len(rows) + 1))  # each failure names its data row
    assert "refused data row 1: YTID '../../evil' is not a YouTube id" in out
    assert not (tmp_path / "out" / "audio").exists() and (tmp_path / "out" / "manifest.csv").exists()
    assert [p for p in tmp_path.rglob("*evil*")] == []
    # the next run skips what was refused (a recorded failure), still without Ray
    code, out, err = _run(_fetch(segments, tmp_path / "out"), capsys)
    assert code == 0 and f"{len(rows)} failed before, skipped" in out, out + err


def test_the_youtube_id_is_url_encoded_in_the_url(tmp_path):
    downloader = Downloader("get {url} {out}", "https://mirror.example/v?id={ytid}&x=1", "wav", 1.0, 1)
    line = command_line(downloader, {"YTID": "a b&c=d/e", "start_s": 0.0, "end_s": 1.0}, "/t", "/t/o.wav")
    assert "https://mirror.example/v?id=a%20b%26c%3Dd%2Fe&x=1" in line


# ----------------------------------------------------------------------------- nothing to do: no Ray (case 14)

@pytest.mark.parametrize("rows", [[], ["# only comments"], ["   ", ""]])
def test_fetch_of_a_list_with_no_segments_starts_no_ray(tmp_path, capsys, no_downloads, rows):
    segments = _lines(tmp_path / "list.csv", rows)
    code, out, err = _run(_fetch(segments, tmp_path / "out"), capsys)
    assert code == 0 and "0 fetched, 0 failed" in out and "(0 clips;" in out, out + err


def test_fetch_with_every_clip_already_there_starts_no_ray(tmp_path, capsys, no_downloads):
    segments = _lines(tmp_path / "list.csv", GOOD)
    audio = tmp_path / "out" / "audio"
    audio.mkdir(parents=True)
    for i in range(1, 5):
        sf.write(audio / f"vidgood000{i}_{10000 * i}.flac", np.zeros(8000, np.float32), 8000)
    code, out, err = _run(_fetch(segments, tmp_path / "out"), capsys)
    assert code == 0 and "4 fetched and 0 failed before, skipped" in out and "(4 clips;" in out, out + err


# ----------------------------------------------------------------------------- outputs (cases 5, 8)

def test_sample_never_replaces_its_input(tmp_path, capsys):
    segments = _lines(tmp_path / "same.csv", GOOD)
    before = segments.read_text()
    (tmp_path / "link.csv").symlink_to(segments)
    os.link(segments, tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    for output in (segments, tmp_path / "sub" / ".." / "same.csv", tmp_path / "link.csv", tmp_path / "hard.csv"):
        code, out, err = _run(_sample(segments, output), capsys)
        _one_line_error(code, err, "output:", "is the segments this job reads")
    evaluation = _lines(tmp_path / "eval.csv", GOOD[:1])
    code, out, err = _run(_sample(segments, evaluation, "--per-class", "1", "--exclude", str(evaluation)), capsys)
    _one_line_error(code, err, "output:", f"is the exclude this job reads ({evaluation})")
    # the report beside the output (<name>.report.json) must not replace an input either
    report_named = _lines(tmp_path / "x.report.json", GOOD)
    code, out, err = _run(_sample(report_named, tmp_path / "x.csv"), capsys)
    _one_line_error(code, err, "output (its report):")
    assert segments.read_text() == before and evaluation.read_text().count("vidgood") == 1
    assert report_named.read_text().count("vidgood") == 4


def test_fetch_never_replaces_its_list_with_its_manifest(tmp_path, capsys, no_downloads):
    (tmp_path / "out").mkdir()
    segments = _lines(tmp_path / "out" / "manifest.csv", GOOD)
    code, out, err = _run(_fetch(segments, tmp_path / "out"), capsys)
    _one_line_error(code, err, "output:", "holds the segments this job reads")
    assert segments.read_text().count("vidgood") == 4 and not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("where,words", [
    ("folder", "is a directory; give a file name"),
    ("below a file", "is a file, so"),
    ("/proc", "/proc"),
])
def test_sample_output_that_cannot_be_written_is_one_line(tmp_path, capsys, where, words):
    segments = _lines(tmp_path / "list.csv", GOOD)
    (tmp_path / "folder").mkdir()
    output = {"folder": tmp_path / "folder", "below a file": _lines(tmp_path / "other.csv", GOOD) / "s.csv",
              "/proc": Path("/proc/acoustic-env-sample-test.csv")}[where]
    code, out, err = _run(_sample(segments, output), capsys)
    _one_line_error(code, err, "output", words)
    assert list((tmp_path / "folder").iterdir()) == []


def test_fetch_output_that_is_a_file_is_one_line(tmp_path, capsys, no_downloads):
    segments = _lines(tmp_path / "list.csv", GOOD)
    code, out, err = _run(_fetch(segments, _lines(tmp_path / "other.csv", GOOD)), capsys)
    _one_line_error(code, err, "output:", "is a file; give a directory")


def test_sample_writes_through_a_temporary_and_a_rename(tmp_path, capsys, monkeypatch):
    """A write that fails at its last step leaves the previous sample whole, and no temporary behind."""
    segments = _lines(tmp_path / "list.csv", GOOD)
    output = tmp_path / "s.csv"
    output.write_text("the previous sample\n")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("acoustic_env.storage.os.replace", fail)
    code, out, err = _run(_sample(segments, output), capsys)
    _one_line_error(code, err, f"output: cannot write {output}: No space left on device")
    assert output.read_text() == "the previous sample\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "list.csv", "s.csv"]


# ----------------------------------------------------------------------------- damaged lists, absurd sizes (case 8)

@pytest.mark.parametrize("name,data,words", [
    ("empty", b"", "the segment list is empty (0 bytes)"),
    ("a line over 1 MB", (HEAD + GOOD[0] + "\n").encode() + b"x" * (3 << 20) + b"\n",
     "a line after data row 1 is longer than 1 MB"),
    ("not UTF-8", (HEAD + GOOD[0] + "\n").encode() + b'vid\xff\xfeaaaaaa, 0, 10, "/m/x"\n',
     "cannot read the segment list"),
])
@pytest.mark.parametrize("command", ["sample", "fetch"])
def test_a_damaged_segment_list_is_one_line_naming_it(tmp_path, capsys, no_downloads, command, name, data, words):
    segments = tmp_path / "list.csv"
    segments.write_bytes(data)
    argv = _sample(segments, tmp_path / "s.csv") if command == "sample" else _fetch(segments, tmp_path / "out")
    code, out, err = _run(argv, capsys)
    _one_line_error(code, err, str(segments), words)


@pytest.mark.parametrize("flags,words", [
    (["--per-class", "99999999999999999999"], "per_class: must be an integer in [1, 2e+09]"),
    (["--total", "99999999999999999999"], "total: must be an integer in [1, 2e+09]"),
    (["--total", str(2**63), "--balanced"], "total: must be an integer in [1, 2e+09]"),
    (["--targets", "urban=99999999999999999999"], "targets: urban: must be at most 2000000000"),
])
def test_sample_sizes_beyond_any_count_are_one_line(tmp_path, capsys, flags, words):
    segments = _lines(tmp_path / "list.csv", GOOD)
    code, out, err = _run(_sample(segments, tmp_path / "s.csv", *flags), capsys)
    _one_line_error(code, err, words)


@pytest.mark.parametrize("template,words", [
    ("http://127.0.0.1/{id}", "unknown placeholder(s) ['id']"),
    ("http://127.0.0.1/{}", "unknown placeholder(s) ['']"),
    ("http://127.0.0.1/{0}", "unknown placeholder(s) ['0']"),
    ("http://127.0.0.1/{ytid.__class__}", "unknown placeholder(s) ['ytid.__class__']"),
    ("http://127.0.0.1/{ytid:>999999999}", "takes no conversion or format"),
    ("http://127.0.0.1/{ytid!z}", "takes no conversion or format"),
    ("http://127.0.0.1/{ytid", "not a valid template"),
    ("http://127.0.0.1/video", "must hold {ytid}"),
])
def test_a_url_template_is_checked_before_ray_starts(tmp_path, capsys, no_downloads, template, words):
    segments = _lines(tmp_path / "list.csv", GOOD)
    code, out, err = _run(_fetch(segments, tmp_path / "out", "--url-template", template), capsys)
    _one_line_error(code, err, "url_template:", words)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- labels by name (case 9)

def test_sample_reads_display_names_as_the_task_does(tmp_path, capsys):
    from acoustic_env.vocabulary.tasks import load_task

    rows = ['vidspeech01, 0.000, 10.000, "Speech"', 'vidspeech02, 0.000, 10.000, "/m/09x0r"',
            'vidspeech03, 0.000, 10.000, "speech"', 'vidmusic001, 0.000, 10.000, "Music"',
            'vidboth0001, 0.000, 10.000, "Speech,/m/04rlf"', 'vidnone0001, 0.000, 10.000, "Not a class"']
    segments = _lines(tmp_path / "list.csv", rows)
    code, out, err = _run(_sample(segments, tmp_path / "s.csv", "--task", "speech_animal_music_vehicle",
                                  "--per-class", "5"), capsys)
    report = json.loads((tmp_path / "s.report.json").read_text())
    task = load_task("speech_animal_music_vehicle")
    assert [task.claims([r.split('"')[1].split(",")[0]])[0] for r in rows[:4]] == [[0], [0], [0], [2]]
    assert code == 0 and report["classes"]["speech"]["eligible"] == 3 and report["classes"]["music"]["eligible"] == 1
    assert report["left_out"]["ambiguous"] == 1 and report["left_out"]["unknown"] == 1


# ----------------------------------------------------------------------------- a download checked by streaming (case 11)

def _long_wav(path: Path, seconds: float, sr: int = 8000) -> Path:
    with sf.SoundFile(path, "w", sr, 1, "PCM_16") as f:
        block = np.random.default_rng(0).uniform(-0.3, 0.3, sr * 10).astype(np.float32)
        for _ in range(int(seconds // 10)):
            f.write(block)
    return path


@pytest.mark.parametrize("seconds,max_bytes,reason,words", [
    (2400.0, 2**30, "too_large", "its segment 10.0 s: not a cut of the segment"),  # 38 MB, a whole video
    (2400.0, 2**20, "too_large", "over max_bytes = 1048576"),
    (10.0, 2**30, None, None),
])
def test_fetch_checks_a_download_by_streaming_it(tmp_path, seconds, max_bytes, reason, words):
    source = _long_wav(tmp_path / "video.wav", seconds)
    downloader = Downloader(f"cp {shlex.quote(str(source))} {{out}}", "http://127.0.0.1/{ytid}", "wav", 60.0,
                            max_bytes)
    tracemalloc.start()
    try:
        row = fetch_segment({"YTID": "vidlong0001", "start_s": 0.0, "end_s": 10.0, "clip_id": "vidlong0001_0"},
                            downloader, str(tmp_path / "out" / "audio"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert row["reason"] == reason and (words is None or words in row["message"]), row
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MB held to check a {source.stat().st_size / 2**20:.0f} MB download"
    assert (tmp_path / "out" / "audio" / "vidlong0001_0.wav").exists() == (reason is None)
    if reason is None:
        assert row["duration_s"] == 10.0


def test_a_truncated_or_foreign_download_is_not_a_clip(tmp_path):
    good = _long_wav(tmp_path / "good.wav", 10.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "page.html"
    text.write_text("<html>sign in to confirm you are not a bot</html>" * 100)
    for path, words in ((cut, "truncated"), (text, "not_audio")):
        downloader = Downloader(f"cp {shlex.quote(str(path))} {{out}}", "http://127.0.0.1/{ytid}", "wav", 60.0, 2**30)
        row = fetch_segment({"YTID": "vidcut00001", "start_s": 0.0, "end_s": 10.0, "clip_id": "vidcut00001_0"},
                            downloader, str(tmp_path / "out"))
        assert row["reason"] == "no_audio" and words in row["message"], row
    assert not (tmp_path / "out").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
