"""The ``acoustic-env`` command. ``jobs/*.py`` call the same functions.

User mistakes (a bad config value, an unreadable manifest, missing weights)
end with one line naming the problem and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from acoustic_env.audio.manifest import ManifestError
from acoustic_env.audioset.ontology import OntologyError
from acoustic_env.audioset.tasks import TaskError
from acoustic_env.audit.config import AuditError
from acoustic_env.config import ConfigError, extract_config_from_dict, load_config_file
from acoustic_env.errors import WeightsError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, ManifestError, OntologyError, TaskError, AuditError,
                                            WeightsError)


def _config_data(args: argparse.Namespace, names: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
    """The --config file's fields, overridden by the flags given; one line when a required field is missing."""
    data: dict[str, Any] = load_config_file(args.config) if getattr(args, "config", None) else {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    for name in required:
        if not data.get(name):
            raise ConfigError(f"{name}: is required (--{name.replace('_', '-')} or in --config)")
    return data


def _add_extract_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON file with any ExtractConfig field (flags override it)")
    p.add_argument("--manifest", help="clip list: AudioSet segment CSV, CSV/Parquet/JSONL with uri+labels, or a directory")
    p.add_argument("--audio-root", help="where the audio files are (local path or s3://, gs://, https://)")
    p.add_argument("--output", help="output directory or URI (features/, errors/, runs/ go below it)")
    p.add_argument("--manifest-format", choices=["auto", "audioset", "csv", "parquet", "jsonl", "directory"])
    p.add_argument("--path-template", help="AudioSet row → file, default {audio_root}/{YTID}_{start_ms}.{ext}")
    p.add_argument("--cut-segments", action="store_true", default=None,
                   help="files hold the whole video: cut start_seconds..end_seconds out of them")
    p.add_argument("--ontology", help="ontology.json path or URL (default: the official URL; only needed for display-name labels)")
    p.add_argument("--limit", type=int, help="process only the first N clips of the manifest")
    p.add_argument("--batch-size", type=int, help="clips per batch (default 4)")
    p.add_argument("--write-batch-size", type=int, help="rows per Parquet part written (default 64)")
    p.add_argument("--features-impl", choices=["reference", "fast"], help="CPU feature implementation")
    p.add_argument("--signals", help="comma-separated subset of raw,fg,bg (default all three)")
    p.add_argument("--embedders", help="comma-separated subset of vggish,yamnet,panns (default none)")
    p.add_argument("--allow-random-weights", action="store_true", default=None,
                   help="run embedders with random weights when checkpoints are missing (recorded as 'random')")
    p.add_argument("--weights-cache", help="model cache directory or URI")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="embedder device (default: GPU when the cluster has one)")
    p.add_argument("--accelerator-resource", help="cluster resource that marks an accelerator (default GPU)")
    p.add_argument("--embed-batch-size", type=int, help="clips per embedder batch (default 16)")
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")


def extract_config_from_args(args: argparse.Namespace) -> Any:
    simple = ("manifest", "audio_root", "output", "manifest_format", "path_template", "cut_segments", "ontology",
              "limit", "batch_size", "write_batch_size", "allow_random_weights", "weights_cache", "device",
              "ray_address", "progress",
              "accelerator_resource", "embed_batch_size")
    data = _config_data(args, simple, required=("manifest", "output"))
    if args.embedders is not None:
        data["embedders"] = tuple(e.strip() for e in args.embedders.split(",") if e.strip())
    features = dict(data.get("features") or {})
    if args.features_impl:
        features["impl"] = args.features_impl
    if args.signals:
        features["signals"] = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    data["features"] = features
    return extract_config_from_dict(data)


def cmd_extract(args: argparse.Namespace) -> int:
    from acoustic_env.extract import extract

    record = extract(extract_config_from_args(args))
    _print_summary(record)
    return 0


def _print_summary(record: dict[str, Any]) -> None:
    c = record["counts"]
    out = record["config"]["output"]
    print(f"run {record['run_id']}: {c['ok']} clips extracted, {c['failed']} failed, "
          f"{c['skipped']} already done ({record['wall_s']:.1f} s)")
    if record["error_types"]:
        print("  errors by type: " + ", ".join(f"{k}={v}" for k, v in sorted(record["error_types"].items())))
    print(f"  features: {out.rstrip('/')}/features/  errors: {out.rstrip('/')}/errors/  "
          f"record: {out.rstrip('/')}/runs/{record['run_id']}.json")


