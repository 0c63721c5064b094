"""``acoustic-env soundscape`` on real recordings and on constructed deployments: the per-bin indices against
scikit-maad, the table keyed by site, file and start time, resume, bad input in one line, events across files with
a model, and the page in headless Chromium."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import test_windows
from worlds import console_errors

from acoustic_env.cli import main
from acoustic_env.features.fast.indices import hann_psd
from acoustic_env.features.spectral_bins import per_bin_indices

#: test_windows' model world (a small model of urban and natural sounds, built once for this module) and its sounds.
world, _sound = test_windows.world, test_windows._sound

#: scikit-maad's per-bin columns for ours (``all_spectral_alpha_indices``' second frame).
MAAD_COLUMNS = {"ACI": "ACI_per_bin", "ENT": "Ht_per_bin", "EVN": "EVNspCount_per_bin", "BGN": "BGNf_per_bin",
                "ACT": "ACTspFract_per_bin"}


@pytest.fixture(scope="module")
def forest(shared_data):
    return shared_data / "maad_soundscapes"


@pytest.mark.parametrize("name", ["S4A03895_20190522_000000", "S4A03895_20190522_061500",
                                  "S4A03895_20190522_214500"])
def test_per_bin_indices_match_scikit_maad_on_the_real_recordings(forest, name):
    """Night, dawn chorus and evening: every bin within 1e-9 relative (BGN in dB: 1e-9 dB)."""
    from maad import features, sound

    s, fs = sound.load(str(forest / f"{name}.wav"), channel="left", detrend=True)
    sxx, tn, fn, _ = sound.spectrogram(s, fs, window="hann", nperseg=1024, noverlap=512, mode="psd")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        _, per_bin = features.all_spectral_alpha_indices(sxx, tn, fn, flim_low=[0, 1500], flim_mid=[1500, 8000],
                                                         flim_hi=[8000, 11000], R_compatible="soundecology")
    x, sr = sf.read(forest / f"{name}.wav", dtype="float64")
    ours_sxx, ours_tn, _ = hann_psd(x, sr, 1024, 512)
    ours = per_bin_indices(ours_sxx, ours_tn[1] - ours_tn[0], 3.0)
    for name_, column in MAAD_COLUMNS.items():
        ref = np.asarray(per_bin[column].iloc[0], dtype=np.float64)
        atol = 1e-9 if name_ == "BGN" else 0.0
        np.testing.assert_allclose(ours[name_], ref, rtol=1e-9, atol=atol, err_msg=name_)


@pytest.mark.slow
def test_the_real_deployment_end_to_end_then_a_new_night_alone(forest, tmp_path, capsys):
    """The 96 forest recordings: one site, a segment per file every 15 minutes, the dawn chorus in the indices;
    run again, nothing is scored; a new night's file added to the folder, only it is."""
    deployment, out = tmp_path / "deployment", tmp_path / "out"
    deployment.mkdir()
    for f in sorted(forest.glob("*.wav")):
        (deployment / f.name).symlink_to(f)
    assert main(["soundscape", str(deployment), "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "soundscape: 96 file(s) on 1 site(s), 96 segment(s) (0 with an error, 0 file(s) unreadable); 96 span(s)" \
           " scored now, 0 from an earlier run" in said
    t = pq.read_table(out / "soundscape.parquet")
    assert t.num_rows == 96 and set(t["site"].to_pylist()) == {"S4A03895"}
    starts = [s.timestamp() for s in t["start_time"].to_pylist()]
    assert np.all(np.diff(starts) == 900) and t["duration_s"].to_pylist() == [10.0] * 96
    hour = np.array([s.hour for s in t["start_time"].to_pylist()])
    events = np.array(t["EVNspCount"].to_pylist())
    assert events[(hour >= 5) & (hour < 9)].mean() > 2 * events[hour < 4].mean()  # the dawn chorus
    assert len(t["bins_ACI"][0]) == 512 and t["bin_hz"][0].as_py() == 22000 / 1024
    page = (out / "page" / "index.html").read_text()
    assert "site0-2019-05-22-false-colour.png" in page and (out / "page" / "site0-diel-ACI.png").stat().st_size
    assert main(["soundscape", str(deployment), "--output", str(out)]) == 0
    assert "0 span(s) scored now, 96 from an earlier run" in capsys.readouterr().out
    shutil.copy(forest / "S4A03895_20190522_000000.wav", deployment / "S4A03895_20190523_000000.wav")
    assert main(["soundscape", str(deployment), "--output", str(out)]) == 0
    assert "1 span(s) scored now, 96 from an earlier run" in capsys.readouterr().out
    assert pq.read_table(out / "soundscape.parquet").num_rows == 97
    assert (out / "page" / "site0-2019-05-23-false-colour.png").is_file()


def test_bad_input_is_one_line_and_loses_nothing(forest, tmp_path, capsys):
    """A corrupt file is an error row, an overlap and a clock jump are reported, a site holding markup is escaped;
    a file whose time cannot be read stops the run in one line naming it."""
    d = tmp_path / "in"
    d.mkdir()
    names = ["S4A03895_20190522_000000", "S4A03895_20190522_001500", "S4A03895_20190522_003000"]
    for n in names:
        (d / f"{n}.wav").symlink_to(forest / f"{n}.wav")
    (d / "S4A03895_20190522_003005.wav").symlink_to(forest / "S4A03895_20190522_004500.wav")  # overlaps
    (d / "S4A03895_20190522_005213.wav").write_bytes(b"RIFF not really a wave file")
    listed = tmp_path / "list.csv"
    listed.write_text("uri,site,start_time\n" + f"{d / 'S4A03895_20190522_000000.wav'},<b>ridge</b>,"
                      "2019-05-22T06:00:00+02:00\n")
    out = tmp_path / "out"
    assert main(["soundscape", str(d), "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "overlap: S4A03895: S4A03895_20190522_003005 starts 2019-05-22T00:30:05+00:00, 5.0 s before " \
           "S4A03895_20190522_003000 ends; both are kept, not merged" in said
    assert "clock jump: S4A03895: S4A03895_20190522_005213 starts 0:22:08 after" in said
    t = pq.read_table(out / "soundscape.parquet").to_pylist()
    bad = [r for r in t if r["clip_id"] == "S4A03895_20190522_005213"]
    assert len(t) == 5 and len(bad) == 1 and bad[0]["error"].startswith("decode/not_audio: libsndfile cannot read")
    assert main(["soundscape", str(listed), "--output", str(tmp_path / "marked")]) == 0
    capsys.readouterr()
    page = (tmp_path / "marked" / "page" / "index.html").read_text()
    assert "&lt;b&gt;ridge&lt;/b&gt;" in page and "<b>ridge</b>" not in page
    (d / "field notes.wav").write_bytes(b"")
    assert main(["soundscape", str(d), "--output", str(tmp_path / "stopped")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("field notes.wav: no start time in its name; tried SITE_YYYYMMDD_HHMMSS (song_meter), "
                        "YYYYMMDD_HHMMSS (audiomoth); or give a clip list with site and start_time columns")
    assert "\n" not in err and not (tmp_path / "stopped" / "soundscape.parquet").exists()


def _deployment(world, root, starts):
    """Song Meter files of the model's sounds: (name, kinds of 2-s stretches) each."""
    root.mkdir()
    for stamp, kinds in starts:
        x = np.concatenate([_sound(k, seed=i) for i, k in enumerate(kinds)])
        sf.write(root / f"S1_20190522_{stamp}.wav", x, 16000, subtype="PCM_16")
    return root


def test_with_a_model_events_cross_file_boundaries_and_histories_count_effort(world, tmp_path, capsys):
    d = _deployment(world, tmp_path / "in", [("000000", [False, True, True]), ("000006", [True, False, False]),
                                             ("003000", [False, False, True])])
    out = tmp_path / "out"
    # the small model's probabilities of natural stretches are 0.50 to 0.84, of urban ones below 0.40
    assert main(["soundscape", str(d), "--output", str(out), "--model", str(world["model"]), "--window-s", "2",
                 "--segment-s", "4", "--event-high", "0.6", "--event-low", "0.45"]) == 0
    said = capsys.readouterr().out
    assert "event(s)" in said
    t = pq.read_table(out / "soundscape.parquet").to_pylist()
    assert [r["windows"] for r in t] == [2, 1, 2, 1, 2, 1]
    assert all(r["share_natural"] is not None for r in t)
    lines = (out / "events" / "events.csv").read_text().splitlines()
    assert lines[0].startswith("# hysteresis: starts at p >= 0.6, extends while p >= 0.45")
    natural = [line.split(",") for line in lines[2:] if line.split(",")[1] == "natural"]
    assert [(r[2], r[3], r[8], r[9]) for r in natural] == [
        ("2019-05-22T00:00:02+00:00", "2019-05-22T00:00:08+00:00", "S1_20190522_000000", "S1_20190522_000006"),
        ("2019-05-22T00:30:04+00:00", "2019-05-22T00:30:06+00:00", "S1_20190522_003000", "S1_20190522_003000")]
    assert (out / "histories" / "detections_natural.csv").read_text() == "site,2019-05-22T00:00\nS1,1\n"
    assert (out / "histories" / "effort.csv").read_text() == "site,2019-05-22T00:00\nS1,0.3\n"
    raven = (out / "events" / "S1.selections.txt").read_text().splitlines()
    assert raven[1].split("\t")[3:5] == ["2.0000", "8.0000"]


CHROMIUM_FLAGS = ("--allow-file-access-from-files",)


def test_the_page_in_headless_chromium(world, tmp_path, browser, capsys):
    """Images load, the gap between recordings is drawn grey, no console error."""
    d = _deployment(world, tmp_path / "in", [("000000", [True] * 3), ("120000", [False] * 3)])
    out = tmp_path / "out"
    assert main(["soundscape", str(d), "--output", str(out), "--model", str(world["model"]), "--window-s", "2",
                 "--segment-s", "2"]) == 0
    capsys.readouterr()
    browser.get((out / "page" / "index.html").as_uri())
    images = browser.find_elements("css selector", "img")
    assert len(images) == 1 + 6 + 2
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
               for i in images)
    assert console_errors(browser) == []
    png = plt_image(out / "page" / "site0-2019-05-22-false-colour.png")
    grey = np.all(np.abs(png[..., :3] - 0.82) < 0.01, axis=-1)
    assert grey.mean() > 0.5  # two 2-s steps of a day of them: the day is almost all gap


def plt_image(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


@pytest.mark.slow
def test_the_pages_commands_run_as_written(forest, world, tmp_path, monkeypatch, capsys):
    """docs/soundscapes.md's commands, as written, on four forest recordings, the small model and a clip list."""
    import shlex

    import documentation

    folder = tmp_path / "forest"
    folder.mkdir()
    for f in sorted(forest.glob("*.wav"))[20:24]:
        (folder / f.name).symlink_to(f)
    (tmp_path / "train-out").mkdir()
    (tmp_path / "train-out" / "model").symlink_to(world["model"])
    (tmp_path / "deployment.csv").write_text("uri,site,start_time\n" + "".join(
        f"{f},ridge,2019-05-22T{5 + k:02d}:00:00\n" for k, f in enumerate(sorted(folder.iterdir()))))
    monkeypatch.chdir(tmp_path)
    commands = [c for section, c in documentation.commands() if section == "Soundscapes over time"]
    assert len(commands) == 3
    for command in commands:
        argv = shlex.split(command.replace("/data/recorders/forest", str(folder)))
        assert argv[0] == "acoustic-env" and main(argv[1:]) == 0, command
    said = capsys.readouterr().out
    assert "soundscape: 4 file(s) on 1 site(s), 4 segment(s)" in said and "event(s)" in said
    assert set(pq.read_table(tmp_path / "soundscape-out" / "soundscape.parquet")["site"].to_pylist()) == {"ridge"}


@pytest.mark.slow
def test_on_ray_the_table_is_the_in_process_one(forest, ray_session, tmp_path, capsys):
    """Six recordings in spans of one segment scored by Ray's actors (--in-process-max 0), against this process."""
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(forest.glob("*.wav"))[24:30]:
        (folder / f.name).symlink_to(f)
    assert main(["soundscape", str(folder), "--output", str(tmp_path / "here")]) == 0
    assert main(["soundscape", str(folder), "--output", str(tmp_path / "ray"), "--in-process-max", "0"]) == 0
    assert "on Ray: 6 segment(s) in 6 span(s)" in capsys.readouterr().out
    here, ray = (pq.read_table(tmp_path / out / "soundscape.parquet") for out in ("here", "ray"))
    assert ray.equals(here)
