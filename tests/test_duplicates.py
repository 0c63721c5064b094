"""Near-duplicates: planted copies (re-encoded, resampled, gain-changed) among distinct synthetic clips.

The clips go through the real extract (decode, resample, features) with Ray; the
copies are the same generated audio written again as OGG Vorbis, as 16-bit WAV
resampled to 44.1 kHz, and as FLAC at 22.05 kHz 9 dB quieter.
"""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import soxr

from acoustic_env.demo.synth import make_clip
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.learn.duplicates import (
    DEFAULT_THRESHOLD,
    DISAGREE_COLUMN,
    PAIR_SCHEMA,
    DistanceSpace,
    find_pairs,
    merge_duplicate_groups,
    merge_lines,
    merge_summary,
    nearest,
    pairs_table,
)
from acoustic_env.learn.splits import assign_splits, leaks, strata
from acoustic_env.table import read_features

N_DISTINCT, N_COPIED = 36, 8
TASK = "labels:urban,natural"
# (suffix, sample rate, gain in dB, soundfile format, subtype, compression level); Vorbis at
# quality 0.9 (libsndfile's compression level 0.1), what a re-upload at a high bit rate keeps
VARIANTS = (("ogg", 22050, 0.0, "OGG", "VORBIS", 0.1), ("wav", 44100, 0.0, "WAV", "PCM_16", None),
            ("flac", 22050, -9.0, "FLAC", "PCM_16", None))


def make_collection(root: Path) -> tuple[Path, list[set[str]]]:
    """N_DISTINCT clips (FLAC, 22.05 kHz), the first N_COPIED with 3 copies each; returns the manifest, copy sets.

    One copy of clip 0 carries the other class, the mislabelled duplicate the audit must name.
    """
    root.mkdir(parents=True, exist_ok=True)
    rows, copy_sets = [], []
    for i in range(N_DISTINCT):
        cls = ("urban", "natural")[i % 2]
        audio, _ = make_clip(np.random.default_rng([7, i]), cls, 2.0, 22050, 1)
        sf.write(root / f"c{i:02d}.flac", audio, 22050, subtype="PCM_16")
        rows.append({"clip_id": f"c{i:02d}", "uri": str(root / f"c{i:02d}.flac"), "labels": cls})
        if i >= N_COPIED:
            continue
        ids = {f"c{i:02d}"}
        for k, (ext, sr, gain, fmt, subtype, level) in enumerate(VARIANTS):
            x = soxr.resample(audio, 22050, sr) if sr != 22050 else audio
            x = np.clip(x * 10 ** (gain / 20), -1, 1)
            name = f"c{i:02d}_copy{k}"
            sf.write(root / f"{name}.{ext}", x, sr, format=fmt, subtype=subtype, compression_level=level)
            label = ("natural" if cls == "urban" else "urban") if (i, k) == (0, 0) else cls
            rows.append({"clip_id": name, "uri": str(root / f"{name}.{ext}"), "labels": label})
            ids.add(name)
        copy_sets.append(ids)
    manifest = root / "clips.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["clip_id", "uri", "labels"])
        w.writeheader()
        w.writerows(rows)
    return manifest, copy_sets


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, ray_session) -> tuple[Path, list[set[str]]]:
    import acoustic_env as ae

    root = tmp_path_factory.mktemp("dups")
    manifest, copy_sets = make_collection(root / "audio")
    # in this process whatever the count (the table is Ray's, tests/test_pipeline.py): the duplicates are the point
    run = ae.extract(str(manifest), str(root / "out"), progress=False, in_process_max=10_000)
    assert run.counts["ok"] == N_DISTINCT + 3 * N_COPIED, run.counts
    return root / "out", copy_sets


