"""ESC-50 (and its ESC-10 subset): 2,000 five-second clips of 50 environmental sound classes in 5 folds.

Published at https://github.com/karolpiczak/ESC-50 (Piczak, ACM MM 2015), licence
CC BY-NC 3.0 (clips from Freesound; ESC-10, the 10-class subset, is CC BY).

Layout: ``meta/esc50.csv`` (``filename, fold, target, category, esc10, src_file,
take``) and ``audio/<filename>``. Clips cut from one Freesound recording
(``src_file``, told apart by ``take``) share a fold; the manifest keeps ``fold``
(1-5) and ``group`` = ``src_file``. ``esc10=True`` keeps the 400 ESC-10 clips.
"""

from __future__ import annotations

from acoustic_env.config.recipes import ESC50Config
from acoustic_env.recipes.common import Prepared, file_name, fold, integer, plan_lines, read_csv, stem, write_manifest
from acoustic_env.storage import join

METADATA = "meta/esc50.csv"
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
EXTRA = ("target", "take", "esc10")
FOLDS = range(1, 6)


def prepare_esc50(root: str, out: str, esc10: bool = False) -> str:
    """Write ``<out>/esc50.csv`` (or ``esc10.csv``) from an ESC-50 folder; returns its path."""
    rows = read_csv(join(root, METADATA), COLUMNS, what="is ROOT the ESC-50 folder?")
    if esc10:
        rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
    return write_manifest(({"clip_id": stem(file_name(r, "filename")), "uri": join(root, "audio", r["filename"]),
                            "labels": [r["category"]], "group": r["src_file"], "fold": fold(r, "fold", FOLDS),
                            "target": integer(r, "target"), "take": r["take"],
                            "esc10": r["esc10"].strip().lower() == "true"} for r in rows),
                          out, "esc10" if esc10 else "esc50", EXTRA)


def run(cfg: ESC50Config) -> Prepared:
    """``acoustic-env recipe esc50``: :func:`prepare_esc50` with the command's config."""
    return Prepared(prepare_esc50(cfg.root, cfg.out, cfg.esc10))


def plan(cfg: ESC50Config) -> dict[str, list[str]]:
    """``recipe esc50 --dry-run``: the metadata read, the clip list written."""
    return plan_lines("esc50", [join(cfg.root, METADATA)], [join(cfg.out, "esc10.csv" if cfg.esc10 else "esc50.csv")])
