"""The hand-made feature groups the CPU stage computes for each signal: one declaration each, in one registry.

A group is a vector per clip and signal, column ``<group>_<signal>`` (``indices_fg``). Its :class:`GroupSpec` holds
everything the rest of the package needs: its default PCA size (train), whether train's grid makes it a row
(``in_grid``), the ``FeatureParams`` switch that turns it on, its columns' metadata, and its implementations by
``features.impl`` (``reference``: the libraries; ``fast``: vectorised numpy; ``torch``: a batch of clips as one tensor,
the device stage). The extract stage (``features.cpu_features``, ``features.torch.batch``), the table's metadata,
the configs' choices and help, train's grid and the feature-set choice all read this registry; ``register(spec)``
adds a group before a job runs (``docs/development.md``, "Adding a feature group").

The implementations are named lazily (``registry.lazy``), so reading the registry (validating a config, ``--help``)
imports neither scipy nor torch. An implementation is ``compute(x, sr, params, shared)``: ``x`` one signal (numpy,
or a [clips, samples] tensor for ``torch``), ``shared`` a dict the groups of one signal share in registration order
(the fast indices leave their power spectrogram there, and the spectral statistics read it, one STFT for both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acoustic_env.registry import Registry, lazy

#: The implementations a group may have: ``features.impl``'s two, and the device stage's.
IMPLEMENTATIONS = ("reference", "fast", "torch")


@dataclass(frozen=True)
class GroupSpec:
    """Everything about one feature group that is known without computing it.

    Attributes:
        name: the columns' prefix (``<name>_<signal>``) and the name configs use.
        summary: what it is, in a few words (``--help``, docs).
        pca: the components train keeps by default: a count, or a variance fraction in (0, 1).
        compute: its implementations by name (:data:`IMPLEMENTATIONS`; ``reference`` and ``fast`` are required).
        metadata: ``metadata(params)``: its column's schema metadata (``shape``, ``names`` or ``axes``, ``source``).
        switch: the ``FeatureParams`` field that turns it on (None: always computed).
        in_grid: a row of train's grid with every embedder (``jobs/train/grid.py``).
    """

    name: str
    summary: str
    pca: float
    compute: Mapping[str, Callable[..., Any]]
    metadata: Callable[[Any], dict[str, Any]]
    switch: str | None = None
    in_grid: bool = False

    def __post_init__(self) -> None:
        missing = [i for i in IMPLEMENTATIONS[:2] if i not in self.compute]
        unknown = [i for i in self.compute if i not in IMPLEMENTATIONS]
        if missing or unknown:
            raise ValueError(f"feature group {self.name}: needs implementations {list(IMPLEMENTATIONS[:2])} "
                             f"(and may have torch); missing {missing}, unknown {unknown}")
        if not (self.pca >= 1 and float(self.pca).is_integer()) and not 0 < self.pca < 1:
            raise ValueError(f"feature group {self.name}: pca must be a count >= 1 or a fraction in (0, 1)")

    def on(self, params: Any) -> bool:
        """Whether ``params`` (a ``FeatureParams``) computes this group."""
        return self.switch is None or bool(getattr(params, self.switch))

    def implementation(self, impl: str) -> Callable[..., Any]:
        """Its ``compute`` for ``impl``; ValueError naming the group when it has none (a group without a torch one
        cannot run in the device stage)."""
        if impl not in self.compute:
            raise ValueError(f"feature group {self.name} has no {impl} implementation (it has "
                             f"{', '.join(self.compute)})")
        return self.compute[impl]


_REGISTRY: Registry[GroupSpec] = Registry("feature group")
register, unregister, get, names = _REGISTRY.register, _REGISTRY.unregister, _REGISTRY.get, _REGISTRY.names


def specs(params: Any = None) -> list[GroupSpec]:
    """Every registered group in the order the stage computes them; given ``params``, only those it turns on."""
    return [s for s in _REGISTRY.specs() if params is None or s.on(params)]


def _builtin(name: str, summary: str, pca: float, module: str, **facts: Any) -> GroupSpec:
    """A built-in group: ``features/{reference,fast,torch}/<module>.py: group``, its metadata in the reference's."""
    return GroupSpec(name, summary, pca, metadata=lazy(f"acoustic_env.features.reference.{module}", "metadata"),
                     compute={impl: lazy(f"acoustic_env.features.{impl}.{module}", "group") for impl in IMPLEMENTATIONS},
                     **facts)


# The built-in groups, in the order the stage computes them (the spectral statistics after the indices, whose
# power spectrogram the fast and torch ones reuse).
for _spec in (_builtin("indices", "scikit-maad's 60 alpha indices", 20, "indices", in_grid=True),
              _builtin("spectral", "log-mel band, MFCC and spectral-shape statistics", 20, "spectral",
                       switch="spectral"),
              _builtin("mps", "soundsig's modulation power spectrum on a fixed grid", 10, "mps", in_grid=True)):
    register(_spec)
