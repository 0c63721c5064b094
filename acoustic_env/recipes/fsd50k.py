"""FSD50K: 51,197 Freesound clips (0.3-30 s) weakly labelled with 200 classes of the AudioSet ontology.

Published at https://zenodo.org/records/4060432 (Fonseca et al., IEEE/ACM TASLP 2022),
licence CC BY 4.0 for the dataset; each clip keeps its own Creative Commons licence
(CC0, CC BY, CC BY-NC or CC Sampling+, listed in ``FSD50K.metadata``).

Layout: ``FSD50K.ground_truth/dev.csv`` (``fname, labels, mids, split``: the dev set's
``train``/``val`` split), ``eval.csv`` (``fname, labels, mids``), ``vocabulary.csv``
(no header: ``index, label, mid``); audio in ``FSD50K.dev_audio/<fname>.wav`` and
``FSD50K.eval_audio/<fname>.wav``. The labels are the tags as the vocabulary writes them
(``Bird_vocalization_and_bird_call_and_bird_song``), ancestors included; ``mids`` is
kept beside them. ``fold`` is the published split (``train``, ``val``, ``eval``).
``group`` is the Freesound uploader when ``FSD50K.metadata/{dev,eval}_clips_info_FSD50K.json``
is present (the authors kept each uploader's clips on one side of train/val), else the clip.
The clip list joins a clip's tags with ``;``: a tag holding one is refused, naming its row.

200 tags are too many for an environment classifier: the tag-binning task
``vocabulary/task_files/fsd50k_environment.yaml`` bins them into four classes, and
``vocabulary/task_files/fsd50k_eight_bins.yaml`` (``bins=8``) into eight, this project's reading of
the FSD50K study's eight classes (the study binned its tags into eight; its own bins are
not reproduced here), each refining one of the four (``urban_traffic`` → ``urban``).
``prepare_fsd50k`` checks every tag the task names against the vocabulary, copies it
beside the manifest and writes ``fsd50k_bins.json`` with :func:`tag_bins` (clips per
class and the overlaps).

The study binned the uploaders' free-text tags instead (``tags`` in the clips-info JSON), into
eight classes, music the largest: ``tag_map`` (``--from-tags``, or ``--tag-map FILE``) does that,
by a YAML of category → tags (``recipes/tag_maps/fsd50k_tag_categories.yaml``: a mapping, not a task; the rule for a clip whose
tags vote for two categories is ``fsd50k_tags``'). The clip list's label is then the clip's category
(its vocabulary labels kept as ``vocabulary_labels``), a clip with no listed tag is left out and
counted, and beside it go the mapping, a task of its categories (``fsd50k_tags_task.yaml``), the
counts (``fsd50k_tags.json``) and the tag-frequency table (``fsd50k_tag_frequency.csv``).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from itertools import combinations
from typing import Any

import yaml

from acoustic_env.audio.manifest import ManifestError
from acoustic_env.bounded import MAX_LIST_BYTES, read_bytes
from acoustic_env.config import ConfigError
from acoustic_env.vocabulary.tasks import Task, class_counts, load_task
from acoustic_env.config.recipes import FSD50KConfig
from acoustic_env.recipes.common import LABEL_SEPARATOR, Prepared, file_name, plan_lines, read_csv, write_manifest
from acoustic_env.recipes.fsd50k_tags import (
    bin_tags,
    frequency_rows,
    load_tag_map,
    tag_map_path,
    top_lines,
    write_frequency_csv,
)
from acoustic_env.storage import filesystem, join, read_json, write_json

GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
CLIPS_INFO = "FSD50K.metadata/{part}_clips_info_FSD50K.json"
EXTRA = ("mids", "uploader")
TAG_FILES = {"task": "fsd50k_tags_task.yaml", "counts": "fsd50k_tags.json", "frequency": "fsd50k_tag_frequency.csv"}
SPLITS = ("train", "val")  # the dev set's published split; eval clips are fold "eval"


#: The packaged tag-binning tasks by their number of bins (``recipe fsd50k --bins``).
BINS = {4: "fsd50k_environment.yaml", 8: "fsd50k_eight_bins.yaml"}


def bins_task_path(bins: int = 4) -> str:
    """The packaged tag-binning task file of ``bins`` classes (``BINS``)."""
    return str(resources.files("acoustic_env.vocabulary") / "task_files" / BINS[bins])  # built-in tasks too


def tag_bins(task: Task, label_lists: Sequence[Sequence[str]], folds: Sequence[str] | None = None) -> dict[str, Any]:
    """Clips per class (``class_counts``) and per pair of classes claimed together (``overlaps``), per fold too."""
    def count(rows: Sequence[Sequence[str]]) -> dict[str, Any]:
        pairs: Counter[str] = Counter()
        for labels in rows:
            hits, _ = task.claims(labels)
            pairs.update(f"{task.class_names[a]}+{task.class_names[b]}" for a, b in combinations(sorted(hits), 2))
        return {**class_counts(task, rows), "overlaps": dict(pairs.most_common())}

    out = count(label_lists)
    if folds is not None:
        out["per_fold"] = {f: count([ls for ls, g in zip(label_lists, folds) if g == f]) for f in sorted(set(folds))}
    return out


def _clips_info(root: str, part: str, required: bool) -> dict[str, dict[str, Any]]:
    """The part's clips-info JSON (clip id → title, description, tags, license, uploader), {} when absent and not
    ``required`` (binning the tags needs it: absent, one ManifestError naming it)."""
    uri = join(root, CLIPS_INFO.format(part=part))
    try:  # by the one reader of a user's files: a regular file within MAX_LIST_BYTES
        data = read_bytes(uri, "recipe", MAX_LIST_BYTES, "a collection's metadata file")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        if required:
            raise ManifestError(f"{uri}: not found (the free-text tags are in FSD50K.metadata)") from None
        return {}
    except ConfigError as exc:
        raise ManifestError(str(exc)) from None
    return {str(k): v if isinstance(v, dict) else {} for k, v in json.loads(data).items()}


def _clip_tags(info: dict[str, Any], where: str) -> list[str]:
    tags = info.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ManifestError(f"{where}: tags must be a list of strings, got {tags!r}")
    return tags


def prepare_fsd50k(root: str, out: str, task_file: str | None = None, bins: int = 4,
                   tag_map: str | None = None) -> str:
    """Write ``<out>/fsd50k.csv``, the task file and ``fsd50k_bins.json``; returns the manifest's path.

    ``bins``: the packaged binning of 4 (``fsd50k_environment.yaml``) or 8 classes
    (``fsd50k_eight_bins.yaml``); ``task_file``: another tag-binning task instead of either.
    ``tag_map``: bin the free-text tags by this mapping instead (``fsd50k_tags.tag_map_path()``: the packaged one).

    Raises:
        ConfigError: ``bins`` is not 4 or 8, both ``bins=8`` and a ``task_file`` are given, or ``tag_map`` with
            either, or a bad mapping.
    """
    if bins not in BINS:
        raise ConfigError(f"bins: must be {' or '.join(map(str, BINS))}, got {bins}")
    if task_file and bins != 4:
        raise ConfigError(f"bins: {bins} names a packaged task file; with --task-file the bins are that file's")
    if tag_map and (task_file or bins != 4):
        raise ConfigError("--tag-map: bins the free-text tags by its own categories; leave out --task-file and --bins")
    mapping = load_tag_map(tag_map) if tag_map else None  # a bad mapping stops before anything is read
    gt = join(root, GROUND_TRUTH)
    vocabulary = {r["label"] for r in read_csv(join(gt, "vocabulary.csv"), ("index", "label", "mid"), header=False)}
    if mapping is None:
        task_file = task_file or bins_task_path(bins)
        task = load_task(task_file)
        unknown = sorted(set().union(*task.class_labels) - vocabulary)
        if unknown:
            raise ManifestError(f"{task_file}: tag(s) not in {join(gt, 'vocabulary.csv')}: {', '.join(unknown)}")
    rows, tags = _read_clips(root, vocabulary, with_tags=mapping is not None)
    if mapping is None:
        manifest = write_manifest(rows, out, "fsd50k", EXTRA)
        _copy(task_file, out)  # beside the manifest: the task the counts were made with
        write_json(tag_bins(task, [r["labels"] for r in rows], [r["fold"] for r in rows]),
                   join(out, "fsd50k_bins.json"))
        return manifest
    chosen, counts = bin_tags(tags, mapping, [r["fold"] for r in rows])
    kept = [{**r, "labels": [mapping.categories[c]], "vocabulary_labels": LABEL_SEPARATOR.join(r["labels"])}
            for r, c in zip(rows, chosen) if c is not None]
    manifest = write_manifest(kept, out, "fsd50k", (*EXTRA, "vocabulary_labels"))
    _copy(mapping.source, out)
    _write_yaml({"name": "fsd50k_tags", "description": f"FSD50K's free-text tags binned by {mapping.source}",
                 "kind": "single_label", "classes": list(mapping.categories)}, join(out, TAG_FILES["task"]))
    write_json(counts, join(out, TAG_FILES["counts"]))
    write_frequency_csv(frequency_rows(tags, chosen, mapping), join(out, TAG_FILES["frequency"]))
    return manifest


def _read_clips(root: str, vocabulary: set[str], with_tags: bool) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Every dev and eval clip as a clip-list row (its vocabulary labels as ``labels``), and, ``with_tags``, each
    one's free-text tags (else empty lists), checked as the module docstring says."""
    gt = join(root, GROUND_TRUTH)
    rows, tags = [], []
    for part, required in (("dev", ("fname", "labels", "mids", "split")), ("eval", ("fname", "labels", "mids"))):
        info = _clips_info(root, part, required=with_tags)
        for r in read_csv(join(gt, f"{part}.csv"), required, what="is ROOT the FSD50K folder?"):
            labels = [t for t in r["labels"].split(",") if t]
            strange = [t for t in labels if t not in vocabulary]
            if strange:
                raise ManifestError(f"{join(gt, part + '.csv')}: clip {r['fname']} has tag {strange[0]!r}, "
                                    "not in vocabulary.csv")
            joined = [t for t in labels if LABEL_SEPARATOR in t]  # the clip list would read it as two labels
            if joined:
                raise ManifestError(f"{r.where}: tag {joined[0]!r} holds {LABEL_SEPARATOR!r}, which separates the "
                                    "labels of a clip in the clip list; rename the tag in vocabulary.csv and "
                                    f"{part}.csv")
            if part == "dev" and r["split"] not in SPLITS:
                raise ManifestError(f"{r.where}: split {r['split']!r} is not one of FSD50K's ({', '.join(SPLITS)})")
            clip = info.get(file_name(r, "fname"), {})
            uploader = str(clip.get("uploader") or "")
            tags.append(_clip_tags(clip, join(root, CLIPS_INFO.format(part=part)) + f": clip {r['fname']}")
                        if with_tags else [])
            rows.append({"clip_id": r["fname"], "uri": join(root, AUDIO[part], f"{r['fname']}.wav"),
                         "labels": labels, "group": f"uploader:{uploader}" if uploader else f"clip:{r['fname']}",
                         "fold": r["split"] if part == "dev" else "eval",
                         "mids": LABEL_SEPARATOR.join(m for m in r["mids"].split(",") if m), "uploader": uploader})
    return rows, tags


