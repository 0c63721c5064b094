"""What the job configs share: the names a field may take (embedders, signals, classifiers, ...) and the
field declarations several jobs use (a path stored absolute, the Ray address, the task, the ontology)."""

from __future__ import annotations

import os
from dataclasses import MISSING
from typing import Any

from acoustic_env.config.schema import option
from acoustic_env.embedders import registry



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
#: What train can select: whole sources, or the indices, spectral statistics and MPS of one signal.
SOURCES = registry.names(before=("indices", "spectral", "mps"))
FEATURE_GROUPS = registry.names(before=("indices", "spectral", "mps"),
                                after=tuple(f"{s}_{g}" for s in ("indices", "spectral", "mps") for g in SIGNALS),
                                suffixes=SIGNALS[1:])  # panns_fg, panns_bg: the embeddings of --embed-signals
# Components kept per hand-made source: enough to hold most of their variance. An
# embedder's default is its spec's ``pca``.
DEFAULT_PCA: dict[str, float] = {"indices": 20, "spectral": 20, "mps": 10, "audioset_vggish": 128}
#: The estimator zoo's names (``acoustic_env.learn.zoo`` builds them); the MLP is the train job's own network.
CLASSIFIERS = ("logreg", "xgboost", "mlp")
#: Baselines train compares on the same folds, each searched as xgboost is (random forest, RBF SVM, k-nearest
#: neighbours, elastic-net logistic regression); any of them can be the saved model (``learn.portable``). Off by
#: default: the audit and the default run skip them.
EXTRA_BASELINES = ("forest", "svm", "knn", "elasticnet")
BASELINES = tuple(c for c in CLASSIFIERS if c != "mlp")
#: Candidates that learn from the table's log-mel images (``logmel``) instead of its feature vectors: the CNN
#: (``learn.spectro``). Train compares and saves it; off by default (the table needs the image column).
IMAGE_MODELS = ("cnn",)
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


