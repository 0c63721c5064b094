"""The one embedder interface every model sits behind, and what they share.

Shaped like the HEAR API (load a model, then one clip-level vector per clip of a batch) but not
that API: ``embed`` takes a zero-padded numpy batch with each clip's length and returns one array
per output column, where HEAR's ``get_scene_embeddings`` takes equal-length torch clips and returns
one tensor; there are no timestamp embeddings (docs/embedders.md).

An embedder turns a batch of 16 kHz clips into clip-level float32 vectors, one column per
output (``{"vggish": [n, 128]}``, ``{"panns": [n, 2048], "panns_scores": [n, 527]}``).
Batches arrive zero-padded to a common length with the true lengths alongside; every
embedder works on each clip's valid samples only, so a clip gets the same vector whatever
it was batched with. Clips shorter than a model's minimum input are zero-padded at the end
to that minimum (each model documents its minimum).

Pooling frames to a clip (what :class:`PatchEmbedder` does, and the default pooling a
spec states): embeddings are averaged over frames (the usual clip summary of
frame embeddings, as HEAR's scene embeddings do); class scores take the maximum over
frames, the standard clip-level tagging rule (a sound present in one second is present in
the clip). No standard deviation over frames is added: it would double every column's
width without evidence yet that the classifier needs it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from acoustic_env.embedders.spec import PRECISIONS, EmbedderSpec


class Embedder(ABC):
    """A pretrained audio model that maps clips to clip-level vectors.

    Each subclass sets ``spec``, its :class:`~.spec.EmbedderSpec`: the
    name, widths, class names and pooling it reports all come from there, so the feature
    table's schema and metadata (written from the spec before any model loads) and the
    model agree.

    Attributes:
        weights_id: SHA-256 of the checkpoint file, or ``"random"``.
        max_batch: most frames or clips per forward pass (default: the spec's for a CPU).
    """

    spec: EmbedderSpec

    def __init__(self, model: torch.nn.Module | Any, weights_id: str, device: str = "cpu",
                 precision: str = "fp32", max_batch: int | None = None) -> None:
        max_batch = self.spec.max_batch_cpu if max_batch is None else max_batch
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.device = torch.device(device)
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        # a torch network moves to the device; a runtime of its own (BirdNET's TF Lite interpreter) runs on the host
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.weights_id = weights_id
        self.precision = precision
        self.max_batch = max_batch

    @property
    def name(self) -> str:
        """Column name of the embedding, also the registered name."""
        return self.spec.name

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def score_names(self) -> tuple[str, ...] | None:
        """Class names of the ``<name>_scores`` column, if the model has one."""
        return self.spec.score_names

    @property
    def output_columns(self) -> dict[str, tuple[int, ...]]:
        """Output column name → per-clip shape."""
        return {col: (width,) for col, width in self.spec.columns().items()}

    def metadata(self) -> dict[str, Any]:
        """What a feature table or run record should say about these columns."""
        return {
            "embedder": self.name,
            "sample_rate": self.sample_rate,
            "columns": {k: list(v) for k, v in self.output_columns.items()},
            "weights_id": self.weights_id,
            "precision": self.precision,
            "pooling": {col: m["pooling"] for col, m in self.spec.column_metadata().items()},
        }

    def embed(self, batch: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Clip-level outputs for ``batch`` [n, samples] (float32, 16 kHz).

        ``lengths`` [n] gives each clip's true number of samples when the batch was
        zero-padded to a common length; samples past it are ignored.
        """
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 2:
            raise ValueError(f"batch must be [n, samples], got shape {batch.shape}")
        if lengths is None:
            lengths = np.full(batch.shape[0], batch.shape[1], dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.shape != (batch.shape[0],) or (lengths < 1).any() or (
                lengths > batch.shape[1]).any():
            raise ValueError("lengths must be [n] sample counts between 1 and the batch width")
        clips = [batch[i, : lengths[i]] for i in range(batch.shape[0])]
        with torch.inference_mode():
            out = self._embed_clips(clips)
        return {key: value.astype(np.float32, copy=False) for key, value in out.items()}

    def embed_tensor(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip-level outputs of equal-length clips ``batch`` [n, samples] (16 kHz), as float32 tensors on
        this embedder's device.

        The entry of the extract's device stage: the clips are already on the device (the
        separation made fg and bg there), and the outputs stay there until the stage brings every
        result back at once, so no signal makes a trip to the host. Each clip is embedded on all of
        its samples, as ``embed`` does a clip of that length.
        """
        if batch.ndim != 2 or batch.shape[1] < 1:
            raise ValueError(f"batch must be [n, samples], got shape {tuple(batch.shape)}")
        with torch.inference_mode():
            out = self._embed_batch(batch.to(self.device, torch.float32))
        return {key: value.float() for key, value in out.items()}

    @abstractmethod
    def _embed_clips(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Clip-level outputs for unpadded clips of any lengths."""

    def _embed_batch(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip-level outputs of equal-length clips on the device; the built-in models stay on it.

        This default goes through the host (``_embed_clips``), so that an embedder written
        with only ``_embed_clips`` works in the device stage too.
        """
        out = self._embed_clips(list(batch.cpu().numpy()))
        return {key: torch.from_numpy(np.asarray(value)).to(self.device) for key, value in out.items()}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast around the network (never the front end) when asked for, on CUDA or the CPU."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _tensor(self, clip: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(clip)).to(self.device)


def pad_to(clip: np.ndarray, min_samples: int) -> np.ndarray:
    """Zero-pad ``clip`` at the end to at least ``min_samples``."""
    if clip.shape[-1] >= min_samples:
        return clip
    return np.pad(clip, (0, min_samples - clip.shape[-1]))


def pad_batch(batch: torch.Tensor, min_samples: int) -> torch.Tensor:
    """Zero-pad the clips of ``batch`` [n, samples] at the end to at least ``min_samples``: ``pad_to`` for tensors."""
    return F.pad(batch, (0, max(min_samples - batch.shape[-1], 0)))


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class PatchEmbedder(Embedder):
    """Models that embed 0.96 s log-mel patches one by one (VGGish, YAMNet).

    Patches of all clips in a batch go through the network together (at most
    ``max_batch`` at a time) and are pooled back per clip.
    """

    @abstractmethod
    def _patches(self, clip: np.ndarray) -> torch.Tensor:
        """One clip → its log-mel patches [patches, 96, 64], on the device."""

    @abstractmethod
    def _network(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patches [N, 1, 96, 64] float32 → per-patch outputs by column name."""

    def _device_frame_outputs(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-patch outputs on the device in float32, computed ``max_batch`` at a time."""
        parts: dict[str, list[torch.Tensor]] = {}
        x = patches.float()[:, None]
        for part in chunks(x.shape[0], self.max_batch):
            with self._autocast():
                out = self._network(x[part])
            for key, value in out.items():
                parts.setdefault(key, []).append(value.float())
        return {key: torch.cat(values) for key, values in parts.items()}

    def _frame_outputs(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-patch outputs on the CPU in float32."""
        return {key: value.cpu() for key, value in self._device_frame_outputs(patches).items()}

    def _pool(self, key: str) -> Any:
        """How the frames of column ``key`` become one clip vector (the spec's pooling)."""
        return torch.amax if key == self.spec.scores_column else torch.mean

    def _pooled(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patches of equal-length clips [clips, patches, 96, 64] → clip-level outputs, on the device.

        Every clip has as many patches, so the clips' patches go through the network as one
        batch and are pooled by a reshape, with no loop over clips.
        """
        n, p = patches.shape[:2]
        frames = self._device_frame_outputs(patches.flatten(0, 1))
        return {key: self._pool(key)(value.unflatten(0, (n, p)), dim=1) for key, value in frames.items()}

    def embed_frames(self, clip: np.ndarray) -> dict[str, np.ndarray]:
        """Frame-level outputs of one clip: ``{column: [frames, width]}``."""
        with torch.inference_mode():
            out = self._frame_outputs(self._patches(np.asarray(clip, dtype=np.float32)))
        return {key: value.numpy() for key, value in out.items()}

    def _embed_clips(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        per_clip = [self._patches(clip) for clip in clips]
        frames = self._frame_outputs(torch.cat(per_clip))
        counts = [p.shape[0] for p in per_clip]
        pooled: dict[str, np.ndarray] = {}
        for key, value in frames.items():
            pool = self._pool(key)
            pooled[key] = torch.stack([pool(part, dim=0)
                                       for part in torch.split(value, counts)]).numpy()
        return pooled