def _copy(uri: str, out: str) -> None:
    (src_fs, src), (dst_fs, dst) = filesystem(uri), filesystem(join(out, posixpath.basename(uri)))
    dst_fs.pipe_file(dst, src_fs.cat_file(src))


def _write_yaml(data: dict[str, Any], uri: str) -> None:
    fs, path = filesystem(uri)
    fs.pipe_file(path, yaml.safe_dump(data, sort_keys=False).encode())


def _tag_map(cfg: FSD50KConfig) -> str | None:
    """The mapping the tags are binned by: ``--tag-map``'s, the packaged one with ``--from-tags``, else None."""
    return cfg.tag_map or (tag_map_path() if cfg.from_tags else None)


def run(cfg: FSD50KConfig) -> Prepared:
    """``acoustic-env recipe fsd50k``: :func:`prepare_fsd50k` with the command's config; binned by tags, the summary
    says what the binning kept and dropped, and the most frequent tags."""
    tag_map = _tag_map(cfg)
    manifest = prepare_fsd50k(cfg.root, cfg.out, cfg.task_file, cfg.bins, tag_map)
    return Prepared(manifest, tuple(_tag_lines(cfg.out)) if tag_map else ())


def _tag_lines(out: str) -> list[str]:
    """What the tag binning kept and dropped, and the most frequent tags (the table beside the clip list)."""
    counts = read_json(join(out, TAG_FILES["counts"]))
    categories = sorted(counts["categories"].items(), key=lambda kv: -kv[1])
    table = read_csv(join(out, TAG_FILES["frequency"]), ("scope", "rank", "tag"))
    rows = [{**r, "rank": int(r["rank"])} for r in table]
    return [f"  tags binned into {len(categories)} categories: " + ", ".join(f"{c} {n}" for c, n in categories)
            + f"; {counts['dropped']} clips dropped (no tag in the mapping), {counts['several_categories']} with "
              f"tags of two or more categories (most tags wins; {counts['ties_by_mapping_order']} ties, to the "
              "mapping's first)",
            *top_lines(rows),
            f"  tag frequencies: {join(out, TAG_FILES['frequency'])}; task: {join(out, TAG_FILES['task'])}"]


def plan(cfg: FSD50KConfig) -> dict[str, list[str]]:
    """``recipe fsd50k --dry-run``: the ground truth (and clip info, binned by tags) read, the files written."""
    gt = join(cfg.root, GROUND_TRUTH)
    reads = [join(gt, f"{part}.csv") for part in ("vocabulary", "dev", "eval")]
    writes = [join(cfg.out, "fsd50k.csv")]
    if _tag_map(cfg):
        reads += [join(cfg.root, CLIPS_INFO.format(part=part)) for part in ("dev", "eval")]
        writes += [join(cfg.out, name) for name in TAG_FILES.values()]
    else:
        writes += [join(cfg.out, "fsd50k_bins.json")]
    return plan_lines("fsd50k", reads, writes)
