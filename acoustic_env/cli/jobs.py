"""``acoustic-env extract | train | audit | annotate | demo | export | search``: the jobs over clip lists and
feature tables.

The catalogued jobs (``jobs/catalog.py``: extract, train, audit, annotate, and any registered) take every option from
their config's declarations and ``--dry-run`` (the plan, starting nothing); each command checks its config, then
imports what it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from acoustic_env.cli.console import console
from acoustic_env.config import FeatureParams, SearchConfig, add_flags, flag_help, from_args, from_dict
from acoustic_env.jobs import catalog
from acoustic_env.jobs.catalog import JobSpec
from acoustic_env.storage import redact


def _plan_or_check(args: argparse.Namespace, cfg: Any, spec: JobSpec) -> bool:
    """``--dry-run``: print the plan, return True (nothing else runs). Otherwise check the paths first."""
    from acoustic_env.jobs.preflight import preflight

    if args.dry_run:
        print("\n".join(spec.plan(cfg)["lines"]))
        return True
    preflight(cfg)  # before the log file is made below the output
    console(args, getattr(cfg, "output", None))
    return False


def cmd_demo(args: argparse.Namespace) -> int:
    if args.features_impl:  # checked before the data is generated
        from_dict(FeatureParams, {"impl": args.features_impl})
    from acoustic_env.demo.run import run_demo

    console(args, args.output)
    run_demo(Path(args.output), n_clips=args.clips, seed=args.seed, duration_s=args.duration,
             features_impl=args.features_impl, progress=args.progress)
    return 0


def _command(spec: JobSpec) -> Callable[[argparse.Namespace], int]:
    """The command of a catalogued job: its config from the flags, the dry run or the path checks, the job, and the
    lines that say what it did."""

    def command(args: argparse.Namespace) -> int:
        cfg = from_args(spec.config, args)
        if _plan_or_check(args, cfg, spec):
            return 0
        print(redact("\n".join(spec.lines(spec.run(cfg)))))  # the lines quote URIs: never their secrets
        return 0

    return command


def cmd_export(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.export import export_features

    n, cols = export_features(args.features, args.output, wide=args.wide, task=args.task,
                              feature_groups=args.feature_groups, include_random_weights=args.include_random_weights)
    print(f"export: {n} clips x {cols} columns -> {args.output}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    cfg = from_args(SearchConfig, args)
    if args.dry_run:
        from acoustic_env.jobs.plan import plan_search

        print("\n".join(plan_search(cfg)["lines"]))
        return 0
    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.search import result_lines, search, write_page

    found = search(cfg)
    print("\n".join(result_lines(found, cfg.example)))
    if cfg.save:
        write_table(found.table, cfg.save)
        print(f"  written to {cfg.save}")
    if cfg.page:
        print(f"  page: {write_page(found, cfg.page, cfg.example)}")
    return 0


def add_job_parsers(sub: argparse._SubParsersAction) -> None:
    """The jobs' sub-commands on the ``acoustic-env`` parser."""
    for spec in catalog.specs():
        p = sub.add_parser(spec.name, help=spec.summary, description=f"{spec.summary[0].upper()}{spec.summary[1:]}.",
                           usage=spec.usage)
        add_flags(p, spec.config)
        p.add_argument("--dry-run", action="store_true",
                       help="print what would run (clips to do, columns, resources, weights, outputs) "
                            "without starting Ray or writing anything")
        p.set_defaults(func=_command(spec))

    p = sub.add_parser("demo", help="generate labelled synthetic soundscapes and run the jobs on them locally")
    p.add_argument("--output", default="demo-output", help="where the demo writes (default: demo-output)")
    p.add_argument("--clips", type=int, default=200, help="number of clips to generate (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the jobs (default: 0)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default: 10)")
    p.add_argument("--features-impl", help=flag_help(FeatureParams, "impl"))
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.set_defaults(func=cmd_demo)

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

    summary = "the clips of a feature table nearest to an example clip or audio file, by an embedder's embeddings"
    p = sub.add_parser("search", help=summary, description=f"{summary[0].upper()}{summary[1:]}.",
                       usage="%(prog)s --features TABLE --example CLIP_OR_FILE [--embedder NAME] [-k 20] [options]")
    add_flags(p, SearchConfig)
    p.add_argument("--dry-run", action="store_true", help="print what would be searched and how, reading no vector")
    p.set_defaults(func=cmd_search)
