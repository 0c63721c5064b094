"""What every layer knows about an embedder before its model loads: one spec per embedder.

In the spirit of the HEAR API, an embedder is one module plus one registered
:class:`EmbedderSpec`. The module builds the model (a ``load`` that returns an
:class:`~acoustic_env.embedders.base.Embedder`); the spec holds every fact the rest of the
package needs without the model: the column widths and class names of the feature table,
how frames are pooled (for the table's metadata), the pretrained files (for the model
cache), the host memory an extract actor reserves, the batch sizes per device, and how
many PCA components training keeps. Nothing here imports torch, so validating a config,
``acoustic-env --help`` and the extract driver stay free of it.

To add an embedder: write its module and ``register(EmbedderSpec(name=..., load=...))``
before the job runs. Jobs hand the spec itself to their workers, so an embedder registered
in a notebook or a test reaches Ray actors without being importable there. The three
built-in models are declared at the bottom of this module; their modules (which need
torch) are imported only when one is loaded.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, overload

from acoustic_env.audioset.classes import panns_class_names, yamnet_class_names

if TYPE_CHECKING:
    from acoustic_env.embedders.base import Embedder
    from acoustic_env.embedders.factory import WeightsSource

#: The one sample rate: every clip is decoded to it (``decode.sample_rate``), every feature and
#: embedder is defined at it.
SAMPLE_RATE = 16000
SCORES_SUFFIX = "_scores"
CONVERT_EXTRA = 'pip install "acoustic-env[convert]"'

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained file: its cache name, official source and expected identity.

    ``sha256``/``size`` are set only where a published value could be confirmed; files
    built by ``models convert`` (``converted=True``) get their identity from the sidecar
    the converter writes, because the bytes depend on the converting PyTorch version.
    ``md5`` is the checksum the publisher itself lists, checked when present.
    """

    name: str
    filename: str
    source: str
    sha256: str | None = None
    size: int | None = None
    md5: str | None = None
    converted: bool = False

    def how_to_get(self) -> str:
        """The sentence a user needs when the file is absent."""
        if self.converted:
            return (
                f"Build it from the official release {self.source} with "
                f"`acoustic-env models convert {self.name}` (needs {CONVERT_EXTRA}), or copy "
                f"an already converted one from a mirror with "
                f"`acoustic-env models fetch {self.name} --source <dir-or-url>`."
            )
        return (
            f"Download it from {self.source} with `acoustic-env models fetch {self.name}` "
            f"(or `--source <dir-or-url>` for a mirror that holds {self.filename})."
        )


