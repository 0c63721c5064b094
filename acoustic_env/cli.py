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

from .config import ConfigError, extract_config_from_dict, load_config_file
from .manifest import ManifestError
from .ontology import OntologyError
from .tasks import TaskError

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, ManifestError, OntologyError, TaskError)


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
    p.add_argument("--features-impl", choices=["reference", "fast"], help="CPU feature implementation")
    p.add_argument("--signals", help="comma-separated subset of raw,fg,bg (default all three)")
    p.add_argument("--embedders", help="comma-separated subset of vggish,yamnet,panns (default none)")
    p.add_argument("--allow-random-weights", action="store_true", default=None,
                   help="run embedders with random weights when checkpoints are missing (recorded as 'random')")
    p.add_argument("--weights-cache", help="model cache directory or URI")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="embedder device (default: GPU when the cluster has one)")
    p.add_argument("--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")


def extract_config_from_args(args: argparse.Namespace) -> Any:
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    simple = ("manifest", "audio_root", "output", "manifest_format", "path_template", "cut_segments", "ontology",
              "limit", "batch_size", "allow_random_weights", "weights_cache", "device", "ray_address", "progress")
    for name in simple:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    if args.embedders is not None:
        data["embedders"] = tuple(e.strip() for e in args.embedders.split(",") if e.strip())
    features = dict(data.get("features") or {})
    if args.features_impl:
        features["impl"] = args.features_impl
    if args.signals:
        features["signals"] = tuple(s.strip() for s in args.signals.split(",") if s.strip())
    data["features"] = features
    for required in ("manifest", "output"):
        if not data.get(required):
            raise ConfigError(f"{required}: is required (--{required} or in --config)")
    return extract_config_from_dict(data)


def cmd_extract(args: argparse.Namespace) -> int:
    from .extract import extract

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
    from .demo import run_demo

    run_demo(Path(args.output), n_clips=args.clips, seed=args.seed, duration_s=args.duration,
             features_impl=args.features_impl, progress=args.progress)
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
