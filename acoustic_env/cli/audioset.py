"""``acoustic-env audioset sample|fetch|rescore|frames``: from AudioSet's segment lists to clips, and back to a rescored list.

The flags come from the configs' declarations (:mod:`acoustic_env.config.audioset`);
a bad value, list or task ends in one line naming it (the command's error policy in
:mod:`acoustic_env.cli`). Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from acoustic_env.config import from_args
from acoustic_env.config.flags import add_config_commands
from acoustic_env.config.audioset import FetchConfig, FramesConfig, RescoreConfig, SampleConfig


def cmd_sample(args: argparse.Namespace) -> int:
    from acoustic_env.audioset.sample import report_uri, sample_segments, summary_lines
    from acoustic_env.jobs.preflight import check_sample_paths

    cfg = from_args(SampleConfig, args)
    check_sample_paths(cfg)  # an output that is an input, a directory or unwritable: one line before the list is read
    result = sample_segments(cfg)
    print("\n".join(summary_lines(result.report)))
    print(f"  sample: {cfg.output}\n  report: {report_uri(cfg.output)}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from acoustic_env.cli.console import console
    from acoustic_env.jobs.audioset.fetch import check_paths, fetch, summary_lines

    cfg = from_args(FetchConfig, args)
    check_paths(cfg)  # before the log file is made below the output
    console(args, cfg.output)
    print("\n".join(summary_lines(fetch(cfg, progress=print))))
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audioset.rescored import accuracy_uri, rescored_list
    from acoustic_env.jobs.preflight import preflight

    cfg = from_args(RescoreConfig, args)
    preflight(cfg)
    accuracy = rescored_list(cfg.audit, cfg.output, list(cfg.verdicts), cfg.method)
    print(f"{accuracy['clips']} clips, {accuracy['reviewed']} reviewed: {cfg.output}")
    if accuracy["verdicts_left_out"]:
        print(f"  left out {accuracy['verdicts_left_out']} verdicts for clips not in audit {cfg.audit} "
              "(not on its review page)")
    print(f"  label accuracy per class: {accuracy_uri(cfg.output)} (also in the file's header)")
    return 0


def cmd_frames(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audioset.frames import compare_frames, table
    from acoustic_env.jobs.preflight import preflight

    cfg = from_args(FramesConfig, args)
    preflight(cfg)
    r = compare_frames(cfg)
    why = "no class" if cfg.multi_label else "no class or ambiguous"
    print(f"{r['clips']} clips with ten frames ({r['left_out']} left out: {why}), task {r['task']}; "
          f"test {r['split']['test']} clips")
    if r["oversampled"] is not None:
        added = ", ".join(f"{c} +{n}" for c, n in r["oversampled"].items()) or "none: the classes are balanced"
        print(f"  training rows added by shuffling seconds: {added}")
    print(table(r["results"]))
    print(f"  comparison: {cfg.output}")
    return 0


def add_audioset_parser(sub: Any) -> None:
    """Add ``audioset`` with its ``sample``, ``fetch`` and ``rescore`` sub-commands to the command's sub-parsers."""
    p = sub.add_parser("audioset", help="sample AudioSet's segment lists for a task, fetch the clips, "
                                        "write the rescored label list after an audit")
    commands = p.add_subparsers(dest="audioset_command", required=True)
    add_config_commands(commands, (
        ("sample", SampleConfig, cmd_sample,
         "draw a task's clips from a segment list (per-class targets, balanced, seeded; one streaming pass)"),
        ("fetch", FetchConfig, cmd_fetch,
         "download a segment list's 10-s clips with a downloader command (yt-dlp + ffmpeg by default), "
         "resumable; writes a manifest extract takes"),
        ("rescore", RescoreConfig, cmd_rescore,
         "write the rescored label list of an audit: given labels, score, suspected, the label the review settled, "
         "and the label accuracy per class with its interval"),
        ("frames", FramesConfig, cmd_frames,
         "compare networks over the released embeddings' ten frames (a small CNN, the study's fully connected "
         "net and CNN) with the pooled vector, on one split"),
    ))
