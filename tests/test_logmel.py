"""The log-mel front end (``--features-logmel``): librosa's image, its torch twin, its column and its errors.

* the numpy image is librosa's ``melspectrogram`` + ``power_to_db`` on the settings ``LOGMEL`` states, to 1e-3
  dB (float32 rounding: in practice 1e-4), on the demo's clips and a real 10-s soundscape (``../shared``);
* the dB scale: a fixed reference (twice the amplitude is +6.02 dB everywhere above the floor), the floor
  80 dB under the clip's loudest cell, digital silence a constant image;
* the torch path (``features_batch`` on a torch device, as the device stage runs it) gives the numpy path's
  images to 1e-3 dB, on a batch of two lengths with an error row;
* an extract writes the ``logmel`` column with its settings in the schema metadata, decoding to librosa's image
  within the 8-bit step; a clip shorter than one window is a ``too_short`` error row;
* a mistyped switch is one line naming the field.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from conftest import mixed_clips

from acoustic_env.audio.decode import decode_clip
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audio.rows import CPU_PREFIX, row_schema
from acoustic_env.audio.stages import decode_batch, features_batch, image_columns, stages, vector_columns
from acoustic_env.cli import main
from acoustic_env.config import DecodeParams, ExtractConfig, from_dict
from acoustic_env.errors import ClipError
from acoustic_env.features.logmel import COLUMN, LOGMEL, frame_count, logmel
from acoustic_env.features.torch import logmel as torch_logmel
from acoustic_env.jobs.extract import extract
from acoustic_env.table import IMAGE_TYPE, decode_images, read_metadata

DEMO_AUDIO = Path(__file__).parent / "data" / "reference_demo" / "audio"
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, NO_CUDA])]


def librosa_image(x: np.ndarray) -> np.ndarray:
    """librosa's own log-mel of ``x`` on ``LOGMEL``'s settings.

    librosa centres the 400-sample window in each 512-sample frame; padding the clip by the difference on
    both sides puts frame t's window on samples [160 t, 160 t + 400), as ``logmel`` frames them.
    """
    pad = (LOGMEL.n_fft - LOGMEL.win_length) // 2
    power = librosa.feature.melspectrogram(
        y=np.pad(x, (pad, pad)), sr=LOGMEL.sample_rate, n_fft=LOGMEL.n_fft, hop_length=LOGMEL.hop_length,
        win_length=LOGMEL.win_length, window=LOGMEL.window, center=False, power=LOGMEL.power, n_mels=LOGMEL.bands,
        fmin=LOGMEL.fmin, fmax=LOGMEL.fmax)
    return librosa.power_to_db(power, ref=LOGMEL.db_ref, amin=LOGMEL.amin, top_db=LOGMEL.top_db)


def demo_clip(k: int = 0) -> np.ndarray:
    return decode_clip(str(sorted(DEMO_AUDIO.glob("*.flac"))[k]), DecodeParams()).audio


@pytest.fixture(params=["demo", "soundscape"])
def recording(request) -> np.ndarray:
    if request.param == "demo":
        return demo_clip()
    shared = request.getfixturevalue("shared_data")
    return decode_clip(str(shared / "maad_soundscapes" / "S4A03895_20190522_000000.wav"), DecodeParams()).audio


def test_the_image_is_librosas_log_mel_on_the_stated_settings(recording):
    image = logmel(recording)
    frames = 1 + (recording.size - 400) // 160
    assert image.shape == (64, frames) and image.dtype == np.float32
    assert abs(frames / (recording.size / 16000) - 100) < 1.5  # about 100 frames a second
    np.testing.assert_allclose(image, librosa_image(recording), rtol=0, atol=1e-3)


def test_a_frame_starts_every_10_ms_and_holds_400_real_samples():
    """The frame count the CNN's input width and the torch twin use: windows that fit whole, no padding."""
    assert [frame_count(n) for n in (400, 559, 560, 16000, 160000)] == [1, 1, 2, 98, 998]


def test_a_float64_clip_gives_the_float32_image_of_its_float32_samples():
    x = demo_clip()
    image = logmel(x.astype(np.float64))
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, logmel(x))


