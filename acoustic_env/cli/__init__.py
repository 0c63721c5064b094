"""The ``acoustic-env`` command. ``jobs/*.py`` call the same functions.

The options of extract, train, audit and annotate are generated from the config
declarations (:mod:`acoustic_env.config`), so a concept has one name on every command
and in every config file. User mistakes (a bad flag or value, an unreadable manifest,
missing weights) end with one line naming the problem and exit status 2, never a
traceback. Building the parser imports no heavy library: a command checks its config,
then imports what it runs, so ``--help`` and a bad value cost a fraction of a second.

The console (see :func:`acoustic_env.distributed.session.quiet_console`): a job prints
one line per phase and its result; Ray's output, library warnings and tracebacks go to
a log file whose path it prints once (``<output>/logs/`` for a local output). ``-v``
puts everything back on the console. A failure that is not a user mistake prints one
line and the log's path, exit status 1. ``--dry-run`` (extract, train, audit, annotate)
prints the plan (:mod:`acoustic_env.jobs.plan`) and starts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

import acoustic_env
from acoustic_env.cli.audioset import add_audioset_parser
from acoustic_env.cli.console import console
from acoustic_env.cli.models import add_models_parser
from acoustic_env.cli.recipes import add_recipe_parsers
from acoustic_env.config import (
    AnnotateConfig,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    FeatureParams,
    ServeConfig,
    TrainConfig,
    WindowParams,
    add_flags,
    flag_help,
    from_args,
    from_dict,
)
from acoustic_env.errors import AuditError, MissingExtraError, WeightsError


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake (imported once a command failed: they pull in pyarrow)."""
    from acoustic_env.audio.manifest import ManifestError
    from acoustic_env.vocabulary.ontology import OntologyError
    from acoustic_env.vocabulary.tasks import TaskError

    return ConfigError, ManifestError, OntologyError, TaskError, AuditError, WeightsError, MissingExtraError


