"""The registry: the embedders configs and jobs can name, in the order the pipeline runs them.

Each embedder states its own facts in an :class:`~.spec.EmbedderSpec`; this module only
collects them. ``register(spec)`` makes one known before the job runs. Jobs hand the spec
itself to their workers, so an embedder registered in a notebook or a test reaches Ray
actors without being importable there. The three built-in models are registered at the
bottom of this module. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from acoustic_env.audioset.classes import panns_class_names, yamnet_class_names
from acoustic_env.embedders.spec import EmbedderSpec, lazy
from acoustic_env.embedders.weights import WeightsSpec

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


# --- the built-in embedders -----------------------------------------------------------------
# memory: host memory per actor as Ray Data's memory detector measured it on the demo (16
# ten-second clips a batch, CPU); reserving it keeps Ray from packing more actors onto a node
# than its memory holds. max_batch: patches (VGGish, YAMNet) or 10-s clips (PANNs) per
# forward pass: small on CPU, where bigger batches gain nothing; larger on a GPU, where they
# keep it busy. pca: a strong reduction of the large embeddings, which are wider than a few
# hundred training clips.

register(EmbedderSpec(
    name="vggish", dim=128, load=lazy("acoustic_env.embedders.vggish", "load"),
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
    name="yamnet", dim=1024, load=lazy("acoustic_env.embedders.yamnet", "load"),
    score_names=yamnet_class_names(),
    weights=WeightsSpec(name="yamnet", filename="yamnet.pt",
                        source="https://tfhub.dev/google/yamnet/1", converted=True),
    memory=0.9 * 2**30, max_batch_cpu=64, max_batch_cuda=1024, pca=400,
))

register(EmbedderSpec(
    name="panns", dim=2048, load=lazy("acoustic_env.embedders.panns", "load"),
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
