"""AudioSet: 2.1 million 10-s YouTube segments labelled with 527 classes, as segment lists plus a local mirror.

Published at https://research.google.com/audioset/download.html (Gemmeke et al.,
ICASSP 2017): the segment lists under CC BY 4.0, the ontology under CC BY-SA 4.0 (see
``acoustic_env/vocabulary/ONTOLOGY_LICENSE.md``); the audio is on YouTube under its
uploaders' terms, so a mirror is something you make.

Layout of ROOT: the published lists ``balanced_train_segments.csv``,
``unbalanced_train_segments.csv``, ``eval_segments.csv`` (any that are present),
and the mirror's audio in ``audio/<list>/<YTID>_<start in ms>.<ext>`` (``<list>``:
``balanced_train``, ``unbalanced_train``, ``eval``; ``ext`` any of flac, wav, ogg, ...,
found by one listing per directory). The lists are read by the clip-list reader
extract uses (``acoustic_env.audio.manifest``), so ids, groups and file resolution
are the ones ``extract --manifest eval_segments.csv`` would give: ``clip_id`` =
``<YTID>_<start ms>``, ``group`` = YTID, labels as MIDs; ``fold`` names the list.
A ``path_template`` with the placeholders of ``--path-template`` maps another mirror.
A row whose YTID is not a YouTube id (11 characters of A-Z, a-z, 0-9, _ and -) stops the
recipe with one line naming it: such a YTID (``../../etc/passwd``) would put the
clip's path outside ROOT, and a published list holds none.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audio.manifest import YTID, ManifestError, read_manifest
from acoustic_env.config.recipes import AUDIOSET_LISTS, AudioSetListsConfig
from acoustic_env.recipes.common import Prepared, plan_lines, write_manifest
from acoustic_env.storage import filesystem, join

LISTS = AUDIOSET_LISTS
EXTRA = ("start_s", "end_s")


def prepare_audioset(root: str, out: str, lists: Sequence[str] = LISTS,
                     path_template: str = "{audio_root}/{YTID}_{start_ms}.{ext}") -> str:
    """Write ``<out>/audioset.csv`` from the segment lists found in ROOT; returns its path."""
    unknown = [name for name in lists if name not in LISTS]
    if unknown:
        raise ManifestError(f"lists: unknown list {unknown[0]!r} (choose from {', '.join(LISTS)})")
    rows = []
    found = []
    for name in lists:
        uri = join(root, f"{name}_segments.csv")
        fs, path = filesystem(uri)
        if not fs.isfile(path):
            continue
        found.append(name)
        table = read_manifest(uri, audio_root=join(root, "audio", name), fmt="audioset", template=path_template).table
        _check_ytids(uri, table["group"])
        rows += [{"clip_id": r["clip_id"], "uri": r["uri"], "labels": r["labels"], "group": r["group"], "fold": name,
                  "start_s": r["start_s"], "end_s": r["end_s"]}
                 for r in table.select(["clip_id", "uri", "labels", "group", "start_s", "end_s"]).to_pylist()]
    if not found:
        raise ManifestError(f"{root}: none of {', '.join(f'{n}_segments.csv' for n in lists)} found "
                            "(is ROOT the folder holding AudioSet's segment lists?)")
    return write_manifest(rows, out, "audioset", EXTRA)


def _check_ytids(uri: str, ytids: pa.ChunkedArray) -> None:
    """Every row's YTID is a YouTube id, or one ManifestError naming the first row that is not (data rows from 1)."""
    valid = pc.fill_null(pc.match_substring_regex(ytids, f"^{YTID}$"), False).to_numpy(zero_copy_only=False)
    if not valid.all():
        row = int((~valid).argmax())
        raise ManifestError(f"{uri}: data row {row + 1}: YTID {ytids[row].as_py()!r} is not a YouTube id "
                            "(11 characters of A-Z, a-z, 0-9, _ and -)")


def run(cfg: AudioSetListsConfig) -> Prepared:
    """``acoustic-env recipe audioset``: :func:`prepare_audioset` with the command's config."""
    return Prepared(prepare_audioset(cfg.root, cfg.out, cfg.lists))


def plan(cfg: AudioSetListsConfig) -> dict[str, list[str]]:
    """``recipe audioset --dry-run``: the segment lists read (those present), the clip list written."""
    return plan_lines("audioset", [join(cfg.root, f"{name}_segments.csv") for name in cfg.lists],
                      [join(cfg.out, "audioset.csv")])