def expected_pairs(copy_sets: list[set[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for s in copy_sets for p in combinations(s, 2)}


def test_find_pairs_on_vectors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 40))
    x[7] = 3.0 * x[3] + 0.01 * rng.standard_normal(40)  # same direction, another scale
    i, j, d = find_pairs([x, x[:, :5]], threshold=DEFAULT_THRESHOLD)
    assert list(zip(i, j)) == [(3, 7)] and d[0] < 0.01
    with pytest.raises(ValueError, match="threshold"):
        find_pairs([x], threshold=-1)
    with pytest.raises(ValueError, match=r"threshold: must be in \[0, 2\), got 2"):
        find_pairs([x], threshold=2)
    x[9] = x[2]
    assert list(zip(*find_pairs([x], threshold=0)[:2])) == [(2, 9)]  # 0: exact copies only


def test_nearest_clips_of_an_example_come_nearest_first(tmp_path):
    """What ``acoustic-env search`` lists for an example from outside the table: the k nearest rows in the space
    fitted on the table, nearest first, each with its mean cosine distance over the columns; asked for more rows
    than the table holds, all of them."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((30, 8)), rng.standard_normal((30, 3))
    space = DistanceSpace.fit([x, y])
    table = space.transform([x, y])
    example = space.transform([x[4:5] + 0.05 * rng.standard_normal(8), y[4:5] + 0.05 * rng.standard_normal(3)])
    idx, dist = nearest(table, example[0], 5)
    assert idx.shape == dist.shape == (1, 5) and idx.dtype == np.int64 and dist.dtype == np.float32
    assert idx[0, 0] == 4 and (np.diff(dist[0]) >= 0).all()
    cosine = 1 - table[idx[0]] @ example[0]  # each column a unit vector scaled by 1/sqrt(2): the mean of the two
    np.testing.assert_allclose(dist[0], cosine, atol=1e-5)
    idx, dist = nearest(table, example, 50)
    assert sorted(idx[0].tolist()) == list(range(30))


def test_find_pairs_standardises_each_dimension():
    """Dimensions in units a million apart, each on its own offset, one constant: only the planted copy is near.

    Without the per-dimension standardisation the largest units or the offsets would make every clip look alike."""
    rng = np.random.default_rng(1)
    units, offsets = 10.0 ** rng.uniform(-3, 3, 40), 10.0 ** rng.uniform(0, 4, 40)
    z = rng.standard_normal((50, 40))
    z[7] = z[3] + 0.05 * rng.standard_normal(40)
    x = z * units + offsets
    x[:, 5] = 2.0  # constant: dropped, not a division by zero
    i, j, d = find_pairs([x], threshold=DEFAULT_THRESHOLD)
    assert list(zip(i, j)) == [(3, 7)] and 0 < d[0] < 0.01 and d.dtype == np.float32
    assert len(find_pairs([x[:1]])[0]) == 0  # one clip: no pair
    for n in (2, 3):  # clips alike in every dimension (all of them dropped): each pair a duplicate, not a crash
        i, j, d = find_pairs([np.ones((n, 4))])
        assert list(zip(i.tolist(), j.tolist(), d.tolist())) == [(0, 1, 0.0), (0, 2, 0.0), (1, 2, 0.0)][:2 * n - 3]
        assert i.dtype == j.dtype == np.int64 and d.dtype == np.float32  # row indices, as pairs_table takes them


def test_the_space_is_the_same_whatever_the_chunk_of_rows(monkeypatch):
    """Rows standardised a few at a time (as 8,192 are for a big table) give the space the module docstring
    describes, computed here in one pass: per column standardised over the clips, a constant dimension dropped,
    each row L2-normalised and scaled by 1/sqrt(columns); a row at the mean of every dimension stays zero."""
    import acoustic_env.learn.duplicates as duplicates

    rng = np.random.default_rng(4)

    def around(centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """29 rows: the centre, then 14 on one side of it and their mirror images (whole multiples of a power of
        two: the mean is the centre exactly)."""
        v = rng.integers(-50, 50, (14, len(centre))) * scale
        return np.vstack([centre, centre + v, centre - v])

    wide = around(np.array([5.0, 3.0, 7.0, 1.0, 0.0, 2.0]), 2.0 ** np.array([-6, 0, 0, 4, 2, -2]))
    wide[:, 2] = 7.0  # constant: dropped
    narrow = around(np.array([0.5, -0.25]), np.array([0.125, 0.0625]))
    expected = []
    for m in (wide, narrow):
        keep = m.std(axis=0) > 0
        z = (m[:, keep] - m[:, keep].mean(axis=0)) / m[:, keep].std(axis=0)
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        expected.append(np.divide(z, norm, out=np.zeros_like(z), where=norm > 0) / np.sqrt(2))
    monkeypatch.setattr(duplicates, "_CHUNK", 7)
    space = duplicates.DistanceSpace.fit([wide, narrow])
    # the rows in both orders: a row the transform failed to write shows whatever the other order left there
    for rows in (slice(None), slice(None, None, -1)):
        got = space.transform([wide[rows], narrow[rows]])
        assert got.shape == (29, 7) and got.dtype == np.float32
        np.testing.assert_allclose(got, np.hstack(expected)[rows], atol=1e-5)
        assert not got[0 if rows.step is None else -1].any()


def test_merge_lines_and_summary_name_at_most_their_limit():
    """The console names 10 merged sets, the run's one-line summary 3; past that, how many more."""
    merges = [{"groups": [f"g{k}a", f"g{k}b"], "pairs": [[f"c{k}a", f"c{k}b", 0.01]], "pairs_total": 1}
              for k in range(11)]
    counts = {"threshold": 0.05, "groups_before": 30, "groups_after": 19, "groups_merged": 11, "merges": merges}
    lines = merge_lines(counts)
    assert len(lines) == 11 and lines[-1] == "... and 1 more merged set(s) (run record: counts.duplicates)"
    assert lines[0] == "groups g0a + g0b merged: near-duplicate clips c0a ~ c0b (0.010)"
    assert len(merge_lines({**counts, "merges": merges[:10]})) == 10
    assert merge_summary({**counts, "merges": merges[:4]}) == (
        "the near-duplicate guard (mean cosine distance <= 0.05) merged 30 groups into 19: "
        "groups g0a + g0b merged: near-duplicate clips c0a ~ c0b (0.010); "
        "groups g1a + g1b merged: near-duplicate clips c1a ~ c1b (0.010); "
        "groups g2a + g2b merged: near-duplicate clips c2a ~ c2b (0.010); "
        "... and 1 more merged set(s) (run record: counts.duplicates)")
    # the chunk mode states its own rule (learn/duplicate_chunks.py), which the summary names in place of the threshold
    chunked = merge_summary({**counts, "merges": merges[:1], "rule": "half the chunks within 0.2"})
    assert chunked.startswith("the near-duplicate guard (half the chunks within 0.2) merged 30 groups into 19: ")