def cmd_demo(args: argparse.Namespace) -> int:
    from acoustic_env.demo.run import run_demo

    run_demo(Path(args.output), n_clips=args.clips, seed=args.seed, duration_s=args.duration,
             features_impl=args.features_impl, progress=args.progress)
    return 0


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON file with any TrainConfig field (flags override it)")
    p.add_argument("--features", help="feature table: an extract output or its features/ directory (local or s3://)")
    p.add_argument("--output", help="output directory or URI (model/, report/, runs/ go below it)")
    p.add_argument("--task", help="built-in task name or task YAML file (default urban_natural)")
    p.add_argument("--ontology", help="ontology.json path or URL (only for tasks with display names or descendants)")
    p.add_argument("--groups", help="comma-separated sources or columns, e.g. indices,mps_fg,vggish (default: all)")
    p.add_argument("--signals", help="comma-separated subset of raw,fg,bg for indices and MPS (default all three)")
    p.add_argument("--pca", help="components per source: a count or a variance fraction, e.g. indices=20,mps=0.95 "
                                 "(defaults indices=20,mps=10,vggish=128,yamnet=400,panns=400)")
    p.add_argument("--test-size", type=float, help="test fraction when no --test-list is given (default 0.2)")
    p.add_argument("--val-size", type=float, help="validation fraction of the non-test clips (default 0.2)")
    p.add_argument("--test-list", help="clip ids for the test split: AudioSet segment CSV, CSV with clip_id, or one per line")
    p.add_argument("--seed", type=int, help="seed of the splits, the search and the networks (default 0)")
    p.add_argument("--trials", type=int, help="search trials (default 8; 0 trains once with default hyper-parameters)")
    p.add_argument("--time-budget", dest="time_budget_s", type=float, help="search time budget in seconds (default 900)")
    p.add_argument("--max-concurrent-trials", type=int, help="trials at once (default 0: one per two CPUs)")
    p.add_argument("--max-rounds", type=int, help="validation rounds per run at most (default 30)")
    p.add_argument("--grace-rounds", type=int, help="rounds before early termination may stop a trial (default 3)")
    p.add_argument("--patience", type=int, help="rounds without improvement before a run stops (default 6)")
    p.add_argument("--steps-per-round", type=int, help="optimizer steps per validation round at least (default 50)")
    p.add_argument("--workers", type=int, help="Ray Train workers per run (default 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="training device (default: GPU when the cluster has one)")
    p.add_argument("--baselines", help="comma-separated subset of logreg,xgboost (default both; empty for none)")
    p.add_argument("--no-ablations", dest="ablations", action="store_false", default=None, help="skip the feature-group ablations")
    p.add_argument("--shap-samples", type=int, help="test clips explained with SHAP (default 100; 0 skips SHAP)")
    p.add_argument("--label-accuracy", help="the audit's label-accuracy estimate (JSON): adds adjusted accuracy to the report")
    p.add_argument("--memory-gb", type=float, help="above this many GiB of raw features, fit PCA incrementally (default 4)")
    p.add_argument("--work-dir", help="Ray Tune/Train run directory (default <output>/ray; shared storage on a multi-node cluster)")
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")


def train_config_from_args(args: argparse.Namespace) -> Any:
    from acoustic_env.train.config import train_config_from_dict

    data = _config_data(args, ("features", "output", "task", "ontology", "groups", "signals", "pca", "test_size", "val_size",
                 "test_list", "seed", "trials", "time_budget_s", "max_concurrent_trials", "max_rounds", "grace_rounds",
                 "patience", "steps_per_round", "workers", "device", "baselines", "ablations", "shap_samples",
                 "label_accuracy", "memory_gb", "work_dir", "ray_address", "progress"), required=("features", "output"))
    return train_config_from_dict(data)


def cmd_train(args: argparse.Namespace) -> int:
    from acoustic_env.train.job import summary_lines, train

    print("\n".join(summary_lines(train(train_config_from_args(args)))))
    return 0


def _add_audit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON file with any AuditConfig field (flags override it)")
    p.add_argument("--features", help="feature table: an extract output, its features/ directory, or a Parquet file")
    p.add_argument("--output", help="audit output directory or URI (audit.parquet, summary.json, review/)")
    p.add_argument("--task", help="built-in task name or task YAML file (default urban_natural)")
    p.add_argument("--ontology", help="ontology.json path or URL (only for tasks with display names or descendants)")
    p.add_argument("--model", help="out-of-fold model: logreg (default, fast), xgboost or mlp")
    p.add_argument("--folds", type=int, help="number of cross-fitting folds (default 5)")
    p.add_argument("--seed", type=int, help="seed of the folds, the model and the random review sample (default 0)")
    p.add_argument("--feature-groups", help="comma-separated feature columns or prefixes, e.g. indices,mps_fg,vggish "
                                            "(default: every vector except *_scores)")
    p.add_argument("--filter-by", help="cleanlab flagging rule (default prune_by_noise_rate)")
    p.add_argument("--review-top", type=int, help="suspects on the review page (default 50)")
    p.add_argument("--random-sample", type=int, help="randomly drawn clips on the review page (default 100)")
    p.add_argument("--parallel", help="sequential (default) or ray: run the folds as Ray tasks")
    p.add_argument("--ray-address", help="Ray cluster address for --parallel ray (default: RAY_ADDRESS, else local)")


def audit_config_from_args(args: argparse.Namespace) -> Any:
    from acoustic_env.audit.config import audit_config_from_dict

    data = _config_data(args, ("features", "output", "task", "ontology", "model", "folds", "seed", "feature_groups", "filter_by",
                 "review_top", "random_sample", "parallel", "ray_address"), required=("features", "output"))
    return audit_config_from_dict(data)


def cmd_audit(args: argparse.Namespace) -> int:
    from acoustic_env.audit.job import run_audit, summary_lines

    print("\n".join(summary_lines(run_audit(audit_config_from_args(args)))))
    return 0


def cmd_audit_review(args: argparse.Namespace) -> int:
    from acoustic_env.audit.job import rebuild_review
    from acoustic_env.audit.server import make_server, verdicts_uri

    if args.top is not None or args.random_sample is not None:
        page = rebuild_review(args.audit, 50 if args.top is None else args.top,
                              100 if args.random_sample is None else args.random_sample, args.seed)
        print(f"review page: {page}")
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
    from acoustic_env.audit.estimate import (
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
    from acoustic_env.annotate import annotate, annotate_config_from_dict

    extract_fields = ("audio_root", "manifest_format", "path_template", "cut_segments", "ontology",
                      "allow_random_weights", "weights_cache", "device", "ray_address", "progress")
    data = _config_data(args, ("manifest", "model", "features", "output", "flag_threshold"))
    extract_opts = dict(data.get("extract") or {})
    extract_opts.update({k: getattr(args, k) for k in extract_fields if getattr(args, k) is not None})
    data["extract"] = extract_opts
    record = annotate(annotate_config_from_dict(data))
    c = record["counts"]
    print(f"annotate {record['run_id']}: {c['annotated']} clips annotated ({c['flagged']} flagged against their "
          f"given labels), {c['already_annotated']} already annotated by model {record['model_id']}; "
          f"{c['extracted']} newly extracted, {c['extract_skipped']} already in the feature table, "
          f"{c['not_annotated_failed_extract']} failed extraction (see the feature table's errors/)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acoustic-env", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="extract features from a clip list into Parquet")
    _add_extract_options(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("demo", help="generate labelled synthetic soundscapes and run the jobs on them locally")
    p.add_argument("--output", default="demo-output", help="where the demo writes (default ./demo-output)")
    p.add_argument("--clips", type=int, default=200, help="number of clips to generate (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--features-impl", choices=["reference", "fast"], default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train the environment classifier (PCA + MLP under Ray Tune) with baselines and a report")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("audit", help="rescore the labels out of fold, flag likely wrong ones, write a review page")
    _add_audit_options(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("audit-review", help="serve an audit's review page locally (verdicts saved as you click)")
    p.add_argument("--audit", required=True, help="the audit's output directory or URI")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 and save verdicts it posts")
    p.add_argument("--port", type=int, default=8765, help="port for --serve (default 8765; 0 picks a free one)")
    p.add_argument("--top", type=int, help="rebuild the page with this many suspects")
    p.add_argument("--random-sample", type=int, help="rebuild the page with this many random clips")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample when rebuilding (default 0)")
    p.set_defaults(func=cmd_audit_review)

    p = sub.add_parser("audit-estimate", help="label accuracy per class, with an interval, from review verdicts")
    p.add_argument("--verdicts", required=True, nargs="+", help="verdict file(s): JSON or CSV from the review page")
    p.add_argument("--sample", help="random (unbiased accuracy; the default when present) or suspects (precision of the flags)")
    p.add_argument("--method", default="wilson", help="interval: wilson (default) or bootstrap")
    p.add_argument("--output", help="write the estimate JSON here (the training report reads it)")
    p.set_defaults(func=cmd_audit_estimate)

    p = sub.add_parser("annotate", help="label a new clip list with a trained model (extracts only new clips)")
    p.add_argument("--config", help="YAML/JSON file with AnnotateConfig fields (flags override it)")
    p.add_argument("--manifest", help="the new clip list (any format extract reads)")
    p.add_argument("--model", help="model artifact written by `acoustic-env train` (directory or URI)")
    p.add_argument("--features", help="the shared extract output the clips are added to")
    p.add_argument("--output", help="where annotations/ and runs/ go")
    p.add_argument("--flag-threshold", type=float, help="flag a given label whose probability is below this (default 0.5)")
    p.add_argument("--audio-root")
    p.add_argument("--manifest-format", choices=["auto", "audioset", "csv", "parquet", "jsonl", "directory"])
    p.add_argument("--path-template")
    p.add_argument("--cut-segments", action="store_true", default=None)
    p.add_argument("--ontology")
    p.add_argument("--allow-random-weights", action="store_true", default=None)
    p.add_argument("--weights-cache")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--ray-address")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.set_defaults(func=cmd_annotate)

    from acoustic_env.cli.models import (
        add_models_parser,  # imports torch: only the command line pays for it
    )

    add_models_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"acoustic-env: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
