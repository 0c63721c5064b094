"""``acoustic-env recipe NAME ROOT OUT`` and ``acoustic-env duplicates FEATURES``: their argparse wiring.

The project's command calls :func:`add_recipe_parsers` on its sub-parsers. Nothing
heavy is imported until a command runs (``acoustic-env --help`` stays fast). A bad
layout or value ends in one line naming the file or the flag, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from acoustic_env.jobs.results import EmbeddingsResult
from acoustic_env.recipes import RECIPES


def _recipe(name: str) -> Callable[..., str]:
    module, func = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), func)


def _print_summary(manifest: str) -> None:
    from acoustic_env.recipes.common import summarize

    s = summarize(manifest)
    print(f"{s['clips']} clips, {len(s['labels'])} labels, {s['groups']} groups, folds "
          + ", ".join(f"{k}: {v}" for k, v in s["folds"].items()))
    if s["missing_audio"]:
        print(f"  {s['missing_audio']} audio files are not where the layout puts them "
              "(extract will list them as missing_file)")
    if s["repeated_ids"]:
        print(f"  {s['repeated_ids']} rows repeat the clip id of an earlier row: the metadata lists a file twice "
              "(extract keeps the first row of each and lists the others as duplicate_id)")
    print(f"  manifest: {manifest}")


def cmd_recipe(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.preflight import check_not_in_data

    check_not_in_data(args.out, "out")  # lists (or a table) written among a table's parts or a store's events: no
    if args.recipe == "audioset-embeddings":
        from acoustic_env.jobs.audioset.embeddings import convert

        return _guarded(lambda: _report_embeddings(convert(args.root, args.out, args.class_list, args.part_rows,
                                                           args.keep_frames)))
    options: dict[str, Any] = {}
    if args.recipe == "esc50":
        options["esc10"] = args.esc10
    if args.recipe == "audioset":
        options["lists"] = [s.strip() for s in args.lists.split(",") if s.strip()]
    if args.recipe == "fsd50k":
        from acoustic_env.recipes.fsd50k_tags import tag_map_path

        tag_map = args.tag_map or (tag_map_path() if args.from_tags else None)
        options.update(task_file=args.task_file, bins=args.bins, tag_map=tag_map)
    manifest = _recipe(args.recipe)(args.root, args.out, **options)
    _print_summary(manifest)
    if options.get("tag_map"):
        _print_tags(args.out)
    return 0


def _print_tags(out: str) -> None:
    """What the tag binning kept and dropped, and the most frequent tags (the table beside the clip list)."""
    from acoustic_env.recipes.fsd50k import TAG_FILES
    from acoustic_env.recipes.fsd50k_tags import top_lines
    from acoustic_env.storage import join, read_json
    from acoustic_env.recipes.common import read_csv

    counts = read_json(join(out, TAG_FILES["counts"]))
    categories = sorted(counts["categories"].items(), key=lambda kv: -kv[1])
    print(f"  tags binned into {len(categories)} categories: " + ", ".join(f"{c} {n}" for c, n in categories)
          + f"; {counts['dropped']} clips dropped (no tag in the mapping), {counts['several_categories']} with tags "
            f"of two or more categories (most tags wins; {counts['ties_by_mapping_order']} ties, to the mapping's "
            "first)")
    table = read_csv(join(out, TAG_FILES["frequency"]), ("scope", "rank", "tag"))
    rows = [{**r, "rank": int(r["rank"])} for r in table]
    print("\n".join(top_lines(rows)))
    print(f"  tag frequencies: {join(out, TAG_FILES['frequency'])}; task: {join(out, TAG_FILES['task'])}")


def _report_embeddings(result: EmbeddingsResult) -> int:
    c = result.counts
    print(f"run {result.run_id}: {c['segments']} segments from {c['files'] - c['files_skipped']} TFRecord file(s) "
          f"({c['files_skipped']} already converted) into {c['parts']} part(s), {result.wall_s:.1f} s")
    print(f"  features: {result.output.rstrip('/')}/features/  (column audioset_vggish: mean and max)")
    return 0


def _guarded(run: Callable[[], int]) -> int:
    """A damaged input file is a user's problem too: one line, status 2."""
    from acoustic_env.errors import DamagedFileError

    try:
        return run()
    except DamagedFileError as exc:
        print(f"acoustic-env: error: {exc}", file=sys.stderr)
        return 2


