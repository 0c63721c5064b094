"""``acoustic-env models list|fetch|convert``: the functions, and their argparse wiring.

The project's command calls :func:`add_models_parser` on its sub-parsers; each handler
returns an exit status. Failures raise :class:`~acoustic_env.errors.WeightsError` with a
one-line message for the command to print. The files and which models convert come from
the registry (torch-free); the weights and conversion code is imported when a command
runs, never when the parser is built, so that ``acoustic-env --help`` stays free of torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from acoustic_env.config import add_flags
from acoustic_env.config.commands import WeightsCacheOption
from acoustic_env.embedders.registry import convertible, get, weight_files
from acoustic_env.errors import WeightsError


def _specs(names: Sequence[str] | None, default: Sequence[str] | None = None) -> list[Any]:
    """The registry entries named (default: ``default``, else every file with a direct download)."""
    files = weight_files()
    chosen = list(names or default or [n for n, spec in files.items() if not (spec.converted or spec.package)])
    unknown = [n for n in chosen if n not in files]
    if unknown:
        raise WeightsError(f"unknown model(s) {unknown}; known: {sorted(files)}")
    return [files[n] for n in chosen]


def models_list(cache_dir: str | None = None, verify: bool = True) -> list[dict[str, Any]]:
    """One row per registry entry: file, cache path, status (missing/ok/unverified/bad), hash."""
    from acoustic_env.embedders.weights import status

    return [status(spec, cache_dir, verify) for spec in weight_files().values()]


def models_fetch(names: Sequence[str] | None = None, cache_dir: str | None = None,
                 source: str | None = None) -> list[dict[str, Any]]:
    """Download (or copy from ``source``, a mirror directory/URL) into the cache, checked.

    Without names, fetches every file with a direct download. Converted files (``vggish``,
    ``yamnet``) need ``source`` (a mirror holding them and their sidecars) or ``models convert``.
    """
    from acoustic_env.embedders.weights import fetch

    return [fetch(spec, cache_dir, source) for spec in _specs(names)]


def models_convert(names: Sequence[str] | None = None, cache_dir: str | None = None,
                   handles: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Convert models from their TF-Hub releases (or SavedModel dirs in ``handles``) into the cache.

    Without names, converts every model that is published for TensorFlow only (VGGish, YAMNet).
    """
    from acoustic_env.embedders.convert import convert

    specs = _specs(names, convertible())
    wrong = [s.name for s in specs if not s.converted]
    if wrong:
        raise WeightsError(f"{wrong} are downloaded, not converted: use `acoustic-env models fetch`")
    return [convert(get(s.name), cache_dir, (handles or {}).get(s.name)) for s in specs]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`models_list` rows, each column as wide as its widest cell (the registry's names
    are not all short: ``birdnet_labels``); a bad file's reason on the line below it, under its status."""
    cells = [("name", "status", "size", "sha256", "path")] + [
        (r["name"], r["status"], "" if r.get("size") is None else str(r["size"]), (r.get("sha256") or "")[:16],
         r["path"]) for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = []
    for c, r in zip(cells, [{}, *rows]):
        lines.append(f"{c[0]:<{width[0]}}  {c[1]:<{width[1]}}  {c[2]:>{width[2]}}  {c[3]:<{width[3]}}  {c[4]}")
        if r.get("reason"):
            lines.append(f"{'':<{width[0]}}  {r['reason']}")
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from acoustic_env.embedders.weights import resolve_cache_dir

    rows = models_list(args.weights_cache, verify=not args.no_verify)
    print(f"model cache: {resolve_cache_dir(args.weights_cache)}")
    print(format_table(rows))
    return 1 if any(r["status"] == "bad" for r in rows) else 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    for r in models_fetch(args.names, args.weights_cache, args.source):
        state = "already present" if r["already_present"] else f"fetched from {r['source']}"
        print(f"{r['name']}: {state} -> {r['path']} (sha256 {r['sha256']})")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    handles = {name: handle for name in convertible() if (handle := getattr(args, f"{name}_handle", None))}
    for r in models_convert(args.names, args.weights_cache, handles):
        print(f"{r['name']}: wrote {r['path']} (sha256 {r['sha256']}, "
              f"max |torch - TF| {r['max_abs_diff_vs_tf']})")
    return 0


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``models list|fetch|convert`` to an ``add_subparsers()`` object."""
    models = subparsers.add_parser("models", help="list, fetch or convert pretrained weights")
    sub = models.add_subparsers(dest="models_command", required=True)

    p = sub.add_parser("list", help="show which weights are in the cache and whether they check out")
    add_flags(p, WeightsCacheOption, config_file=False)  # the same option as extract's
    p.add_argument("--no-verify", action="store_true", help="do not hash the files")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("fetch", help="download weights into the cache, checking their SHA-256")
    p.add_argument("names", nargs="*", help="registry names (default: every file with a direct download)")
    add_flags(p, WeightsCacheOption, config_file=False)  # the same option as extract's
    p.add_argument("--source", help="mirror directory or URL (file://, s3://, https://) holding the files")
    p.set_defaults(func=_cmd_fetch)

    models_to_convert = convertible()
    p = sub.add_parser("convert", help=f"build {'/'.join(models_to_convert)} PyTorch weights from TF-Hub "
                                       "(needs the convert extra)")
    p.add_argument("names", nargs="*", help=f"{' and/or '.join(models_to_convert)} (default: all)")
    add_flags(p, WeightsCacheOption, config_file=False)  # the same option as extract's
    for name in models_to_convert:
        p.add_argument(f"--{name}-handle", help=f"TF-Hub handle or SavedModel directory for {name}")
    p.set_defaults(func=_cmd_convert)
    return models
