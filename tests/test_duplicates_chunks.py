"""Near-duplicates chunk by chunk: a copy shifted by 2 s and a 3-s excerpt among distinct clips, as audio files.

The clips are generated soundscapes written as FLAC; their per-clip vectors and log-mel
images are the extract's own (``audio.featurize``, no Ray), stored in a feature table
as extract writes it. The chunk mode must find exactly the three pairs of the planted
set, from the table's images and from the audio alike, and the per-clip mode misses the
excerpt. On the real soundscapes of ``../shared/data/maad_soundscapes`` (night-time
insects 15 minutes apart: distinct recordings that sound alike) it finds only the planted
copies.
"""

from __future__ import annotations

import dataclasses
from markupsafe import escape  # the escaping of the report's templates (Jinja2)
import io
import json
from pathlib import Path

import librosa
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import soxr
from scipy import fft as sfft

from acoustic_env.audio.decode import decode_bytes
from acoustic_env.audio.featurize import featurize
from acoustic_env.cli import main
from acoustic_env.config import DecodeParams, FeatureParams
from acoustic_env.demo.synth import make_clip
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.features.logmel import LOGMEL, logmel
from acoustic_env.jobs.chunk_reader import read_chunks
from acoustic_env.learn.duplicate_chunks import (
    CHUNK_PAIR_SCHEMA,
    chunk_pairs,
    chunk_pairs_table,
    chunk_summaries,
    merge_chunk_duplicate_groups,
    mfcc,
)
from acoustic_env.learn.duplicates import merge_summary
from acoustic_env.table import encode_images, image_rows, metadata_json, read_features, read_metadata

SR = 22050
N_DISTINCT = 12
PLANTED = {("excerpt", "orig"), ("excerpt", "shifted"), ("orig", "shifted")}
VECTORS = ("indices_raw", "spectral_raw")  # the per-clip columns compared
MAAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "maad_soundscapes"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, str]:
    """Feature tables of the same 15 clips: with the log-mel images (``logmel``), without, and without where one
    clip's file has gone."""
    root = tmp_path_factory.mktemp("chunks")
    source = make_clip(np.random.default_rng([31, 0]), "natural", 12.0, SR, 1)[0][:, 0]
    clips = {"orig": source[:10 * SR], "shifted": source[2 * SR:12 * SR],  # the same recording cut 2 s later
             "excerpt": source[int(4.35 * SR):int(7.35 * SR)]}  # 3 s of it, off the chunks' 0.1-s grid
    for i in range(N_DISTINCT):
        clips[f"other{i:02d}"] = make_clip(np.random.default_rng([31, i + 1]), ("urban", "natural")[i % 2], 10.0, SR,
                                           1)[0][:, 0]
    rows = []
    for name, audio in clips.items():
        sf.write(root / f"{name}.flac", audio, SR, subtype="PCM_16")
        rows.append({"clip_id": name, "uri": str(root / f"{name}.flac"), "start_s": 0.0, "end_s": len(audio) / SR})
    dims = {c: synthetic_features(1, signals=("raw",)).table.schema.field(c).type.list_size for c in VECTORS}
    found = featurize(rows, {**dims, "logmel": 0}, features=FeatureParams(signals=("raw",)))
    assert not any(found.errors), found.errors
    table = synthetic_features(len(rows), signals=("raw",), rows_per_group=None, logmel_s=1.0).table
    table = table.drop_columns([c for c in table.column_names if c.startswith("mps_")])
    columns = {"clip_id": pa.array([r["clip_id"] for r in rows]), "uri": pa.array([r["uri"] for r in rows]),
               "end_s": pa.array([r["end_s"] for r in rows]), "duration_s": pa.array([r["end_s"] for r in rows]),
               "logmel": encode_images(list(found.vectors["logmel"])),
               **{c: pa.FixedSizeListArray.from_arrays(pa.array(found.vectors[c].ravel()), d) for c, d in dims.items()}}
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i).with_type(values.type), values)
    meta = read_metadata(table.schema)
    meta["columns"]["logmel"] = LOGMEL.metadata()
    table = table.replace_schema_metadata(metadata_json(meta))
    audio = table.drop_columns(["logmel"])
    uris = [str(root / "gone" / "shifted.flac") if r["clip_id"] == "shifted" else r["uri"] for r in rows]
    moved = audio.set_column(audio.schema.get_field_index("uri"), "uri", pa.array(uris))
    return {"images": write_features(table, str(root / "images")), "audio": write_features(audio, str(root / "audio")),
            "moved": write_features(moved, str(root / "moved"))}  # one clip's file gone since the extract


