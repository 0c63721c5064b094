"""The CNN's warm start (train's ``--cnn-init panns``): ``cnn14``'s ``bn0`` and blocks copied from the PANNs CNN14
checkpoint before it trains.

Our log-mel image (``features/logmel.py``: 16 kHz, 64 mel bands, 100 frames a second, dB) is the front end of the
16 kHz CNN14 that the ``panns`` embedder loads, and ``learn.spectro``'s ``cnn14`` is that network's first blocks
under its own names, so its checkpoint's ``bn0.*`` and ``conv_block{i}.*`` load by a rename (:func:`renamed`); the
head, a new task's, stays freshly initialised. The file is the embedder's (``embedders/panns/__init__.py``:
``SPEC.weights``), found and checked by the embedders' own code (``embedders/weights.py``: ``WeightsSource``,
``load_checkpoint``): the job checks it once up front (:func:`panns_init`) and every fit reloads it against the
SHA-256 found then (a fit may run in another process), so a file changed mid-run stops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import fsspec

from acoustic_env.config.schema import ConfigError
from acoustic_env.embedders import panns
from acoustic_env.embedders.weights import CACHE_ENV, WeightsSource, load_checkpoint
from acoustic_env.errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn


def checkpoint(cache_dir: str | None) -> tuple[str, str | None]:
    """Where the PANNs CNN14 checkpoint is looked for in the weights cache ``cache_dir`` (None: the default), and
    why the run would stop there (None: the file is there; whether it is the release, its hash says when the job
    starts). Cheap: the dry run's check."""
    spec = panns.SPEC.weights
    uri = WeightsSource(cache_dir=cache_dir).uri(spec)
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        return uri, None
    return uri, (f"cnn_init: panns starts the CNN from the PANNs CNN14 checkpoint, which is not at {uri} (the "
                 f"weights cache: --weights-cache, else ${CACHE_ENV}). {spec.how_to_get()}")


def panns_init(cache_dir: str | None) -> dict[str, str]:
    """The checked PANNs checkpoint in the weights cache ``cache_dir`` (None: the default): ``{"from": "panns",
    "weights": its URI, "sha256": its hash}``, what each fit loads and the saved model records. Missing, one line
    naming ``cnn_init``; a file that is not the release, the weights check's :class:`WeightsError`."""
    uri, missing = checkpoint(cache_dir)
    if missing:
        raise ConfigError(missing)
    _, sha = load_checkpoint(panns.SPEC.weights, uri)
    return {"from": "panns", "weights": uri, "sha256": sha}


def _prefixes(blocks: int) -> dict[str, str]:
    """The checkpoint's name of each copied layer -> ``SpectroCNN``'s (its ``blocks[0]`` is the input pooling, so
    CNN14's ``conv_block{i}`` is its ``blocks.{i}``)."""
    return {"bn0.": "bn0.", **{f"conv_block{i}.": f"blocks.{i}." for i in range(1, blocks + 1)}}


def renamed(state: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
    """The checkpoint's ``bn0`` and first ``blocks`` blocks under ``SpectroCNN``'s names."""
    return {new + key[len(old):]: value for key, value in state.items()
            for old, new in _prefixes(blocks).items() if key.startswith(old)}


def lacking(state: dict[str, torch.Tensor], wanted: list[str], blocks: int) -> list[str]:
    """The tensors of ``wanted`` (``SpectroCNN``'s names of what is copied) that the checkpoint ``state`` lacks, in
    the checkpoint's names, a layer it lacks whole by its name alone (``bn0``, ``conv_block2``): what a user looks
    for in the file."""
    back = {new: old for old, new in _prefixes(blocks).items()}
    by_layer: dict[str, list[str]] = {}
    for name in wanted:
        ours = next(p for p in back if name.startswith(p))
        by_layer.setdefault(back[ours], []).append(back[ours] + name[len(ours):])
    out = []
    for layer, names in by_layer.items():
        absent = [n for n in names if n not in state]
        if absent:
            out.append(layer.rstrip(".") if len(absent) == len(names) else ", ".join(absent))
    return out


def warm_start(network: nn.Module, init: dict[str, Any]) -> None:
    """Copy ``init``'s checkpoint (:func:`panns_init`'s record) into a ``cnn14`` ``network``: every one of its
    ``bn0`` and block tensors, of the same shape; the head and the input scaling untouched. A tensor the checkpoint
    lacks stops it before anything is copied, and one of another shape stops it too: a one-line
    :class:`WeightsError` naming them, so that no network trains half warm-started, the rest of it random."""
    spec = panns.SPEC.weights
    state, sha = load_checkpoint(spec, init["weights"], init["sha256"])
    blocks = len(network.blocks) - 1
    own = sorted(k for k in network.state_dict() if k.startswith(("bn0.", "blocks.")))
    missing = lacking(state, own, blocks)
    if missing:
        raise WeightsError(f"{init['weights']} (sha256 {sha}) does not fit the cnn14 network: it lacks "
                           f"{'; '.join(missing)} (CNN14's bn0 and conv_block1..{blocks} are copied whole); nothing "
                           "was loaded")
    try:
        network.load_state_dict(renamed(state, blocks), strict=False)  # strict about shapes; the head is not in it
    except RuntimeError as exc:
        raise WeightsError(f"{init['weights']} (sha256 {sha}) does not fit the cnn14 network: "
                           f"{' '.join(str(exc).split())}") from exc


def described(init: dict[str, Any]) -> str:
    """The run record's words for the warm start."""
    return (f"The CNN (cnn14) started from the PANNs CNN14 checkpoint (sha256 {init['sha256'][:12]}): its bn0 and "
            "blocks copied, its head random.")