class Loader(Protocol):
    """An embedder module's ``load``: the model on ``device``, its network from ``weights``.

    ``max_batch`` is how many frames or clips one forward pass may take; ``options`` are
    the module's own keyword arguments (VGGish: ``postprocess``, ``pca_weights``).
    """

    def __call__(self, weights: WeightsSource, device: str, precision: str, max_batch: int,
                 **options: Any) -> Embedder: ...


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything about one embedder that is known without loading it.

    Attributes:
        name: the embedding's column name and the name configs use.
        dim: the embedding's width.
        load: builds the model (see :class:`Loader`); it must pickle, because extract
            actors receive the spec.
        score_names: class names of the ``<name>_scores`` column; None when the model
            has no classifier.
        pooling, score_pooling: how frame outputs become one clip vector, as the feature
            table's metadata states it; they must describe what ``load``'s model does.
        weights: the network's pretrained file, checked before a job starts.
        extra_weights: further files a model option reads (VGGish's PCA parameters).
        memory: host bytes one extract actor of this embedder reserves in Ray.
        max_batch_cpu, max_batch_cuda: frames or clips per forward pass by default.
        pca: components training keeps of this embedding by default (an integer count or
            a variance fraction in (0, 1)).
        sample_rate: the rate the model expects, in Hz.
    """

    name: str
    dim: int
    load: Loader = field(repr=False)
    weights: WeightsSpec
    score_names: tuple[str, ...] | None = field(default=None, repr=False)
    pooling: str = "mean over frames"
    score_pooling: str = "max over frames"
    extra_weights: tuple[WeightsSpec, ...] = ()
    memory: float = 2**30
    max_batch_cpu: int = 64
    max_batch_cuda: int = 512
    pca: float = 128
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or self.name.endswith(SCORES_SUFFIX):
            raise ValueError(f"embedder name {self.name!r} must be a lowercase identifier "
                             f"not ending in {SCORES_SUFFIX!r}: it names a column")
        if self.dim < 1 or (self.score_names is not None and not self.score_names):
            raise ValueError(f"embedder {self.name!r}: dim and the score names must not be empty")

    @property
    def scores_column(self) -> str | None:
        """The class-score column's name, or None without a classifier."""
        return None if self.score_names is None else self.name + SCORES_SUFFIX

    def columns(self) -> dict[str, int]:
        """Output column → width: the embedding, then the scores if any."""
        cols = {self.name: self.dim}
        if self.scores_column:
            cols[self.scores_column] = len(self.score_names or ())
        return cols

    def column_metadata(self) -> dict[str, dict[str, Any]]:
        """Per output column: shape, pooling and (for scores) class names, as tables store them."""
        meta: dict[str, dict[str, Any]] = {self.name: {"shape": [self.dim], "pooling": self.pooling}}
        if self.scores_column:
            meta[self.scores_column] = {"shape": [len(self.score_names or ())],
                                        "pooling": self.score_pooling,
                                        "names": list(self.score_names or ())}
        return meta

    def weight_files(self) -> tuple[WeightsSpec, ...]:
        """Every pretrained file this embedder may read, the network's first."""
        return (self.weights, *self.extra_weights)


_SPECS: dict[str, EmbedderSpec] = {}


def register(spec: EmbedderSpec) -> EmbedderSpec:
    """Make ``spec`` known to configs and jobs under its name; returns it."""
    if spec.name in _SPECS:
        raise ValueError(f"embedder {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def get(name: str) -> EmbedderSpec:
    """The spec registered under ``name``."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose from {list(_SPECS)}") from None


class _Names(Sequence[str]):
    """Registered names between fixed ones, read again at every use."""

    def __init__(self, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        self._before, self._after = before, after

    def _current(self) -> tuple[str, ...]:
        return (*self._before, *_SPECS, *self._after)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._current()[index]

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return repr(self._current())


def names(before: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> Sequence[str]:
    """Registered names in registration order (the order the pipeline runs them).

    The result is live: a config declares its choices at import, and an embedder
    registered after that must still be a valid choice. ``before``/``after``: fixed names
    around them (train's sources are ``indices``, ``mps`` and every embedder).
    """
    return _Names(before, after)


def weight_files() -> dict[str, WeightsSpec]:
    """Every registered pretrained file by its name: what the model cache can hold."""
    return {w.name: w for spec in _SPECS.values() for w in spec.weight_files()}


def _load_module(module: str, *args: Any, **kwargs: Any) -> Embedder:
    return importlib.import_module(module).load(*args, **kwargs)


def _module_load(module: str) -> Loader:
    """A built-in module's ``load``, imported on the first call so that specs stay torch-free."""
    return functools.partial(_load_module, module)


# --- the built-in embedders -----------------------------------------------------------------
# memory: host memory per actor as Ray Data's memory detector measured it on the demo (16
# ten-second clips a batch, CPU); reserving it keeps Ray from packing more actors onto a node
# than its memory holds. max_batch: patches (VGGish, YAMNet) or 10-s clips (PANNs) per
# forward pass: small on CPU, where bigger batches gain nothing; larger on a GPU, where they
# keep it busy. pca: a strong reduction of the large embeddings, which are wider than a few
# hundred training clips.

register(EmbedderSpec(
    name="vggish", dim=128, load=_module_load("acoustic_env.embedders.vggish"),
    weights=WeightsSpec(name="vggish", filename="vggish.pt",
                        source="https://tfhub.dev/google/vggish/1", converted=True),
    # VGGish's PCA/whitening parameters. No published SHA-256 was found; the md5 is the
    # one public projects check this file against. The SHA-256 seen on first fetch is
    # recorded in the sidecar and checked from then on.
    extra_weights=(WeightsSpec(name="vggish_pca", filename="vggish_pca_params.npz",
                               source="https://storage.googleapis.com/audioset/vggish_pca_params.npz",
                               md5="c80cae691033abe7c7ecd11ea39fc834"),),
    memory=1.4 * 2**30, max_batch_cpu=64, max_batch_cuda=512, pca=128,
))

register(EmbedderSpec(
    name="yamnet", dim=1024, load=_module_load("acoustic_env.embedders.yamnet"),
    score_names=yamnet_class_names(),
    weights=WeightsSpec(name="yamnet", filename="yamnet.pt",
                        source="https://tfhub.dev/google/yamnet/1", converted=True),
    memory=0.9 * 2**30, max_batch_cpu=64, max_batch_cuda=1024, pca=400,
))

register(EmbedderSpec(
    name="panns", dim=2048, load=_module_load("acoustic_env.embedders.panns"),
    score_names=panns_class_names(),
    # CNN14 pools over time inside the network; no frame pooling is added.
    pooling="CNN14's own (max + mean over time, then fc1)",
    score_pooling="CNN14's own clip-level output",
    # The 16 kHz CNN14 from the PANNs release (Zenodo record 3987831). Zenodo lists
    # md5 362fc5ff...; the SHA-256 and size are those several independent public
    # projects record for this same file (each matching Zenodo's md5).
    weights=WeightsSpec(
        name="panns",
        filename="Cnn14_16k_mAP=0.438.pth",
        source="https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth?download=1",
        sha256="e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
        size=358_668_570,
        md5="362fc5ff18f1d6ad2f6d464b45893f2c",
    ),
    memory=1.8 * 2**30, max_batch_cpu=8, max_batch_cuda=32, pca=400,
))
