"""Tests for the synthetic soundscape generator (acoustic_env.demo.synth).

Kept small (a dozen clips of 1.5 s) so the whole file runs in a few seconds.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require

from acoustic_env.demo import synth

SHARED = Path(__file__).resolve().parents[2] / "shared"
AUDIOSET_DIR = SHARED / "data" / "audioset"

N_CLIPS = 14
N_BROKEN = 6
DURATION = 1.5
LABEL_NOISE = 0.25
ROW_RE = re.compile(r'^[A-Za-z0-9_-]{11}, \d+\.\d{3}, \d+\.\d{3}, "(/[mgt]/[A-Za-z0-9_]+)(,/[mgt]/[A-Za-z0-9_]+)*"$')


def _gen(out_dir: Path, seed: int = 0, **kw) -> synth.DemoSet:
    args = dict(n_clips=N_CLIPS, seed=seed, duration_s=DURATION, label_noise=LABEL_NOISE, n_broken=N_BROKEN)
    args.update(kw)
    return synth.generate_demo(out_dir, **args)


def _read_segments(path: Path) -> tuple[list[str], list[list[str]]]:
    """Parse an AudioSet segment list: '#' header lines, then 'YTID, start, end, "mid,mid"' rows."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    rows = list(csv.reader(body, skipinitialspace=True, quotechar='"'))
    return header, rows