def test_a_chain_of_near_duplicates_ends_in_one_group(tmp_path):
    """a ~ b and b ~ c but a is not near c: the recordings of a chain are one group (the merge is transitive).

    Two chains, as clip indices along a line: one whose middle clip sorts between its ends (a one-step merge
    leaves an end apart), one of four whose pairs re-parent a group that already absorbed another (a merge that
    forgets to follow the absorbed group's new parent leaves it apart).
    """
    syn = synthetic_features(40, seed=0, signals=("raw",), rows_per_group=1)  # each clip its own recording
    features = read_features(write_features(syn.table, str(tmp_path / "t")), task="urban_natural",
                             feature_groups=["indices_raw"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, features.columns["indices_raw"])).astype(np.float32)
    chains = ((10, 20, 30), (12, 27, 33, 22))
    for chain in chains:
        step = rng.standard_normal(x.shape[1])
        for k, clip in enumerate(chain):
            x[clip] = x[chain[0]] + 0.2 * k * step
    features = dataclasses.replace(features, X={"indices_raw": x})
    i, j, d = find_pairs([x], threshold=1.99)
    dist = {(p, q): v for p, q, v in zip(i, j, d)}
    for chain in chains:  # the chains as planted: neighbours near, every other pair of the chain not
        for (k, p), (m, q) in combinations(enumerate(chain), 2):
            assert (dist[min(p, q), max(p, q)] <= DEFAULT_THRESHOLD) == (m == k + 1), (p, q)
    guard = merge_duplicate_groups(features)
    for chain in chains:
        assert len(set(guard.groups[list(chain)])) == 1, guard.groups[list(chain)]
    counts = guard.counts
    assert {k: counts[k] for k in ("pairs", "pairs_across_groups", "groups_merged", "clips_regrouped", "groups_before",
                                   "groups_after")} == {"pairs": 5, "pairs_across_groups": 5, "groups_merged": 5,
                                                        "clips_regrouped": 5, "groups_before": 40, "groups_after": 35}
    assert len(set(guard.groups.tolist())) == 35 and guard.has_groups
    assert [m["groups"] for m in counts["merges"]] == [["rec000010", "rec000020", "rec000030"],
                                                       ["rec000012", "rec000022", "rec000027", "rec000033"]]
    assert [m["pairs_total"] for m in counts["merges"]] == [2, 3]
    closest = counts["merges"][1]["pairs"]  # the pairs that joined them, closest first
    assert [p[2] for p in closest] == sorted(p[2] for p in closest) and all(p[2] <= DEFAULT_THRESHOLD for p in closest)
    assert merge_lines(counts)[0] == ("groups rec000010 + rec000020 + rec000030 merged: near-duplicate clips "
                                      + ", ".join(f"{a} ~ {b} ({d:.3f})" for a, b, d in counts["merges"][0]["pairs"]))
    assert merge_summary(counts).startswith("the near-duplicate guard (mean cosine distance <= 0.05) merged 40 "
                                            "groups into 35: groups rec000010 + ")
    assert list(guard.apply(features).groups) == list(guard.groups)
    # the audit's column: each clip of the first chain names its nearest near-duplicate of another label
    ids = features.ids.tolist()
    labels = [["natural"] if k == 20 else ["urban"] for k in range(40)]
    named = guard.label_disagreements(pa.table({"clip_id": ids, "given_labels": labels}))[DISAGREE_COLUMN].to_pylist()
    assert {ids[k]: v for k, v in enumerate(named) if v} == {ids[10]: ids[20], ids[20]: ids[10] if dist[10, 20] <
                                                             dist[20, 30] else ids[30], ids[30]: ids[20]}
    # above max_clips the guard does not search, and says so
    skipped = merge_duplicate_groups(features, max_clips=39)
    assert skipped.counts == {"threshold": 0.05, "columns": ["indices_raw"], "skipped": "over 39 clips", "pairs": 0,
                              "groups_merged": 0}
    assert list(skipped.groups) == list(features.groups) and skipped.pairs.num_rows == 0 and skipped.has_groups is True
    assert merge_lines(counts, limit=1)[1:] == ["... and 1 more merged set(s) (run record: counts.duplicates)"]
    distinct = merge_duplicate_groups(dataclasses.replace(features, X={"indices_raw": rng.standard_normal(x.shape)}))
    assert distinct.counts["pairs"] == 0 and distinct.has_groups is True and merge_summary(distinct.counts) == ""


