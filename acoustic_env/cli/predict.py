"""``acoustic-env predict | serve``: a trained model on new audio, from the command line or over HTTP."""

from __future__ import annotations

import argparse
import os
import time

from acoustic_env.cli.console import console
from acoustic_env.config import ConfigError, ExtractConfig, ServeConfig, WindowParams, add_flags, flag_help, from_args


def cmd_predict(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.predict import format_predictions, input_rows, predict
    from acoustic_env.config import IN_PROCESS_MAX

    from acoustic_env.jobs.export import check_table_file
    from acoustic_env.jobs.preflight import keep_apart

    window = from_args(WindowParams, args)
    if args.save:  # before the scoring, whose result it is to hold
        check_table_file(args.save, "save")
    keep_apart([*(("inputs", u) for u in args.inputs), ("model", args.model), ("audio-root", args.audio_root)],
               [("save", args.save), ("output", args.output), ("selections", args.selections)])
    if window.windows:
        return _predict_windows(args, window)
    if args.selections:
        raise ConfigError("selections: applies to windows only: add --windows")
    if args.output or len(input_rows(args.inputs, args.audio_root)[0]) > IN_PROCESS_MAX:
        console(args, args.output)  # the extract job runs: Ray's output goes to the log
    t0 = time.time()
    table = predict(args.inputs, args.model, output=args.output, audio_root=args.audio_root,
                    weights_cache=args.weights_cache, device=args.device, top_tags=args.top_tags)
    classes = [c.removeprefix("prob_") for c in table.column_names if c.startswith("prob_")]
    print("\n".join(format_predictions(table, classes)))
    failed = sum(e is not None for e in table["error"].to_pylist())
    print(f"{table.num_rows} clip(s) in {time.time() - t0:.1f} s" + (f", {failed} not scored" if failed else ""))
    if args.save:
        from acoustic_env.jobs.export import write_table

        write_table(table, args.save)
        print(f"  written to {args.save}")
    return 0


def _predict_windows(args: argparse.Namespace, window: WindowParams) -> int:
    """``predict --windows``: every file scored in windows (in this process, or on Ray beyond
    ``--windows-in-process-max`` windows); the summary per file on the console."""
    import resource

    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.window_outputs import window_lines, write_selections
    from acoustic_env.jobs.windows import predict_windows

    t0 = time.time()
    result = predict_windows(args.inputs, args.model, window=window, audio_root=args.audio_root,
                             weights_cache=args.weights_cache, device=args.device, output=args.output,
                             on_ray=lambda: console(args, args.output))
    classes = [c.removeprefix("prob_") for c in result.table.column_names if c.startswith("prob_")]
    print("\n".join(window_lines(result.table, result.summary, classes, result.window_s, result.hop_s)))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{result.table.num_rows} window(s) of {result.summary.num_rows} file(s) in {time.time() - t0:.1f} s, "
          f"peak memory {peak_mib:.0f} MiB")
    if args.save:
        write_table(result.table, args.save)
        stem, ext = os.path.splitext(args.save)
        write_table(result.summary, f"{stem}.summary{ext}")
        print(f"  windows written to {args.save}, the summary per file to {stem}.summary{ext}")
    if args.selections:
        written = write_selections(result.table, args.selections)
        print(f"  {len(written) // 2} Raven selection table(s) and Audacity label file(s) in {args.selections}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = from_args(ServeConfig, args)
    from acoustic_env.web.serve import check, serve

    check(cfg)  # a missing model is one line before the log file and Ray
    console(args, None)
    serve(cfg)
    return 0


def add_predict_parsers(sub: argparse._SubParsersAction) -> None:
    """``predict`` and ``serve`` on the ``acoustic-env`` parser."""
    from acoustic_env.config import DEVICES, IN_PROCESS_MAX

    p = sub.add_parser("predict", help="label audio files, a directory or a clip list with a trained model",
                       usage="%(prog)s FILES|DIR|MANIFEST --model MODEL [options]")
    p.add_argument("inputs", nargs="+", help="audio files, a directory of them, or a clip list (any extract format)")
    p.add_argument("--model", required=True, help="model directory written by train (<output>/model)")
    p.add_argument("--output", help=f"above {IN_PROCESS_MAX} clips the extract job runs first: its output "
                                    "(default: a temporary directory); with --windows, where each span's windows "
                                    "are written as scored, so that a stopped run resumes (default: not written)")
    p.add_argument("--audio-root", help=flag_help(ExtractConfig, "audio_root"))
    p.add_argument("--weights-cache", help=flag_help(ExtractConfig, "weights_cache"))
    p.add_argument("--device", default="cpu", choices=DEVICES,
                   help="embedder device for in-process prediction (default: cpu; auto: CUDA when this machine has it)")
    p.add_argument("--top-tags", type=int, default=3, help="AudioSet tags shown when the model uses a tagger")
    p.add_argument("--save", help="also write the predictions to this .csv or .parquet file (with --windows: "
                                  "the window table, and the summary per file beside it as NAME.summary.csv)")
    p.add_argument("--selections", metavar="DIR", help="with --windows: write a Raven selection table "
                                                       "(<file>.selections.txt) and an Audacity label track "
                                                       "(<file>.labels.txt) per recording into DIR")
    add_flags(p.add_argument_group("windows (long recordings)"), WindowParams, config_file=False)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="serve a trained model over HTTP on Ray Serve (JSON API and a browser page)",
                       description="Serve a trained model over HTTP on Ray Serve (JSON API and a browser page).",
                       usage="%(prog)s --model MODEL [options]")
    add_flags(p, ServeConfig)
    p.set_defaults(func=cmd_serve)
