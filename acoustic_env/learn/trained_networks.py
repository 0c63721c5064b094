"""The built-in networks back in this process after a run on Ray: the hooks their specs name (``restore``, ``save``).

Train's split evaluation trains a network on Ray (a Tune trial, or Ray Data's stream of images) and gets back only
the best round's weights; ``restore`` rebuilds the module from them and ``save`` gives its saved form
(``learn.portable``), so that the evaluation loops over the candidates' specs without knowing which network it holds
(``candidates.spec.CandidateSpec``: ``restore``, ``save``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from acoustic_env.learn import mlp, spectro
from acoustic_env.learn.portable import Portable, from_cnn, from_network, rebuild_network


def mlp_restore(shape: tuple[int, ...], kind: str, n_classes: int, settings: dict[str, Any],
                state: dict[str, Any]) -> nn.Module:
    """The MLP of ``settings`` (``PARAMS["mlp"]["network"]``'s form) over vectors of ``shape`` (``(width,)``) with
    its best round's weights ``state``, in evaluation mode."""
    return rebuild_network(mlp.architecture(shape[0], kind, n_classes, settings), state)


def mlp_save(module: nn.Module, shape: tuple[int, ...], kind: str, n_classes: int, params: dict[str, Any]) -> Portable:
    """The MLP's saved form: its weights and architecture (``params``: all its settings, ``network`` among them)."""
    return from_network(module, mlp.architecture(shape[0], kind, n_classes, params["network"]), kind, n_classes)


def cnn_restore(shape: tuple[int, ...], kind: str, n_classes: int, settings: dict[str, Any],
                state: dict[str, Any]) -> nn.Module:
    """The CNN of ``settings`` over images of ``shape`` (``(bands, frames)``) with the weights ``state``, in
    evaluation mode."""
    return rebuild_network(spectro.architecture(shape[0], kind, n_classes, settings), state)


def cnn_save(module: nn.Module, shape: tuple[int, ...], kind: str, n_classes: int, params: dict[str, Any]) -> Portable:
    """The CNN's saved form over its window of ``shape[1]`` frames (``params``: all its settings, as recorded)."""
    return from_cnn(module, shape[1], kind, n_classes, params)