class _Parser(argparse.ArgumentParser):
    """A mistake in the arguments ends in one line too (argparse would print the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _plan_or_check(args: argparse.Namespace, cfg: Any, plan: str) -> bool:
    """``--dry-run``: print the plan, return True (nothing else runs). Otherwise check the paths first."""
    from acoustic_env.jobs import plan as plans
    from acoustic_env.jobs.preflight import preflight

    if args.dry_run:
        print("\n".join(getattr(plans, plan)(cfg)["lines"]))
        return True
    preflight(cfg)  # before the log file is made below the output
    console(args, getattr(cfg, "output", None))
    return False


def cmd_extract(args: argparse.Namespace) -> int:
    cfg = from_args(ExtractConfig, args)
    if _plan_or_check(args, cfg, "plan_extract"):
        return 0
    from acoustic_env.jobs.extract import extract

    result = extract(cfg)
    c = result.counts
    out = result.output.rstrip("/")
    print(f"extract {result.run_id}: {c['ok']} clips extracted, {c['failed']} failed, "
          f"{c['skipped']} already done ({result.wall_s:.1f} s)")
    if result.error_types:
        print("  errors by type: " + ", ".join(f"{k}={v}" for k, v in sorted(result.error_types.items())))
    print(f"  features: {result.features}/  errors: {result.errors}/ ({c['errors_in_output']} clips)  "
          f"record: {out}/runs/{result.run_id}.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.features_impl:  # checked before the data is generated
        from_dict(FeatureParams, {"impl": args.features_impl})
    from acoustic_env.demo.run import run_demo

    console(args, args.output)
    run_demo(Path(args.output), n_clips=args.clips, seed=args.seed, duration_s=args.duration,
             features_impl=args.features_impl, progress=args.progress)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = from_args(TrainConfig, args)
    if _plan_or_check(args, cfg, "plan_train"):
        return 0
    from acoustic_env.jobs.train.job import summary_lines, train

    print("\n".join(summary_lines(train(cfg))))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = from_args(AuditConfig, args)
    if _plan_or_check(args, cfg, "plan_audit"):
        return 0
    from acoustic_env.jobs.audit.job import run_audit, summary_lines

    print("\n".join(summary_lines(run_audit(cfg))))
    return 0


def cmd_audit_review(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.job import rebuild_review
    from acoustic_env.jobs.audit.server import make_server, verdicts_uri
    from acoustic_env.jobs.stop_signals import StopSignals

    if args.review_top is not None or args.random_sample is not None:
        top = AuditConfig.review_top if args.review_top is None else args.review_top
        sample = AuditConfig.random_sample if args.random_sample is None else args.random_sample
        print(f"review page: {rebuild_review(args.audit, top, sample, args.seed)}")
    if args.serve:
        with StopSignals() as stop:  # Ctrl-C or kill: the server stops and releases the audit's lock
            server = make_server(args.audit, args.port)
            print(f"serving the review page at http://127.0.0.1:{server.server_address[1]}/ "
                  f"(verdicts are saved to {verdicts_uri(args.audit)}); Ctrl-C stops", flush=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                stop.wait()
            finally:
                server.shutdown()
                server.server_close()
    return 0


def cmd_audit_estimate(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.estimate import (
        estimate_accuracy,
        estimate_lines,
        on_page,
        read_verdicts,
    )
    from acoustic_env.jobs.audit.review import PAGE, REVIEW_DIR, page_items
    from acoustic_env.storage import filesystem, join, write_json

    records = read_verdicts(args.verdicts)
    beside = args.verdicts[0].rsplit("/", 1)[0] if "/" in args.verdicts[0] else "."
    review_dir = join(args.audit, REVIEW_DIR) if args.audit else beside
    fs, page = filesystem(join(review_dir, PAGE))
    if args.audit or fs.exists(page):
        records, others = on_page(records, page_items(review_dir))
        if others:
            print(f"left out {others} verdicts for clips not in audit {args.audit or review_dir} "
                  "(not on its review page)")
    else:  # nothing to check the clip ids against: a forged or foreign verdict would count unseen
        print(f"note: no review page beside {args.verdicts[0]}: every verdict is counted, whatever its clip; "
              "pass --audit to count only the audit's clips")
    est = estimate_accuracy(records, args.sample, args.method)
    print("\n".join(estimate_lines(est)))
    if args.output:
        write_json(est, args.output)
        print(f"  written to {args.output}")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    cfg = from_args(AnnotateConfig, args)
    if _plan_or_check(args, cfg, "plan_annotate"):
        return 0
    from acoustic_env.jobs.annotate import annotate

    result = annotate(cfg)
    c = result.counts
    if cfg.windows.windows:
        out = cfg.output.rstrip("/")
        print(f"annotate {result.run_id}: {c['annotated']} recordings scored in {c['windows']} windows by model "
              f"{result.model_id}, {c['already_annotated']} annotated earlier, {c['not_annotated_unreadable']} "
              f"unreadable; windows: {out}/window-annotations/, summaries: {out}/window-summaries/")
        return 0
    print(f"annotate {result.run_id}: {c['annotated']} clips annotated ({c['flagged']} flagged against their "
          f"given labels), {c['already_annotated']} already annotated by model {result.model_id}; "
          f"{c['extracted']} newly extracted, {c['extract_skipped']} already in the feature table, "
          f"{c['not_annotated_failed_extract']} failed extraction (see the feature table's errors/)")
    if cfg.lists is not None:
        print(f"  lists: {len(result.lists)} new ({', '.join(result.lists) or 'none'}), "
              f"{len(result.lists_already_done)} recorded earlier in {cfg.output.rstrip('/')}/lists/")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.predict import format_predictions, input_rows, predict
    from acoustic_env.config import IN_PROCESS_MAX

    from acoustic_env.jobs.export import check_table_file

    window = from_args(WindowParams, args)
    if args.save:  # before the scoring, whose result it is to hold
        check_table_file(args.save, "save")
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
    """``predict --windows``: every file scored in windows, in this process; the summary per file on the console."""
    import resource

    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.window_outputs import window_lines, write_selections
    from acoustic_env.jobs.windows import predict_windows

    t0 = time.time()
    result = predict_windows(args.inputs, args.model, window=window, audio_root=args.audio_root,
                             weights_cache=args.weights_cache, device=args.device)
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
    from acoustic_env.jobs.serve import check, serve

    check(cfg)  # a missing model is one line before the log file and Ray
    console(args, None)
    serve(cfg)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.export import export_features

    n, cols = export_features(args.features, args.output, wide=args.wide, task=args.task,
                              feature_groups=args.feature_groups, include_random_weights=args.include_random_weights)
    print(f"export: {n} clips x {cols} columns -> {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="acoustic-env", description=(
        "Feature extraction, environment classification and label audit for audio collections. "
        "New here: `acoustic-env demo`, then the README's guide. `acoustic-env COMMAND --help` lists a "
        "command's options with their defaults. From Python: `import acoustic_env as ae`."))
    parser.add_argument("--version", action="version", version=f"acoustic-env {acoustic_env.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's output, warnings and INFO logs on the console (default: they go to the "
                             "log file each job names)")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, cls, func, summary in (
        ("extract", ExtractConfig, cmd_extract, "extract features from a clip list into Parquet"),
        ("train", TrainConfig, cmd_train,
         "train the environment classifier (PCA + MLP under Ray Tune) with baselines and a report"),
        ("audit", AuditConfig, cmd_audit,
         "rescore the labels out of fold, flag likely wrong ones, write a review page"),
        ("annotate", AnnotateConfig, cmd_annotate,
         "label a new clip list with a trained model (extracts only new clips)"),
    ):
        p = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.",
                           usage="%(prog)s [--config FILE] [options]")
        add_flags(p, cls)
        p.add_argument("--dry-run", action="store_true",
                       help="print what would run (clips to do, columns, resources, weights, outputs) "
                            "without starting Ray or writing anything")
        p.set_defaults(func=func)

    p = sub.add_parser("demo", help="generate labelled synthetic soundscapes and run the jobs on them locally")
    p.add_argument("--output", default="demo-output", help="where the demo writes (default: demo-output)")
    p.add_argument("--clips", type=int, default=200, help="number of clips to generate (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the jobs (default: 0)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default: 10)")
    p.add_argument("--features-impl", help=flag_help(FeatureParams, "impl"))
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("audit-review", help="serve an audit's review page locally (verdicts saved as you click)")
    p.add_argument("--audit", required=True, help="the audit's output directory or URI")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 and save verdicts it posts")
    p.add_argument("--port", type=int, default=8765, help="port for --serve (default: 8765; 0 picks a free one)")
    p.add_argument("--review-top", type=int, help="rebuild the page: " + flag_help(AuditConfig, "review_top"))
    p.add_argument("--random-sample", type=int, help="rebuild the page: " + flag_help(AuditConfig, "random_sample"))
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample when rebuilding (default: 0)")
    p.set_defaults(func=cmd_audit_review)

    p = sub.add_parser("audit-estimate", help="label accuracy per class, with an interval, from review verdicts")
    p.add_argument("--verdicts", required=True, nargs="+", help="verdict file(s): JSON or CSV from the review page")
    p.add_argument("--sample", help="random (unbiased accuracy; the default when present) or suspects (precision of the flags)")
    p.add_argument("--method", default="wilson", help="interval: wilson (default) or bootstrap")
    p.add_argument("--output", help="write the estimate JSON here (the training report reads it)")
    p.add_argument("--audit", help="the audit reviewed: verdicts for clips not on its review page are left out "
                                   "(default: the review page beside the first verdict file, when there is one)")
    p.set_defaults(func=cmd_audit_estimate)

    from acoustic_env.config import DEVICES, IN_PROCESS_MAX

    p = sub.add_parser("predict", help="label audio files, a directory or a clip list with a trained model",
                       usage="%(prog)s FILES|DIR|MANIFEST --model MODEL [options]")
    p.add_argument("inputs", nargs="+", help="audio files, a directory of them, or a clip list (any extract format)")
    p.add_argument("--model", required=True, help="model directory written by train (<output>/model)")
    p.add_argument("--output", help=f"above {IN_PROCESS_MAX} clips the extract job runs first: its output "
                                    "(default: a temporary directory)")
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

    p = sub.add_parser("export", help="write a feature table as one Parquet or CSV file, one named column per value",
                       usage="%(prog)s FEATURES --output FILE [--wide] [options]")
    p.add_argument("features", help="an extract output, its features/ directory, or a Parquet file")
    p.add_argument("--output", required=True, help="a .parquet or .csv file")
    p.add_argument("--wide", action="store_true", help="one column per feature value, named (indices_raw:ACI); "
                                                       "without it, one list column per group (Parquet only)")
    p.add_argument("--task", help="keep only the clips with a target of this task (default: every clip)")
    p.add_argument("--feature-groups", type=lambda v: tuple(filter(None, v.split(","))), default=(),
                   help="groups or sources to export, e.g. indices,mps_fg (default: all)")
    p.add_argument("--include-random-weights", action="store_true",
                   help="also export embedder columns computed with random weights")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve a trained model over HTTP on Ray Serve (JSON API and a browser page)",
                       description="Serve a trained model over HTTP on Ray Serve (JSON API and a browser page).",
                       usage="%(prog)s --model MODEL [options]")
    add_flags(p, ServeConfig)
    p.set_defaults(func=cmd_serve)

    add_models_parser(sub)
    add_recipe_parsers(sub)
    add_audioset_parser(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``acoustic-env`` command and the cluster's ``jobs/*.py``: :func:`main`, then a quick exit.

    Once a job's record is written, a process that imported Ray, pyarrow and scipy spends
    about a second more in Python's own teardown, freeing every module, and Ray's graceful
    shutdown of a local instance 2 s more; and that teardown can abort a finished job with
    status -6 (``terminate called without an active exception``: a native thread, Arrow's
    thread pool as in apache/arrow#34314, still joinable when the C++ runtime exits; 3 of 360
    ``extract --dry-run`` processes over an earlier run's Parquet here, 0 of 180 with this
    exit). The exit handlers run,
    the local instance's processes are then ended at once (``session.run_exit_handlers``: none
    outlives the command), and the process ends without that teardown. Tests and notebooks
    call :func:`main`, which returns and shuts Ray down as usual.
    """
    code = main(argv)
    from acoustic_env.distributed.session import run_exit_handlers  # imports no Ray of its own

    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except Exception as exc:
        from acoustic_env.storage import redact  # the one line quotes URIs: their secrets are *** here too

        if isinstance(exc, _user_errors()):
            print(redact(f"acoustic-env: error: {exc}"), file=sys.stderr)
            return 2
        from acoustic_env.distributed.session import log_file

        log = log_file()
        if log is None:
            raise
        logging.getLogger("traceback").error("%s failed", args.command, exc_info=exc)  # to the log file only
        print(redact(f"acoustic-env: error: {args.command} failed: {type(exc).__name__}: "
                     f"{(str(exc).strip().splitlines() or [''])[0]} (details: {log})"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("acoustic-env: interrupted", file=sys.stderr)
        return 130