def _read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> synth.DemoSet:
    return _gen(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def truth(demo: synth.DemoSet) -> list[dict[str, str]]:
    return _read_truth(demo.truth_csv)


def test_return_value(demo: synth.DemoSet) -> None:
    assert demo.clips_csv == demo.out_dir / "clips.csv" and demo.clips_csv.is_file()
    assert demo.truth_csv == demo.out_dir / "truth.csv" and demo.truth_csv.is_file()
    assert demo.audio_dir == demo.out_dir / "audio" and demo.audio_dir.is_dir()
    assert (demo.n_good, demo.n_broken) == (N_CLIPS - N_BROKEN, N_BROKEN)
    assert demo.n_flipped == round(LABEL_NOISE * demo.n_good)


def test_deterministic_by_seed(demo: synth.DemoSet, tmp_path: Path) -> None:
    again = _gen(tmp_path / "again")
    a, b = _files(demo.out_dir), _files(again.out_dir)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
    other = _gen(tmp_path / "other", seed=1)
    assert other.clips_csv.read_bytes() != demo.clips_csv.read_bytes()
    assert set(_files(other.audio_dir)).isdisjoint(_files(demo.audio_dir))


def test_clips_csv_audioset_format(demo: synth.DemoSet) -> None:
    lines = demo.clips_csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Segments csv created by acoustic-env demo (seed 0)"
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    assert sum(ln.startswith("#") for ln in lines) == 3 and all(ln.startswith("#") for ln in lines[:3])
    for ln in lines[3:]:
        assert ROW_RE.match(ln), ln
    header, rows = _read_segments(demo.clips_csv)
    assert len(rows) == N_CLIPS and all(len(r) == 4 for r in rows)
    counts = dict(kv.split("=") for kv in header[1].lstrip("# ").split(", "))
    labels = [r[3].split(",") for r in rows]
    assert int(counts["num_ytids"]) == len({r[0] for r in rows}) == N_CLIPS
    assert int(counts["num_segs"]) == N_CLIPS
    assert int(counts["num_unique_labels"]) == len({m for ls in labels for m in ls})
    assert int(counts["num_positive_labels"]) == sum(map(len, labels))
    for ytid, start, end, _ in rows:
        assert float(end) - float(start) == pytest.approx(DURATION)
        assert float(start) % 10 == 0
    # Every row: exactly one class MID first, then 2-4 source MIDs of the known set.
    class_mids = set(synth.CLASS_MIDS.values())
    source_mids = {synth.AUDIOSET_MIDS[n] for n in synth.SOURCE_LABELS.values()}
    for ls in labels:
        assert ls[0] in class_mids and not class_mids & set(ls[1:])
        assert 2 <= len(ls[1:]) <= 4 and set(ls[1:]) <= source_mids


def test_audio_files_named_and_decodable(demo: synth.DemoSet, truth: list[dict[str, str]]) -> None:
    _, rows = _read_segments(demo.clips_csv)
    ids = [f"{r[0]}_{int(float(r[1]) * 1000)}" for r in rows]
    assert ids == [t["clip_id"] for t in truth]
    rates, chans = set(), set()
    for t in truth:
        if t["broken"] == "1":
            continue
        path = demo.audio_dir / f"{t['clip_id']}.flac"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (int(t["sample_rate"]), int(t["channels"]))
        assert info.frames == round(DURATION * info.samplerate)
        x, _ = sf.read(str(path))
        assert np.isfinite(x).all() and 0 < np.abs(x).max() < 1.0
        rates.add(info.samplerate)
        chans.add(info.channels)
    assert rates <= set(synth.SAMPLE_RATES) and len(rates) >= 2
    assert chans <= {1, 2}


def test_broken_entries(demo: synth.DemoSet, truth: list[dict[str, str]]) -> None:
    broken = {t["broken_kind"]: t for t in truth if t["broken"] == "1"}
    assert sorted(broken) == sorted(synth.BROKEN_KINDS)
    audio = demo.audio_dir

    assert (audio / f"{broken['empty']['clip_id']}.flac").stat().st_size == 0
    for kind in ("empty", "not_audio", "truncated"):
        with pytest.raises(sf.LibsndfileError):
            sf.read(str(audio / f"{broken[kind]['clip_id']}.flac"))
    assert not list(audio.glob(f"{broken['missing']['clip_id']}.*"))

    nan_id = broken["nan_samples"]["clip_id"]
    assert not (audio / f"{nan_id}.flac").exists()
    x, sr = sf.read(str(audio / f"{nan_id}.wav"))
    assert np.isnan(x).any() and np.isfinite(x).any()
    assert sr == int(broken["nan_samples"]["sample_rate"])

    info = sf.info(str(audio / f"{broken['too_short']['clip_id']}.flac"))
    assert info.duration < 0.1

    # Exactly one file per non-missing entry, nothing else.
    expected = {f"{t['clip_id']}.flac" for t in truth if t["broken_kind"] not in ("missing", "nan_samples")}
    expected.add(f"{nan_id}.wav")
    assert {p.name for p in audio.iterdir()} == expected


def test_label_flips_match_truth(demo: synth.DemoSet, truth: list[dict[str, str]]) -> None:
    _, rows = _read_segments(demo.clips_csv)
    mid_class = {m: c for c, m in synth.CLASS_MIDS.items()}
    flipped = [t for t in truth if t["flipped"] == "1"]
    assert len(flipped) == demo.n_flipped == round(LABEL_NOISE * demo.n_good) > 0
    assert all(t["broken"] == "0" for t in flipped)
    for row, t in zip(rows, truth):
        given = mid_class[row[3].split(",")[0]]
        assert given == t["given_class"]
        assert (t["given_class"] != t["true_class"]) == (t["flipped"] == "1")


def test_no_label_noise_and_no_broken(tmp_path: Path) -> None:
    d = synth.generate_demo(tmp_path, n_clips=4, seed=3, duration_s=0.5, n_broken=0)
    t = _read_truth(d.truth_csv)
    assert (d.n_good, d.n_broken, d.n_flipped) == (4, 0, 0)
    assert all(r["flipped"] == "0" and r["broken"] == "0" for r in t)
    assert len(list(d.audio_dir.iterdir())) == 4


def test_wav_format_truncated_still_fails(tmp_path: Path) -> None:
    d = synth.generate_demo(tmp_path, n_clips=4, seed=5, duration_s=0.5, n_broken=3, fmt="wav")
    t = {r["broken_kind"]: r for r in _read_truth(d.truth_csv)}
    good = next(r for r in _read_truth(d.truth_csv) if r["broken"] == "0")
    assert sf.info(str(d.audio_dir / f"{good['clip_id']}.wav")).format == "WAV"
    with pytest.raises(sf.LibsndfileError):
        sf.read(str(d.audio_dir / f"{t['truncated']['clip_id']}.wav"))
    with pytest.raises(ValueError):
        synth.generate_demo(tmp_path / "x", n_clips=2, fmt="ogg")


def test_classes_balanced(demo: synth.DemoSet, truth: list[dict[str, str]]) -> None:
    good = [t["true_class"] for t in truth if t["broken"] == "0"]
    assert good.count("urban") == good.count("natural") == demo.n_good // 2
    every = [t["true_class"] for t in truth]
    assert abs(every.count("urban") - every.count("natural")) <= 1


def _centroid(x: np.ndarray, sr: int) -> float:
    """Spectral centroid below 8 kHz (so clips at different rates compare fairly)."""
    if x.ndim == 2:
        x = x.mean(axis=1)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    keep = f < 8000
    return float(np.sum(f[keep] * power[keep]) / np.sum(power[keep]))


def test_classes_differ_physically(demo: synth.DemoSet, truth: list[dict[str, str]]) -> None:
    cents: dict[str, list[float]] = {"urban": [], "natural": []}
    for t in truth:
        if t["broken"] == "0":
            x, sr = sf.read(str(demo.audio_dir / f"{t['clip_id']}.flac"))
            cents[t["true_class"]].append(_centroid(x, sr))
    assert np.mean(cents["urban"]) < 0.75 * np.mean(cents["natural"]), cents


def test_classes_overlap_as_real_ones_do() -> None:
    """Not trivially separable: a quiet source of the other class and a varying background.

    Clips drawn with the same seed streams but the other-class source muted
    (``CONFUSER_PROB`` 0) have centroids that separate the classes far more
    cleanly; with the defaults, the class ranges of the centroid overlap.
    """
    def centroids(confuser_prob: float) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"urban": [], "natural": []}
        old = synth.CONFUSER_PROB
        synth.CONFUSER_PROB = confuser_prob
        try:
            for i in range(24):
                cls = ("urban", "natural")[i % 2]
                x, _ = synth.make_clip(np.random.default_rng([7, i]), cls, 2.0, 16000, 1)
                out[cls].append(_centroid(x, 16000))
        finally:
            synth.CONFUSER_PROB = old
        return out

    def overlap(c: dict[str, list[float]]) -> float:
        """Share of (urban, natural) pairs in the wrong order: 0 = perfectly separated by the centroid."""
        return float(np.mean([u >= n for u in c["urban"] for n in c["natural"]]))

    hard, clean = overlap(centroids(synth.CONFUSER_PROB)), overlap(centroids(0.0))
    assert hard > 0.02 and hard > clean, (hard, clean)
    assert synth.BACKGROUND_DB[1] - synth.BACKGROUND_DB[0] >= 20


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("name", sorted({**synth.URBAN_SOURCES, **synth.NATURAL_SOURCES}))
def test_source_generators(name: str, sr: int) -> None:
    fn = {**synth.URBAN_SOURCES, **synth.NATURAL_SOURCES}[name]
    n = sr // 2
    x = fn(np.random.default_rng(7), n, sr)
    assert x.dtype == np.float32 and x.shape == (n,)
    assert np.isfinite(x).all() and x.std() > 0
    np.testing.assert_array_equal(x, fn(np.random.default_rng(7), n, sr))


