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


def test_per_bin_indices_at_the_edges():
    """Cases the recordings never hold: a bin with all its energy in one frame (zeros elsewhere: entropy 0, not
    NaN), a silent bin beside sound (entropy NaN: no distribution), a silent spectrogram (entropy 1, as
    scikit-maad's), one frame (entropy 0) and two equal frames (entropy 1)."""
    sxx = np.array([[0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    ent = per_bin_indices(sxx, 0.02, 3.0)["ENT"]
    assert ent[0] == pytest.approx(0.0, abs=1e-9) and np.isnan(ent[1]) and ent[2] == pytest.approx(1.0)
    np.testing.assert_array_equal(per_bin_indices(np.zeros((3, 4)), 0.02, 3.0)["ENT"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(per_bin_indices(np.ones((2, 1)), 0.02, 3.0)["ENT"], [0.0, 0.0])
    np.testing.assert_allclose(per_bin_indices(np.ones((2, 2)), 0.02, 3.0)["ENT"], [1.0, 1.0])


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
    # the next night's file lands (part 6, the nightly run): scored alone, the histories gain its night
    sf.write(d / "S1_20190523_000000.wav", np.concatenate([_sound(True, seed=k) for k in range(3)]), 16000,
             subtype="PCM_16")
    assert main(["soundscape", str(d), "--output", str(out), "--model", str(world["model"]), "--window-s", "2",
                 "--segment-s", "4", "--event-high", "0.6", "--event-low", "0.45"]) == 0
    assert "1 span(s) scored now, 3 from an earlier run" in capsys.readouterr().out
    assert (out / "histories" / "effort.csv").read_text() == "site,2019-05-22T00:00,2019-05-23T00:00\nS1,0.3,0.1\n"
    assert (out / "page" / "site0-2019-05-23-false-colour.png").is_file()


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
    assert len(images) == 1 + 1 + 6 + 2  # a day's false colour, the bands through the day, 6 indices, 2 shares
    assert "acoustic events per second (EVN) in each 1-kHz band" in browser.find_element("css selector",
                                                                                       "figcaption").text
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


def test_the_bands_through_the_day_show_the_dawn_chorus_the_dusk_and_the_night_on_the_real_recordings(forest):
    """The page's bands-through-the-day plot on the 96 forest recordings (events per second per 1-kHz band, by time
    of day): the dawn chorus lights 2-8 kHz from 05:00 to 09:00 and the dusk chorus 1-4 kHz from 19:30 to 21:30, each
    over ten times the night's (22:00-04:00) same bands; at night no band from 1 to 11 kHz rises off the floor
    (under 0.05 events/s: these recordings hold no night insect chorus below their 11-kHz top, docs/soundscapes.md)."""
    from datetime import timezone

    import pyarrow as pa

    from acoustic_env.audio.timeline import place
    from acoustic_env.config import FeatureParams
    from acoustic_env.jobs.soundscape.segments import SegmentScorer, SegmentSpan
    from acoustic_env.pages.soundscape import band_grid, local_rows, site_channels, site_step

    placed = place([{"clip_id": f.stem, "uri": str(f)} for f in sorted(forest.glob("*.wav"))])
    score = SegmentScorer(60.0, FeatureParams())
    parts = []
    for i, p in enumerate(placed):
        info = sf.info(p.uri)
        parts.append(score(SegmentSpan(i, p.clip_id, p.uri, 0, 1, info.frames, info.samplerate, p.site,
                                       p.start.timestamp())))
    usable, _ = site_channels(local_rows(pa.concat_tables(parts), timezone.utc))
    step = site_step(np.array([r["t"] for r in usable]))
    grid, top = band_grid(usable, step)
    assert step == 900 and grid.shape == (11, 96) and top == 11000 and np.isfinite(grid).all()
    hour = np.arange(96) / 4
    night, dawn, dusk = (hour >= 22) | (hour < 4), (hour >= 5) & (hour < 9), (hour >= 19.5) & (hour < 21.5)
    assert grid[2:8][:, dawn].mean() > 10 * grid[2:8][:, night].mean()
    assert grid[1:4][:, dusk].mean() > 10 * grid[1:4][:, night].mean()
    assert grid[1:][:, night].mean(axis=1).max() < 0.05


def test_audiomoth_day_folders_on_object_storage_placed_in_time_then_a_new_night_alone(forest, tmp_path, s3_endpoint,
                                                                                       capsys):
    """A deployment held in a real S3 API on loopback (moto server mode): AudioMoth files in a folder per day
    (``ridge/20190522/20190522_233000.WAV``), read from S3, placed on the site ``ridge`` (the folder above the day's)
    at the times of their names; the table and page written to S3. Then the next night's folder lands: a run into the
    same output scores it alone and the table and page hold both nights."""
    import io

    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    fs.mkdir("moth")

    def night(day: str, stamps: list[str]) -> None:
        for stamp, f in zip(stamps, ("000000", "001500", "003000")):
            fs.put(str(forest / f"S4A03895_20190522_{f}.wav"), f"moth/deploy/ridge/{day}/{day}_{stamp}.WAV")

    night("20190522", ["230000", "233000"])
    night("20190523", ["000000"])
    args = ["soundscape", "s3://moth/deploy/", "--output", "s3://moth/out", "--timezone", "Europe/Paris"]
    assert main(args) == 0
    assert "soundscape: 3 file(s) on 1 site(s), 3 segment(s) (0 with an error, 0 file(s) unreadable); 3 span(s) " \
           "scored now, 0 from an earlier run" in capsys.readouterr().out

    def table():
        fs.invalidate_cache()
        return pq.read_table(io.BytesIO(fs.cat_file("moth/out/soundscape.parquet")))

    t = table()
    assert set(t["site"].to_pylist()) == {"ridge"}
    assert [s.isoformat() for s in t["start_time"].to_pylist()] == [  # Paris in May: UTC+2
        "2019-05-22T21:00:00+00:00", "2019-05-22T21:30:00+00:00", "2019-05-22T22:00:00+00:00"]
    night("20190523", ["230000", "231500"])
    assert main(args) == 0
    assert "2 span(s) scored now, 3 from an earlier run" in capsys.readouterr().out
    assert table().num_rows == 5
    pngs = {p.rsplit("/", 1)[-1] for p in fs.glob("moth/out/page/*.png")}
    assert {"site0-2019-05-22-false-colour.png", "site0-2019-05-23-false-colour.png", "site0-bands.png"} <= pngs


def test_the_bands_through_the_day_light_an_insects_band_at_night(tmp_path):
    """Constructed truth: a stridulation of 6-kHz pulses (90 ms every 300 ms, a cricket's rhythm) in the night's
    recordings, noise alone by day; the bands plot lights the 6-7 kHz band at night, over ten times the day's, and
    no other band."""
    from datetime import timezone

    import pyarrow as pa

    from acoustic_env.audio.timeline import place
    from acoustic_env.config import FeatureParams
    from acoustic_env.jobs.soundscape.job import plan
    from acoustic_env.jobs.soundscape.segments import SegmentScorer
    from acoustic_env.pages.soundscape import band_grid, local_rows, site_channels

    sr, rng = 22050, np.random.default_rng(0)
    t = np.arange(10 * sr) / sr
    song = np.sin(2 * np.pi * 6500 * t) * ((t % 0.3) < 0.09)
    for stamp in ("000000", "030000", "120000", "150000"):
        night = stamp < "060000"
        sf.write(tmp_path / f"S1_20190522_{stamp}.wav", 0.01 * rng.standard_normal(t.size) + 0.2 * night * song, sr)
    placed = place([{"clip_id": f.stem, "uri": str(f)} for f in sorted(tmp_path.glob("*.wav"))])
    score = SegmentScorer(60.0, FeatureParams())
    _, spans = plan(placed, 60.0, 1)
    usable, _ = site_channels(local_rows(pa.concat_tables([score(s) for s in spans]), timezone.utc))
    grid, _ = band_grid(usable, 3 * 3600.0)  # a column per 3 hours: 00:00, 03:00 at night; 12:00, 15:00 by day
    night, day = grid[:, [0, 1]].mean(axis=1), grid[:, [4, 5]].mean(axis=1)
    assert night[6] > 10 * day[6]  # the pulses fill a few of the band's 46 bins: about 0.4 events/s on average
    assert np.argmax(night - day) == 6 and np.sort(night - day)[-2] < 0.1 * (night - day)[6]
