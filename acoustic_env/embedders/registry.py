"""The registry: the embedders configs and jobs can name, in the order the pipeline runs them.

Each embedder states its own facts in an :class:`~.spec.EmbedderSpec` (a built-in one as
``SPEC`` in its module: :mod:`.vggish`, :mod:`.yamnet`, :mod:`.panns`, :mod:`.birdnet`); this module only
collects them. ``register(spec)`` makes one known before the job runs. Jobs hand the spec
itself to their workers, so an embedder registered in a notebook or a test reaches Ray
actors without being importable there. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from acoustic_env.embedders.birdnet import SPEC as BIRDNET
from acoustic_env.embedders.panns import SPEC as PANNS
from acoustic_env.embedders.spec import EmbedderSpec
from acoustic_env.embedders.vggish import SPEC as VGGISH
from acoustic_env.embedders.weights import WeightsSpec
from acoustic_env.embedders.yamnet import SPEC as YAMNET
from acoustic_env.registry import LiveNames, Registry

_REGISTRY: Registry[EmbedderSpec] = Registry("embedder")
register, unregister, get = _REGISTRY.register, _REGISTRY.unregister, _REGISTRY.get


def names(before: tuple[str, ...] = (), after: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()) -> Sequence[str]:
    """Registered names in registration order (the order the pipeline runs them).

    The result is live: a config declares its choices at import, and an embedder
    registered after that must still be a valid choice. ``before``/``after``: fixed names
    around them (train's sources are ``indices``, ``mps`` and every embedder); ``suffixes``:
    each name again with each suffix, last (``panns_fg``: the columns of a separated signal).
    """
    names = _REGISTRY.names()
    return LiveNames(lambda: (*before, *names, *after, *(f"{n}_{s}" for n in names for s in suffixes)))


def weight_files() -> dict[str, WeightsSpec]:
    """Every registered pretrained file by its name: what the model cache can hold."""
    return {w.name: w for spec in _REGISTRY.specs() for w in spec.weight_files()}


def convertible() -> tuple[str, ...]:
    """The registered embedders whose checkpoint ``models convert`` builds (those with a ``convert``)."""
    return tuple(spec.name for spec in _REGISTRY.specs() if spec.convert is not None)


# The built-in embedders, in the order the pipeline runs them; each module states its own facts.
for _spec in (VGGISH, YAMNET, PANNS, BIRDNET):
    register(_spec)