def test_the_guard_on_chosen_columns_a_streamed_table_and_its_clip_limit(tmp_path):
    """A chain of five near-duplicates in one column, the other column unrelated: the guard on that column (its
    limit exactly the table's 40 clips) merges them and names the three closest of its four pairs; on every column it
    finds nothing. A table streamed from disk gives the same pairs, and the guard says why it skipped it."""
    syn = synthetic_features(40, seed=0, signals=("raw",), rows_per_group=1)
    path = write_features(syn.table, str(tmp_path / "t"))
    groups = ["indices_raw", "spectral_raw"]
    features = read_features(path, task="urban_natural", feature_groups=groups)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, features.columns["indices_raw"]))
    step = rng.standard_normal(x.shape[1])
    x[1:5] = x[0] + 0.2 * np.arange(1, 5)[:, None] * step  # clips 0 to 4 along a line
    other = rng.standard_normal((40, features.columns["spectral_raw"]))
    features = dataclasses.replace(features, has_groups=False, X={"indices_raw": x, "spectral_raw": other})
    guard = merge_duplicate_groups(features, columns=["indices_raw"], max_clips=40)
    assert guard.counts["columns"] == ["indices_raw"] and guard.counts["groups_merged"] == 4
    [merge] = guard.counts["merges"]
    distances = sorted(round(float(d), 4) for d in guard.pairs["distance"].to_pylist())
    assert merge["pairs_total"] == 4 and [p[2] for p in merge["pairs"]] == distances[:3]
    assert merge_lines(guard.counts)[0].endswith(" and 1 more pair(s)")
    assert guard.apply(features).has_groups is True  # merged groups: the folds are grouped now
    unrelated = merge_duplicate_groups(features)
    assert unrelated.counts["pairs"] == 0 and unrelated.apply(features).has_groups is False
    assert unrelated.pairs.schema == guard.pairs.schema == PAIR_SCHEMA
    no_twin = unrelated.label_disagreements(pa.table({"clip_id": features.ids.tolist(),
                                                      "given_labels": [["urban"]] * 40}))
    assert no_twin.schema.field(DISAGREE_COLUMN).type == pa.string() and no_twin[DISAGREE_COLUMN].null_count == 40
    streamed = read_features(path, task="urban_natural", feature_groups=groups, max_bytes=1)
    in_memory = read_features(path, task="urban_natural", feature_groups=groups)
    assert streamed.X is None and in_memory.X is not None
    assert pairs_table(streamed, 1.99).equals(pairs_table(in_memory, 1.99))
    assert pairs_table(in_memory, 1.99).num_rows > pairs_table(in_memory).num_rows
    assert merge_duplicate_groups(streamed).counts["skipped"] == "the table is streamed (over memory_gb)"
    one = dataclasses.replace(features, X={g: m[:1] for g, m in features.X.items()}, clips=features.clips.slice(0, 1))
    assert pairs_table(one).equals(PAIR_SCHEMA.empty_table())


