"""What the job configs share: the names a field may take (embedders, signals, classifiers, ...) and the
field declarations several jobs use (a path stored absolute, the Ray address, the task, the ontology)."""

from __future__ import annotations

import os
from dataclasses import MISSING
from typing import Any

from acoustic_env import candidates, feature_groups
from acoustic_env.config.schema import option
from acoustic_env.embedders import registry
from acoustic_env.registry import LiveNames

#: The embedders the pipeline can run, in the order it runs them: a live view of the
#: torch-free registry, so that validating a config never imports a deep-learning runtime
#: and an embedder registered after this import is a valid choice too.
EMBEDDERS = registry.names()
#: What ``extract --embedders`` takes: ``auto`` (every embedder whose real weights are here, checked: the default),
#: ``none``, or names of the registry.
AUTO, NO_EMBEDDERS = "auto", "none"
EMBEDDER_CHOICES = registry.names(before=(AUTO, NO_EMBEDDERS))
SIGNALS = ("raw", "fg", "bg")
#: The grid's signal sets: one signal, or all three together.
SIGNAL_SETS = (*SIGNALS, "all")
DEVICES = ("auto", "cpu", "cuda")
#: Clips that ``predict`` featurises, and that a local extract computes, in their own process: about where a Ray
#: start-up (5-10 s) costs less than featurising the clips one after another on one core (~0.3 s per 10-s clip
#: without embedders, a few seconds with them).
IN_PROCESS_MAX = 32
#: The shortest hop between windows of a long recording (seconds): a spectrogram frame.
MIN_HOP_S = 0.01
#: The hand-made feature groups (``acoustic_env.feature_groups``: indices, spectral statistics, MPS, and any registered).
HAND_MADE = feature_groups.names()
#: What train can select: whole sources (the groups, the embedders), or one group of one signal (``indices_fg``), or
#: an embedder's embeddings of a separated signal (``panns_fg``, ``--embed-signals``). Live views of both registries.
SOURCES = LiveNames(lambda: (*HAND_MADE, *EMBEDDERS))
FEATURE_GROUPS = LiveNames(lambda: (*SOURCES, *(f"{g}_{s}" for g in HAND_MADE for s in SIGNALS),
                                    *(f"{e}_{s}" for e in EMBEDDERS for s in SIGNALS[1:])))
#: Components kept of AudioSet's released VGGish embeddings (``audioset embeddings``), a source of no registry.
RELEASED_PCA: dict[str, float] = {"audioset_vggish": 128}


def default_pca(source: str) -> float:
    """The components train keeps of ``source`` unless ``--pca`` names it: its feature group's or embedder's
    declared ``pca`` (enough to hold most of its variance)."""
    if source in HAND_MADE:
        return feature_groups.get(source).pca
    return RELEASED_PCA[source] if source in RELEASED_PCA else registry.get(source).pca


#: The training candidates (``acoustic_env.candidates``, simplest first): live views of the registry, so that a
#: candidate registered after this import is a valid choice too.
CANDIDATES = candidates.names()
#: Those compared by default: train's (the MLP and its BASELINES) and the audit's ``auto``.
CLASSIFIERS = candidates.names(lambda spec: spec.default)
#: What ``--baselines`` takes: every candidate but the MLP, which train always compares; any of them can be the
#: saved model. Off by default, the others: the audit and the default run skip them.
BASELINE_CHOICES = candidates.names(lambda spec: spec.name != "mlp")
BASELINES = tuple(c for c in CLASSIFIERS if c != "mlp")
#: Candidates that learn from the table's log-mel images (``logmel``) instead of its feature vectors (the CNN).
IMAGE_MODELS = candidates.names(lambda spec: spec.inputs == "images")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


def _absolute(value: Any) -> str | None:
    """A local path made absolute (``~`` expanded); URLs as given.

    Ray's workers run in another working directory, and run records outlive the shell
    they were started from: a relative path would name another file there.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"must be a path or URL, got {value!r}")
    text = os.fspath(value)
    return text if "://" in text or not text else os.path.abspath(os.path.expanduser(text))


def _location(default: Any = MISSING, *, help: str, role: str = "input") -> Any:
    """A path or URL field: local paths are stored absolute (see ``_absolute``); ``role``: see ``schema.ROLES``."""
    return option(default, help=help, parse=_absolute, role=role)


def _ray_address() -> Any:
    return option(None, help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")


def _progress() -> Any:
    return option(True, help="progress bars")


def _device(what: str) -> Any:
    return option("auto", choices=DEVICES, help=f"{what} device (auto: a GPU when the cluster has one)")


#: The largest seed: numpy's legacy generators (scikit-learn's random_state, Optuna's sampler) take at most
#: 2**32 - 1 and the jobs derive seeds from one (seed + 1, seed + rank); int32's maximum leaves room for both.
SEED_MAX = 2**31 - 1


def _seed(help: str) -> Any:
    """A job's seed: declared once, so that -1 or 2**40 stops the job before it starts, naming the field."""
    return option(0, ge=0, le=SEED_MAX, help=help)


def _task() -> Any:
    return option("urban_natural", nonempty=True, help="built-in task name, task YAML file, or labels:a,b "
                                                       "(single-label classes that are those labels)")


def _ontology() -> Any:
    return option(None, role="input", help="ontology.json path or URL (default: the copy shipped with the package; "
                                          "only read for display-name labels or classes with descendants)")