def test_the_columns_metadata_states_every_setting_and_each_bands_centre():
    """What a table's reader (a model checking that the images were computed its way, a user reading the
    schema) learns of the column: the settings by name, the layout, the frame count's formula, the 64 centres."""
    meta = LOGMEL.metadata()
    centres = meta.pop("mel_hz")
    assert meta == {"kind": "image", "shape": [64, "frames"], "layout": "row-major [bands, frames]",
                    "values": "dB, stored as uint8 codes: low + step * code per row (table.decode_images)",
                    "frame_count": "1 + (samples - 400) // 160", **dataclasses.asdict(LOGMEL),
                    "source": "librosa melspectrogram + power_to_db"}
    assert dataclasses.asdict(LOGMEL)["bands"] == 64 and meta["fmax"] == 8000.0
    # the centres of librosa's 64 Slaney triangles over 0-8000 Hz: its 66 edges without the two outer ones
    np.testing.assert_allclose(centres, librosa.mel_frequencies(66, fmin=0.0, fmax=8000.0)[1:-1])
    assert len(centres) == 64 and 0 < centres[0] < 100 and 7000 < centres[-1] < 8000


def test_the_reference_is_fixed_and_the_floor_80_db_below_the_loudest_cell():
    x = demo_clip()
    x[16000:32000] = 0.0  # a second of digital silence: far below the floor
    quiet, loud = logmel(x), logmel(2 * x)
    above = quiet > quiet.max() - 80 + 7  # cells clear of the floor at both levels
    assert above.mean() > 0.5
    np.testing.assert_allclose((loud - quiet)[above], 20 * math.log10(2), atol=1e-3)  # loudness kept
    assert quiet.min() == pytest.approx(quiet.max() - 80, abs=1e-4) and np.mean(quiet == quiet.min()) > 0.2
    silence = logmel(np.zeros(16000, np.float32))  # digital silence: one finite value, amin's
    assert np.ptp(silence) == 0 and silence[0, 0] == pytest.approx(-100.0, abs=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_a_clip_shorter_than_one_window_is_a_too_short_clip_error(device):
    for image in (lambda x: logmel(x), lambda x: torch_logmel.logmel(torch.as_tensor(x[None], device=device))):
        assert image(np.ones(400, np.float32)).shape[-1] == 1
        with pytest.raises(ClipError, match=r"24\.9 ms is shorter than one log-mel window \(400 samples, 25 ms\)") \
                as info:
            image(np.ones(399, np.float32))
        assert (info.value.stage, info.value.error_type) == ("features", "too_short")


@pytest.mark.parametrize("device", DEVICES)
def test_the_device_stage_gives_the_numpy_images(tmp_path, device):
    """``features_batch`` on a torch device (the device stage's path) against the CPU actors' numpy path, on one
    batch of clips of two lengths and a file that is not audio: the images to 1e-3 dB before the 8-bit column,
    the column within one step after it, the error row without an image, the stage timed."""
    cfg = from_dict(ExtractConfig, {"manifest": str(mixed_clips(tmp_path / "clips")), "output": str(tmp_path / "o"),
                                    "embedders": [],
                                    "features": {"logmel": True, "signals": "raw", "spectral": False}})
    table = read_manifest(cfg.manifest).table
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg), (), image_columns(cfg))
    batch = decode_batch(table, cfg, schema)
    clips = [np.asarray(batch["audio"][i].values, np.float32) for i in range(3)]
    gap, quiet = clips[0].copy(), 1e-3 * clips[2]  # each clip its own floor: one reaches it, one is 60 dB down
    gap[4000:12000] = 0.0
    on_device = torch_logmel.logmel(torch.as_tensor(np.stack([gap, quiet]), device=device)).cpu().numpy()
    for got, clip in zip(on_device, (gap, quiet)):
        np.testing.assert_allclose(got, logmel(clip), rtol=0, atol=1e-3)
    done, numpy_done = features_batch(batch, cfg, schema, device=device), features_batch(batch, cfg, schema)
    assert done.schema == schema and done["error_type"].to_pylist() == [None, None, None, "not_audio"]
    images, expected = decode_images(done[COLUMN]), decode_images(numpy_done[COLUMN])
    assert images[3] is None and expected[3] is None
    steps = [row["step"] for row in numpy_done[COLUMN].to_pylist()[:3]]
    for got, want, clip, step in zip(images, expected, clips, steps):
        assert got.shape == want.shape == (64, 1 + (clip.size - 400) // 160)
        assert np.abs(got - want).max() <= step + 1e-3
    assert (done[CPU_PREFIX + "logmel"].to_numpy()[:3] > 0).all()


def test_extract_writes_the_column_with_its_settings_and_a_too_short_error(tmp_path):
    """In-process extract of two demo clips and a 20-ms one (decode's minimum lowered so that it reaches the
    features): the column and its metadata, each image within half a step of librosa's, one error row."""
    sf.write(tmp_path / "blip.wav", demo_clip()[:320], 16000, subtype="FLOAT")
    files = [*sorted(DEMO_AUDIO.glob("*.flac"))[:2], tmp_path / "blip.wav"]
    with open(tmp_path / "clips.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("clip_id", "uri", "labels"), *((f.stem, str(f), "") for f in files)])
    result = extract(from_dict(ExtractConfig, {
        "manifest": str(tmp_path / "clips.csv"), "output": str(tmp_path / "out"), "progress": False,
        "decode": {"min_duration_s": 0.01},
        "features": {"logmel": True, "signals": ["raw"], "spectral": False, "mps_window_s": 0.04}}))
    assert result.counts["ok"] == 2 and result.record["cpu_s"]["logmel"] > 0
    errors = pq.read_table(tmp_path / "out" / "errors").to_pylist()
    assert [(e["clip_id"], e["stage"], e["error_type"]) for e in errors] == [("blip", "features", "too_short")]
    assert "shorter than one log-mel window" in errors[0]["message"]
    [part] = (tmp_path / "out" / "features").glob("*.parquet")
    table = pq.read_table(part)
    assert table.schema.field(COLUMN).type == IMAGE_TYPE
    assert read_metadata(table.schema)["columns"][COLUMN] == LOGMEL.metadata()
    steps = [row["step"] for row in table[COLUMN].to_pylist()]
    for clip_id, image, step in zip(table["clip_id"].to_pylist(), decode_images(table[COLUMN]), steps):
        reference = librosa_image(decode_clip(str(DEMO_AUDIO / f"{clip_id}.flac"), DecodeParams()).audio)
        assert image.shape == reference.shape and np.abs(image - reference).max() <= step / 2 + 1e-3, clip_id


@pytest.mark.parametrize("text, message", [
    ("features: {logmel: often}", "features.logmel: must be true or false, got 'often'"),
    ("features: {log_mel: true}", "features.log_mel: unknown field, did you mean features.logmel? (known: "),
])
def test_a_mistyped_switch_is_one_line_naming_the_field(tmp_path, capsys, text, message):
    (tmp_path / "extract.yaml").write_text(f"manifest: m\noutput: o\n{text}\n")
    assert main(["extract", "--config", str(tmp_path / "extract.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and re.search(r"\blogmel\b", err)


def test_an_mfcc_images_metadata_names_its_coefficients_values_and_source():
    """The column's metadata says what its rows are: coefficients of the dB bands for an MFCC image (the rows a
    reader of the table, or the model's check, takes them for), bands in dB for a log-mel one."""
    from acoustic_env.features.logmel import LogMelSettings

    mfcc = LogMelSettings(bands=40, image="mfcc", mfcc=13).metadata()
    assert mfcc["shape"] == [13, "frames"] and mfcc["layout"] == "row-major [coefficients, frames]"
    assert mfcc["values"].startswith("MFCC of the dB bands, stored as uint8 codes: ")
    assert mfcc["source"] == "librosa melspectrogram + power_to_db + feature.mfcc (dct_type=2, norm='ortho')"
    assert (mfcc["image"], mfcc["mfcc"], mfcc["bands"], len(mfcc["mel_hz"])) == ("mfcc", 13, 40, 40)
    bands = LOGMEL.metadata()
    assert bands["shape"] == [64, "frames"] and bands["layout"] == "row-major [bands, frames]"
    assert bands["values"].startswith("dB, stored as uint8 codes: ")
    assert bands["source"] == "librosa melspectrogram + power_to_db"
    # read back as the settings a model compares with its own
    from acoustic_env.features.logmel import column_features

    assert column_features(mfcc, 64) == {"image": "mfcc", "image_bands": 40, "image_mfcc": 13}
    assert column_features(bands, 32) == {"image": "logmel", "image_bands": 64}


@pytest.mark.parametrize("meta, bands, expected", [
    (None, 64, {"image": "logmel", "image_bands": 64}),  # a column without metadata: a log-mel of the model's bands
    ({}, 32, {"image": "logmel", "image_bands": 32}),
    ({"image": "logmel", "bands": 48}, 64, {"image": "logmel", "image_bands": 48}),  # the column's own bands win
    ({"bands": 40}, 64, {"image": "logmel", "image_bands": 40}),  # before the image kinds: a log-mel
    ({"image": "mfcc", "bands": 40, "mfcc": 13}, 64, {"image": "mfcc", "image_bands": 40, "image_mfcc": 13}),
])
def test_a_columns_metadata_gives_the_image_settings_it_was_computed_with(meta, bands, expected):
    """``column_features``: what a model compares with the image settings it was trained on, from the column's
    metadata (``LogMelSettings.metadata``), so that an MFCC table is never scored as a log-mel one."""
    from acoustic_env.features.logmel import column_features

    got = column_features(meta, bands)
    assert got == expected and all(type(v) is type(expected[k]) for k, v in got.items())