@pytest.mark.slow
def test_planted_duplicates_are_found_and_nothing_else(extracted):
    out, copy_sets = extracted
    features = read_features(str(out), task=TASK)
    pairs = pairs_table(features)
    found = {tuple(sorted(p)) for p in zip(pairs["clip_a"].to_pylist(), pairs["clip_b"].to_pylist())}
    truth = expected_pairs(copy_sets)
    recall = len(found & truth) / len(truth)
    assert recall >= 0.95, (recall, sorted(truth - found))
    assert found <= truth, sorted(found - truth)  # no false pairs among the distinct clips
    # the margin: every planted pair below the threshold, every distinct pair far above it
    i, j, d = find_pairs([features.X[c] for c in features.columns], threshold=1.99)
    ids = features.ids
    dist = {tuple(sorted((ids[a], ids[b]))): v for a, b, v in zip(i, j, d)}
    assert max(dist[p] for p in truth) < DEFAULT_THRESHOLD
    assert min(v for p, v in dist.items() if p not in truth) > 2 * DEFAULT_THRESHOLD


@pytest.mark.slow
def test_guard_keeps_copies_on_one_side_of_every_split(extracted):
    out, copy_sets = extracted
    features = read_features(str(out), task=TASK)
    assert not features.has_groups  # no group column: each clip would be its own group
    guard = merge_duplicate_groups(features)
    assert guard.counts["groups_merged"] == sum(len(s) - 1 for s in copy_sets)
    assert guard.counts["clips_regrouped"] == sum(len(s) - 1 for s in copy_sets)
    merged = guard.apply(features)
    group_of = dict(zip(merged.ids, merged.groups))
    assert all(len({group_of[c] for c in s}) == 1 for s in copy_sets)
    for seed in range(5):
        split = assign_splits(strata(merged.y), merged.groups, None, 0.25, 0.25, seed)
        assert not leaks(merged.groups, split)
        side = dict(zip(merged.ids, split))
        assert all(len({side[c] for c in s}) == 1 for s in copy_sets)


