"""The configs of ``acoustic-env recipe <collection>``: one per collection, as each collection is one module of
``acoustic_env/recipes/`` (and AudioSet's released embeddings one of ``jobs/audioset/embeddings.py``).

Every recipe reads a collection's folder (``root``) and writes below ``out``; the fields after those two are the
collection's own. Each field is declared once, here: the flags, ``--config FILE``, the path checks and
``ae.run("recipe esc50", ...)`` derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.schema import Section, option

#: AudioSet's three published segment lists (``<name>_segments.csv``).
AUDIOSET_LISTS = ("balanced_train", "unbalanced_train", "eval")


def _root(what: str = "the collection's folder (local or object storage)") -> str:
    return option(positional=True, role="input", help=what)


def _out() -> str:
    return option(positional=True, role="output", help="where the output goes (a directory or URI)")


@dataclass(frozen=True)
class UrbanSound8KConfig(Section):
    """UrbanSound8K's folder → its clip list, the published ten folds kept (``recipe urbansound8k``)."""

    root: str = _root()
    out: str = _out()


@dataclass(frozen=True)
class ESC50Config(Section):
    """ESC-50's folder → its clip list, or ESC-10's (``recipe esc50``)."""

    root: str = _root()
    out: str = _out()
    esc10: bool = option(False, help="only the ESC-10 subset (writes esc10.csv)")


@dataclass(frozen=True)
class FSD50KConfig(Section):
    """FSD50K's folder → its clip list, its labels binned into a task's classes (``recipe fsd50k``)."""

    root: str = _root()
    out: str = _out()
    task_file: str | None = option(None, help="another tag-binning task file (default: fsd50k_environment.yaml)")
    bins: int = option(4, check=(lambda n: n in (4, 8), "must be 4 or 8"),
                       help="the packaged tag binning: 4 classes (fsd50k_environment.yaml) or 8 "
                            "(fsd50k_eight_bins.yaml: this project's reading of the FSD50K study's eight)")
    from_tags: bool = option(False, help="label each clip by its free-text Freesound tags (FSD50K.metadata), binned "
                                         "into the packaged eight categories, music included "
                                         "(fsd50k_tag_categories.yaml); clips with no listed tag are dropped and "
                                         "counted; writes a tag-frequency table")
    tag_map: str | None = option(None, help="as --from-tags, with your own YAML of category -> tags (copy the "
                                            "packaged one)")


@dataclass(frozen=True)
class AudioSetListsConfig(Section):
    """AudioSet's segment lists and fetched audio → one clip list, the list as each clip's fold (``recipe
    audioset``)."""

    root: str = _root("the folder holding AudioSet's segment lists, audio in ROOT/audio/<list>/ (local or object "
                      "storage)")
    out: str = _out()
    lists: tuple[str, ...] = option(AUDIOSET_LISTS, nonempty=True, choices=AUDIOSET_LISTS,
                                    help="segment lists to include (those present)")


@dataclass(frozen=True)
class AudioSetEmbeddingsConfig(Section):
    """AudioSet's released VGGish embeddings (TFRecord files) → a feature table (``recipe audioset-embeddings``)."""

    root: str = _root("a TFRecord file or a directory of them (local or object storage)")
    out: str = _out()
    class_list: str | None = option(None, help="class_labels_indices.csv (default: the package's copy)")
    part_rows: int = option(20_000, ge=1, help="segments per Parquet part")
    keep_frames: bool = option(False, help="also keep the ten 1-s frames of each full segment in OUT/frames/ (for "
                                           "`acoustic-env audioset frames`)")