def _pairs(path: Path) -> dict[tuple[str, str], dict]:
    return {(r["clip_a"], r["clip_b"]): r for r in pq.read_table(path).to_pylist()}


def test_mfcc_is_librosas_of_a_log_mel_image():
    """The chunks' MFCCs: librosa.feature.mfcc of the dB mel image (DCT-II, orthonormal), on a real clip's image."""
    audio = make_clip(np.random.default_rng(3), "urban", 2.0, 16000, 1)[0][:, 0]
    image = logmel(audio)
    np.testing.assert_allclose(mfcc(image), librosa.feature.mfcc(S=image, n_mfcc=20), rtol=1e-4, atol=1e-3)


def test_chunks_are_one_second_of_frames_every_tenth_of_a_second():
    """An image whose MFCC 1 rises one unit a frame: chunk k covers frames 10k..10k+99 (mean 10k + 49.5), the
    deviation MFCC 1's over 100 frames; 10 s (998 frames) make 90 chunks; a clip under 1 s is one chunk."""
    coefs = np.zeros((64, 998), np.float32)
    coefs[1] = np.arange(998)
    image = sfft.idct(coefs, type=2, norm="ortho", axis=0)  # mfcc(image) is coefs
    chunks = chunk_summaries(image)
    assert chunks.shape == (90, 38)
    np.testing.assert_allclose(chunks[:, 0], 10 * np.arange(90) + 49.5, atol=1e-2)
    np.testing.assert_allclose(chunks[:, 19], np.arange(100).std(), atol=1e-2)
    np.testing.assert_allclose(chunks[:, 1:19], 0, atol=1e-4)  # MFCC 0, the level, is not summarised; 2.. are 0
    assert chunk_summaries(image[:, :60]).shape == (1, 38)
    alike = chunk_pairs([np.ones((12, 38), np.float32)] * 3)  # no dimension varies (digital silence): not a crash
    assert list(zip(*(a.tolist() for a in alike))) == [(0, 1, 0.0, 1.0), (0, 2, 0.0, 1.0), (1, 2, 0.0, 1.0)]


def test_a_clip_with_one_chunk_to_look_up_is_never_paired(tables):
    """An excerpt of 1.2 s (one chunk looked up) matches its original in that chunk yet is not paired: one chunk is
    too little evidence. From 1.6 s (two chunks) it is."""
    features = read_features(tables["images"])
    images = dict(zip(features.ids, image_rows(features, "logmel")))
    for frames, pairs in ((120, []), (160, [(0, 2)])):  # the clips: orig, another, the excerpt of orig
        excerpt = images["orig"][:, 300:300 + frames]
        i, j, _, share = chunk_pairs([chunk_summaries(images[c]) for c in ("orig", "other00")]
                                     + [chunk_summaries(excerpt)])
        assert list(zip(i.tolist(), j.tolist())) == pairs, frames
    assert share.tolist() == [1.0]