@pytest.mark.slow
def test_audit_names_the_mislabelled_copy_and_cli_writes_pairs(extracted, tmp_path):
    import acoustic_env as ae

    out, copy_sets = extracted
    audit = ae.audit(str(out), str(tmp_path / "audit"), task=TASK, folds=3, review_top=0, random_sample=0)
    assert audit.record["duplicates"]["groups_merged"] == sum(len(s) - 1 for s in copy_sets)
    table = pq.read_table(audit.table).to_pylist()
    named = {r["clip_id"]: r[DISAGREE_COLUMN] for r in table if r[DISAGREE_COLUMN]}
    assert named["c00_copy0"] in copy_sets[0] - {"c00_copy0"}  # its copies carry the other class
    assert named.keys() == copy_sets[0]  # and each of them names the mislabelled copy
    assert named["c00"] == "c00_copy0"

    pairs_file = tmp_path / "pairs.parquet"
    done = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "duplicates", str(out), "--column",
                           "indices,spectral,mps", "--output", str(pairs_file)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    written = pq.read_table(pairs_file)
    assert {tuple(sorted(p)) for p in zip(written["clip_a"].to_pylist(), written["clip_b"].to_pylist())} \
        <= expected_pairs(copy_sets) and written.num_rows >= 0.95 * len(expected_pairs(copy_sets))
    assert "near-duplicate pairs" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "duplicates", str(out), "--column", "nope",
                          "--output", str(pairs_file)], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1  # named by the flag given, --column
    assert "error: column: nope matches no feature group" in bad.stderr


@pytest.mark.slow
def test_train_keeps_copies_in_one_fold_and_its_report_counts_the_merged_groups(extracted, tmp_path, monkeypatch):
    import acoustic_env as ae
    from acoustic_env.jobs.train import crossval

    out, copy_sets = extracted
    seen = []  # the job's outer folds as it makes them: (clip ids, fold per clip)
    make_folds = crossval._folds

    def folds_seen(cfg, task, features, counts):
        folds, names = make_folds(cfg, task, features, counts)
        seen.append((features.ids, folds))
        return folds, names

    monkeypatch.setattr(crossval, "_folds", folds_seen)
    # the MLP unsearched (one setting): the folds are what is looked at, and the default five of them stay
    trained = ae.train(str(out), str(tmp_path / "model"), task=TASK, trials=0, ablations=False, shap_samples=0,
                       baselines=("logreg",), max_rounds=3, tuning_trials=1)
    counts = trained.counts
    merged = sum(len(s) - 1 for s in copy_sets)
    assert counts["duplicates"]["groups_merged"] == merged
    assert counts["duplicates"]["pairs"] >= 0.95 * len(expected_pairs(copy_sets))
    # the table has no group column: the folds are grouped only because the guard gave each copy set one group
    assert trained.evaluation["grouped"]
    [(ids, folds)] = seen
    fold_of = dict(zip(ids, folds))
    assert all(len({fold_of[c] for c in s}) == 1 for s in copy_sets), [[fold_of[c] for c in s] for s in copy_sets]
    assert len(set(folds.tolist())) == trained.evaluation["folds"] > 1
    page = Path(trained.report).read_text()
    d = counts["duplicates"]
    assert d["groups_before"] - d["groups_after"] == merged
    assert f"{d['groups_before']} groups merged into {d['groups_after']} so that copies stay" in page
    assert page.count("<li>groups ") == len(copy_sets)  # each merge named, with the clip pairs that made it