def cmd_duplicates(args: argparse.Namespace) -> int:
    from acoustic_env.config import ConfigError
    from acoustic_env.jobs.export import check_table_file
    from acoustic_env.jobs.preflight import keep_apart

    if args.chunks == bool(args.column):
        raise ConfigError("column: compares the vector columns named; --chunks compares MFCC chunks of each clip "
                          "instead: give one of the two" if args.chunks else "column: required (or --chunks)")
    keep_apart([("features", args.features)], [("output", args.output)])
    check_table_file(args.output)  # before the search, not after it
    return _chunk_duplicates(args) if args.chunks else _clip_duplicates(args)


def _clip_duplicates(args: argparse.Namespace) -> int:
    """One vector per clip (``learn.duplicates``)."""
    from acoustic_env.config import ConfigError
    from acoustic_env.jobs.export import write_table
    from acoustic_env.learn.duplicates import DEFAULT_THRESHOLD, pairs_table
    from acoustic_env.table import read_features

    if args.min_share is not None:
        raise ConfigError("min_share: applies to --chunks only")
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not 0 <= threshold < 2:
        raise ConfigError(f"threshold: must be in [0, 2), got {threshold}")
    columns = [c.strip() for c in args.column.split(",") if c.strip()]
    try:
        features = read_features(args.features, feature_groups=columns, include_random_weights=True)
    except ConfigError as e:  # the reader names its field feature_groups; here that is the flag --column
        if not str(e).startswith("feature_groups:"):
            raise
        raise ConfigError(f"column:{str(e).removeprefix('feature_groups:')}") from None
    pairs = pairs_table(features, threshold, list(features.columns))  # a source (mps) names several columns
    write_table(pairs, args.output)
    print(f"{pairs.num_rows} near-duplicate pairs among {len(features)} clips "
          f"(mean cosine distance <= {threshold} over {', '.join(features.columns)}): {args.output}")
    return 0


def _chunk_duplicates(args: argparse.Namespace) -> int:
    """Chunk by chunk (``learn.duplicate_chunks``): time-shifted and partial copies too."""
    import numpy as np

    from acoustic_env.config import ConfigError
    from acoustic_env.jobs.duplicate_frames import read_chunks
    from acoustic_env.learn.duplicate_chunks import CHUNK_THRESHOLD, MIN_SHARE, chunk_pairs_table, rule
    from acoustic_env.jobs.export import write_table
    from acoustic_env.storage import redact
    from acoustic_env.table import selection

    threshold = CHUNK_THRESHOLD if args.threshold is None else args.threshold
    min_share = MIN_SHARE if args.min_share is None else args.min_share
    if not 0 <= threshold < 2:
        raise ConfigError(f"threshold: must be in [0, 2), got {threshold}")
    if not 0 < min_share <= 1:
        raise ConfigError(f"min_share: must be in (0, 1], got {min_share}")
    chosen = selection(args.features)  # every clip, no vector read
    facts = chosen.facts
    groups = np.array([g or f"clip:{c}" for g, c in zip(facts["group"].to_pylist(), facts["clip_id"].to_pylist())],
                      dtype=object)  # as table.read_features names a clip without a group
    frames = read_chunks(chosen.table, facts)
    pairs = chunk_pairs_table(frames, np.asarray(facts["clip_id"].to_pylist(), dtype=object), groups, threshold,
                              min_share)
    write_table(pairs, args.output)
    read = ", ".join(f"{n} from the {s}" for s, n in frames.sources.items() if n and s != "unread")
    print(f"{pairs.num_rows} near-duplicate pairs among {len(groups)} clips ({rule(threshold, min_share)}; "
          f"frames: {read or 'none'}): {args.output}")
    if frames.sources["unread"]:
        print(redact(f"  {frames.sources['unread']} clip(s) could not be read and are in no pair, e.g. "
                     f"{frames.first_unread}"))  # the reason may quote a URI
    return 0


