"""AudioSet class names in model output order, so score columns can be named.

PANNs CNN14 scores the 527 classes of AudioSet's ``class_labels_indices.csv`` in
that file's order; the published file ships with the package
(``class_labels_indices.csv`` beside this module), so an installed wheel names its
scores without the network. YAMNet scores 521 of them: its published class map
(``yamnet_class_map.csv`` in tensorflow/models, research/audioset/yamnet) is the
same list, in the same order, without the six classes in
:data:`YAMNET_EXCLUDED_MIDS`.
"""

from __future__ import annotations

from importlib import resources

from acoustic_env.vocabulary.ontology import load_class_list

with resources.as_file(resources.files(__package__) / "class_labels_indices.csv") as _path:
    #: (MID, display name) for the 527 AudioSet classes, in PANNs output order.
    AUDIOSET_CLASSES: tuple[tuple[str, str], ...] = load_class_list(str(_path))

#: AudioSet classes that YAMNet does not score (checked against its class map:
#: male/female speech, battle cry, male/female singing, funny music).
YAMNET_EXCLUDED_MIDS: frozenset[str] = frozenset(
    {"/m/05zppz", "/m/02zsn", "/m/04gy_2", "/t/dd00003", "/t/dd00004", "/t/dd00032"}
)


def panns_class_names() -> tuple[str, ...]:
    """Display names of the 527 PANNs scores, in output order."""
    return tuple(name for _, name in AUDIOSET_CLASSES)


def yamnet_class_names() -> tuple[str, ...]:
    """Display names of the 521 YAMNet scores, in output order."""
    return tuple(name for mid, name in AUDIOSET_CLASSES if mid not in YAMNET_EXCLUDED_MIDS)
