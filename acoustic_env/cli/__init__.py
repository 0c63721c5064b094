"""The ``acoustic-env`` command. ``jobs/*.py`` call the same functions.

The options of extract, train, audit and annotate are generated from the config
declarations (:mod:`acoustic_env.config`), so a concept has one name on every command
and in every config file. User mistakes (a bad flag or value, an unreadable manifest,
missing weights) end with one line naming the problem and exit status 2, never a
traceback. Building the parser imports no heavy library: a command checks its config,
then imports what it runs, so ``--help`` and a bad value cost a fraction of a second.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import NoReturn, Sequence

import acoustic_env
from acoustic_env.cli.models import add_models_parser
from acoustic_env.config import (
    AnnotateConfig,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    FeatureParams,
    TrainConfig,
    add_flags,
    flag_help,
    from_args,
    from_dict,
)
from acoustic_env.errors import AuditError, WeightsError


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake (imported once a command failed: they pull in pyarrow)."""
    from acoustic_env.audio.manifest import ManifestError
    from acoustic_env.audioset.ontology import OntologyError
    from acoustic_env.audioset.tasks import TaskError

    return ConfigError, ManifestError, OntologyError, TaskError, AuditError, WeightsError


class _Parser(argparse.ArgumentParser):
    """A mistake in the arguments ends in one line too (argparse would print the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_extract(args: argparse.Namespace) -> int:
    cfg = from_args(ExtractConfig, args)
    from acoustic_env.jobs.extract import extract

    record = extract(cfg)
    c = record["counts"]
    out = record["config"]["output"].rstrip("/")
    print(f"run {record['run_id']}: {c['ok']} clips extracted, {c['failed']} failed, "
          f"{c['skipped']} already done ({record['wall_s']:.1f} s)")
    if record["error_types"]:
        print("  errors by type: " + ", ".join(f"{k}={v}" for k, v in sorted(record["error_types"].items())))
    print(f"  features: {out}/features/  errors: {out}/errors/  record: {out}/runs/{record['run_id']}.json")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.features_impl:  # checked before the data is generated
        from_dict(FeatureParams, {"impl": args.features_impl})
    from acoustic_env.demo.run import run_demo

    run_demo(Path(args.output), n_clips=args.clips, seed=args.seed, duration_s=args.duration,
             features_impl=args.features_impl, progress=args.progress)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = from_args(TrainConfig, args)
    from acoustic_env.jobs.train.job import summary_lines, train

    print("\n".join(summary_lines(train(cfg))))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    cfg = from_args(AuditConfig, args)
    from acoustic_env.jobs.audit.job import run_audit, summary_lines

    print("\n".join(summary_lines(run_audit(cfg))))
    return 0


def cmd_audit_review(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.job import rebuild_review
    from acoustic_env.jobs.audit.server import make_server, verdicts_uri

    if args.review_top is not None or args.random_sample is not None:
        top = AuditConfig.review_top if args.review_top is None else args.review_top
        sample = AuditConfig.random_sample if args.random_sample is None else args.random_sample
        print(f"review page: {rebuild_review(args.audit, top, sample, args.seed)}")
    if args.serve:
        server = make_server(args.audit, args.port)
        print(f"serving the review page at http://127.0.0.1:{server.server_address[1]}/ "
              f"(verdicts are saved to {verdicts_uri(args.audit)}); Ctrl-C stops")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


def cmd_audit_estimate(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.estimate import (
        estimate_accuracy,
        estimate_lines,
        read_verdicts,
    )
    from acoustic_env.storage import write_json

    est = estimate_accuracy(read_verdicts(args.verdicts), args.sample, args.method)
    print("\n".join(estimate_lines(est)))
    if args.output:
        write_json(est, args.output)
        print(f"  written to {args.output}")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    cfg = from_args(AnnotateConfig, args)
    from acoustic_env.jobs.annotate import annotate

    record = annotate(cfg)
    c = record["counts"]
    print(f"annotate {record['run_id']}: {c['annotated']} clips annotated ({c['flagged']} flagged against their "
          f"given labels), {c['already_annotated']} already annotated by model {record['model_id']}; "
          f"{c['extracted']} newly extracted, {c['extract_skipped']} already in the feature table, "
          f"{c['not_annotated_failed_extract']} failed extraction (see the feature table's errors/)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="acoustic-env", description=acoustic_env.__doc__)
    parser.add_argument("--version", action="version", version=f"acoustic-env {acoustic_env.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
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
    p.set_defaults(func=cmd_audit_estimate)

    add_models_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"acoustic-env: error: {exc}", file=sys.stderr)
        return 2