def add_recipe_parsers(sub: Any) -> None:
    """Add ``recipe`` (one sub-command per collection) and ``duplicates`` to the command's sub-parsers."""
    p = sub.add_parser("recipe", help="turn a public collection's layout into a clip list (or AudioSet's "
                                      "released embeddings into a feature table)")
    recipes = p.add_subparsers(dest="recipe", required=True)
    helps = {"urbansound8k": "UrbanSound8K: metadata/UrbanSound8K.csv, audio/fold1..10 (fold, group = fsID)",
             "esc50": "ESC-50 / ESC-10: meta/esc50.csv, audio/ (fold 1-5, group = src_file)",
             "fsd50k": "FSD50K: FSD50K.ground_truth/{dev,eval,vocabulary}.csv, *_audio/ (fold = split), tag bins",
             "audioset": "AudioSet segment lists in ROOT, audio in ROOT/audio/<list>/<YTID>_<start ms>.<ext>",
             "audioset-embeddings": "AudioSet's released VGGish embeddings (TFRecord files) → a feature table"}
    for name, text in helps.items():
        r = recipes.add_parser(name, help=text, description=text + ".")
        r.add_argument("root", metavar="TFRECORDS" if name == "audioset-embeddings" else "ROOT",
                       help="a TFRecord file or a directory of them (local or object storage)"
                       if name == "audioset-embeddings" else "the collection's folder (local or object storage)")
        r.add_argument("out", metavar="OUT", help="where the output goes (a directory or URI)")
        if name == "esc50":
            r.add_argument("--esc10", action="store_true", help="only the ESC-10 subset (writes esc10.csv)")
        if name == "audioset":
            r.add_argument("--lists", default="balanced_train,unbalanced_train,eval",
                           help="segment lists to include (default: all three, those present)")
        if name == "fsd50k":
            r.add_argument("--task-file", help="another tag-binning task file (default: fsd50k_environment.yaml)")
            r.add_argument("--bins", type=int, choices=(4, 8), default=4,
                           help="the packaged tag binning: 4 classes (fsd50k_environment.yaml, the default) or 8 "
                                "(fsd50k_eight_bins.yaml: this project's reading of the FSD50K study's eight)")
            r.add_argument("--from-tags", action="store_true",
                           help="label each clip by its free-text Freesound tags (FSD50K.metadata), binned into the "
                                "packaged eight categories, music included (fsd50k_tag_categories.yaml); clips with "
                                "no listed tag are dropped and counted; writes a tag-frequency table")
            r.add_argument("--tag-map", metavar="FILE",
                           help="as --from-tags, with your own YAML of category -> tags (copy the packaged one)")
        if name == "audioset-embeddings":
            r.add_argument("--class-list", help="class_labels_indices.csv (default: the package's copy)")
            r.add_argument("--part-rows", type=int, default=20_000, help="segments per Parquet part (default: 20000)")
            r.add_argument("--keep-frames", action="store_true",
                           help="also keep the ten 1-s frames of each full segment in OUT/frames/ "
                                "(for `acoustic-env audioset frames`)")
    p.set_defaults(func=cmd_recipe)

    p = sub.add_parser("duplicates", help="find near-duplicate clips in a feature table by nearest neighbours")
    p.add_argument("features", metavar="FEATURES", help="an extract output, its features/ directory or a Parquet file")
    p.add_argument("--column", help="vector column(s), comma-separated (e.g. vggish or indices_raw,mps_raw)")
    p.add_argument("--chunks", action="store_true",
                   help="compare the clips chunk by chunk instead (1-s MFCC chunks of the table's log-mel images, or "
                        "of the audio when it has none): finds time-shifted and partial copies too")
    p.add_argument("--output", required=True, help="a .parquet or .csv file of the pairs (clip_a, clip_b, distance, "
                                                   "group_a, group_b; with --chunks also share)")
    p.add_argument("--threshold", type=float,
                   help="largest mean cosine distance of a near-duplicate pair (default: "
                        "acoustic_env.learn.duplicates.DEFAULT_THRESHOLD, 0.05), or with --chunks of two matching "
                        "chunks (acoustic_env.learn.duplicate_chunks.CHUNK_THRESHOLD, 0.015); see docs/duplicates.md")
    p.add_argument("--min-share", type=float,
                   help="with --chunks: the share of the shorter clip's chunks that must match (default 0.5)")
    p.set_defaults(func=cmd_duplicates)