def test_shifted_and_partial_copies_are_found_by_chunks_and_the_excerpt_not_by_clips(tables, tmp_path, capsys):
    """The command on both tables (images read, or the audio decoded again): exactly the planted three pairs; the
    per-clip mode on the extract's indices and spectral statistics misses the 3-s excerpt."""
    for kind, source in (("images", "the logmel column"), ("audio", "the audio")):
        out = tmp_path / f"{kind}.parquet"
        assert main(["duplicates", tables[kind], "--chunks", "--output", str(out)]) == 0
        pairs = _pairs(out)
        assert set(pairs) == PLANTED, (kind, sorted(pairs))
        assert pq.read_schema(out).remove_metadata().equals(CHUNK_PAIR_SCHEMA)
        assert pairs["excerpt", "orig"]["share"] == 1.0 and pairs["excerpt", "shifted"]["share"] == 1.0
        assert pairs["orig", "shifted"]["share"] == pytest.approx(14 / 18)  # 8 of the 10 s shared
        assert all(r["distance"] <= 0.015 for r in pairs.values())
        printed = capsys.readouterr().out
        assert f"3 near-duplicate pairs among {N_DISTINCT + 3} clips" in printed, printed
        assert f"chunks: {N_DISTINCT + 3} from {source})" in printed, printed
    clip_mode = tmp_path / "clips.parquet"
    assert main(["duplicates", tables["images"], "--column", "indices,spectral", "--output", str(clip_mode)]) == 0
    assert ("excerpt", "orig") not in _pairs(clip_mode) and ("excerpt", "shifted") not in _pairs(clip_mode)
    as_csv = tmp_path / "pairs.csv"  # the output's format by its name: a .csv is CSV (it was Parquet whatever the name)
    assert main(["duplicates", tables["images"], "--chunks", "--output", str(as_csv)]) == 0
    text = as_csv.read_text().splitlines()
    assert text[0] == '"clip_a","clip_b","distance","group_a","group_b","share"' and len(text) == 4
    for argv, line in ((["--chunks", "--column", "indices"], "column: compares the vector columns named"),
                       ([], "column: required (or --chunks)"),
                       (["--column", "owl"], "column: owl matches no feature group of"),  # the flag given, by name
                       (["--chunks", "--min-share", "0"], "min_share: must be in (0, 1], got 0.0"),
                       (["--column", "indices", "--min-share", "0.5"], "min_share: applies to --chunks only")):
        capsys.readouterr()
        assert main(["duplicates", tables["images"], *argv, "--output", str(tmp_path / "x.parquet")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and line in err, err
    assert main(["duplicates", tables["images"], "--chunks", "--output", str(tmp_path / "pairs.txt")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"output: {tmp_path / 'pairs.txt'} must end in .parquet or .csv")


@pytest.mark.slow
def test_train_with_duplicate_chunks_keeps_the_copies_in_one_fold(tables, tmp_path, monkeypatch, capsys):
    """``train --duplicate-chunks``: the three planted clips get one group, so one outer fold, and the console, the
    run's counts and the report say by which rule."""
    from acoustic_env.jobs.train import crossval

    seen = []  # the job's outer folds as it makes them: (clip ids, fold per clip)
    folds_of = crossval.grouped_folds
    monkeypatch.setattr(crossval, "grouped_folds", lambda features, *args, **kwargs: seen.append(
        (features.ids, folds_of(features, *args, **kwargs))) or seen[-1][1])
    out = tmp_path / "model"
    assert main(["train", "--features", tables["images"], "--output", str(out), "--task", "urban_natural",
                 "--feature-groups", "indices_raw", "--cv-folds", "3", "--baselines", "logreg", "--tuning-trials", "1",
                 "--no-ablations", "--shap-samples", "0", "--no-progress", "--duplicate-chunks"]) == 0
    [(ids, folds)] = seen
    fold = dict(zip(ids, folds))
    assert len({fold[c] for c in ("orig", "shifted", "excerpt")}) == 1 and len(set(folds.tolist())) == 3
    printed = capsys.readouterr().out
    assert "near-duplicates: 15 groups merged into 13 so that copies stay on one side" in printed, printed
    counts = json.loads((out / "report" / "metrics.json").read_text())["counts"]["duplicates"]
    assert counts["mode"] == "chunks" and counts["pairs"] == 3 and counts["groups_merged"] == 2
    assert counts["frames"] == {"logmel column": N_DISTINCT + 3, "audio": 0, "unread": 0}
    assert merge_summary(counts).startswith("the near-duplicate guard (at least 50% of the shorter clip's 1-s MFCC "
                                            "chunks within cosine distance 0.015 of the other's) merged 15 groups")
    page = (out / "report" / "index.html").read_text()
    assert escape(f"Near-duplicate guard ({counts['rule']}): 3 pair(s)") in page


def test_a_clip_whose_audio_is_gone_stays_alone_and_a_large_table_is_skipped(tables, tmp_path, capsys):
    """Read from the audio, a clip that cannot be decoded any more is counted, named by the command and in no pair;
    above ``max_clips`` the guard does not search, and says so."""
    moved = read_features(tables["moved"])
    guard = merge_chunk_duplicate_groups(moved, read_chunks)
    assert guard.counts["frames"] == {"logmel column": 0, "audio": N_DISTINCT + 2, "unread": 1}
    assert guard.counts["pairs"] == 1 and guard.counts["groups_merged"] == 1
    group = dict(zip(moved.ids, guard.groups))
    assert group["orig"] == group["excerpt"] and group["shifted"] == "clip:shifted"
    skipped = merge_chunk_duplicate_groups(moved, read_chunks, max_clips=14)
    assert skipped.counts["skipped"] == "over 14 clips (chunk mode)" and skipped.counts["pairs"] == 0
    assert list(skipped.groups) == list(moved.groups)
    assert main(["duplicates", tables["moved"], "--chunks", "--output", str(tmp_path / "p.parquet")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"1 near-duplicate pairs among {N_DISTINCT + 3} clips") and len(printed) == 2
    assert printed[1].startswith("  1 clip(s) could not be read and are in no pair, e.g. shifted: decode/missing_file")


def test_an_mfcc_image_column_is_not_taken_for_a_log_mel(tables):
    """A table whose image column holds another image (an MFCC image) has its frames computed from the audio."""
    features = read_features(tables["images"])
    columns = {**features.table.columns, "logmel": {**LOGMEL.metadata(), "image": "mfcc", "mfcc": 20}}
    other = dataclasses.replace(features.table, columns=columns)
    frames = read_chunks(other, features.clips)
    pairs = chunk_pairs_table(frames, features.ids, features.groups)
    assert frames.sources == {"logmel column": 0, "audio": N_DISTINCT + 3, "unread": 0}
    assert {(a, b) for a, b in zip(pairs["clip_a"].to_pylist(), pairs["clip_b"].to_pylist())} == PLANTED


def _encode(audio: np.ndarray, sr: int, fmt: str = "FLAC", subtype: str = "PCM_16",
            level: float | None = None) -> bytes:
    """The bytes of ``audio`` as a file of ``fmt`` (FLAC by default), as a copy of it would be stored."""
    out = io.BytesIO()
    sf.write(out, audio, sr, format=fmt, subtype=subtype, compression_level=level)
    return out.getvalue()


@pytest.mark.skipif(not MAAD.is_dir(), reason=f"{MAAD} is missing (the project's shared data)")
def test_real_soundscapes_pair_only_their_copies():
    """93 field recordings of one forest, one every 15 minutes (night-time insects hours long sound alike), and of
    three of them: a copy cut 2 s later, a 3-s excerpt, a Vorbis copy (quality 0.9) cut 1.05 s later and a 5-s
    excerpt resampled to 44.1 kHz 10 dB quieter (1.2 s of it in the 3-s one: not a pair). The chunk mode pairs
    every copy whose shared part is at least half of the shorter clip, well within the threshold, and nothing
    else."""
    files = sorted(MAAD.glob("*.wav"))
    clips: dict[str, bytes] = {}
    planted = set()
    for k, f in enumerate(files[:-3]):
        audio, sr = sf.read(f, dtype="float32")
        clips[f.stem] = _encode(audio, sr)
        if k < 3:  # the recording goes on in another file: a shifted copy runs into it
            long = np.concatenate([audio, sf.read(files[-1 - k], dtype="float32")[0]])
            cut = {"shifted": _encode(long[2 * sr:12 * sr], sr),
                   "excerpt": _encode(long[int(4.35 * sr):int(7.35 * sr)], sr),
                   "vorbis": _encode(long[int(1.05 * sr):int(11.05 * sr)], sr, "OGG", "VORBIS", 0.1),
                   "44k": _encode(soxr.resample(long[int(0.55 * sr):int(5.55 * sr)], sr, 44100) * 0.3, 44100, "WAV")}
            clips.update({f"{f.stem}_{v}": data for v, data in cut.items()})
            names = [f.stem, *(f"{f.stem}_{v}" for v in cut)]
            planted |= {(a, b) for a in names for b in names if a < b} - {(f"{f.stem}_44k", f"{f.stem}_excerpt")}
    names = list(clips)
    chunks = [chunk_summaries(logmel(decode_bytes(clips[n], DecodeParams()).audio)) for n in names]
    i, j, d, share = chunk_pairs(chunks)
    found = {tuple(sorted((names[a], names[b]))) for a, b in zip(i, j)}
    assert found == planted, (sorted(found - planted), sorted(planted - found))
    assert d.max() < 0.01 and share.min() >= 0.5
