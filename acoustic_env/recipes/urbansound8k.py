"""UrbanSound8K: 8,732 labelled clips (≤ 4 s) of 10 urban sound classes in 10 predefined folds.

Published at https://urbansounddataset.weebly.com/urbansound8k.html (Salamon, Jacoby
and Bello, ACM MM 2014), licence CC BY-NC 3.0 (the clips come from Freesound).

Layout: ``metadata/UrbanSound8K.csv`` (``slice_file_name, fsID, start, end, salience,
fold, classID, class``) and ``audio/fold1`` … ``audio/fold10``. The authors ask that
results use their 10 folds as given, never a random split: slices cut from the same
Freesound recording (``fsID``) sit in the same fold, and mixing them inflates
accuracy. The manifest keeps ``fold`` (1-10, for ``train --folds-column fold``) and
``group`` = ``fsID``. ``start``/``end`` are positions in the *source* recording,
not in the slice file, so they are carried as ``source_start_s``/``source_end_s``
and never used to cut the slice.
"""

from __future__ import annotations

from acoustic_env.config.recipes import UrbanSound8KConfig
from acoustic_env.recipes.common import Prepared, file_name, fold, integer, plan_lines, read_csv, stem, write_manifest
from acoustic_env.storage import join

METADATA = "metadata/UrbanSound8K.csv"
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
EXTRA = ("class_id", "salience", "source_start_s", "source_end_s")
FOLDS = range(1, 11)


def prepare_urbansound8k(root: str, out: str) -> str:
    """Write ``<out>/urbansound8k.csv`` from an UrbanSound8K folder; returns its path."""
    rows = read_csv(join(root, METADATA), COLUMNS, what="is ROOT the UrbanSound8K folder?")
    return write_manifest(({"clip_id": stem(file_name(r, "slice_file_name")),
                            "uri": join(root, "audio", f"fold{fold(r, 'fold', FOLDS)}", r["slice_file_name"]),
                            "labels": [r["class"]], "group": r["fsID"], "fold": fold(r, "fold", FOLDS),
                            "class_id": integer(r, "classID"), "salience": integer(r, "salience"),
                            "source_start_s": r["start"], "source_end_s": r["end"]} for r in rows),
                          out, "urbansound8k", EXTRA)


def run(cfg: UrbanSound8KConfig) -> Prepared:
    """``acoustic-env recipe urbansound8k``: :func:`prepare_urbansound8k` with the command's config."""
    return Prepared(prepare_urbansound8k(cfg.root, cfg.out))


def plan(cfg: UrbanSound8KConfig) -> dict[str, list[str]]:
    """``recipe urbansound8k --dry-run``: the metadata read, the clip list written."""
    return plan_lines("urbansound8k", [join(cfg.root, METADATA)], [join(cfg.out, "urbansound8k.csv")])