def test_source_character() -> None:
    """Each source's energy sits in the band its docstring promises."""
    sr, n = 32000, 32000
    rng = np.random.default_rng(11)
    cent = {name: _centroid(fn(rng, n, sr), sr) for name, fn in {**synth.URBAN_SOURCES, **synth.NATURAL_SOURCES}.items()}
    assert cent["traffic"] < 300
    assert 80 < cent["engine"] < 1000
    assert 350 < cent["horn"] < 1500
    assert 600 < cent["siren"] < 1600
    assert 2000 < cent["birdsong"] < 6000
    assert 4000 < cent["insects"] < 7200
    assert cent["rain"] > 1500


def test_mids_exist_in_audioset() -> None:
    labels_csv = AUDIOSET_DIR / "class_labels_indices.csv"
    ontology = AUDIOSET_DIR / "ontology.json"
    require(labels_csv.is_file() or ontology.is_file(),
            f"AudioSet reference files not found under {AUDIOSET_DIR} (shared data not mounted)")
    known: dict[str, str] = {}
    if labels_csv.is_file():
        with labels_csv.open(newline="", encoding="utf-8") as fh:
            known.update({r["mid"]: r["display_name"] for r in csv.DictReader(fh)})
    if ontology.is_file():
        known.update({e["id"]: e["name"] for e in json.loads(ontology.read_text(encoding="utf-8"))})
    for display_name, mid in synth.AUDIOSET_MIDS.items():
        assert mid in known, (display_name, mid)
        assert known[mid] == display_name, (display_name, mid, known[mid])
