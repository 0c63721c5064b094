"""The CNN's images streamed by Ray Data: the table's log-mel column decoded in the workers, never whole in one place.

Cross-validation decodes every image into one array in the train job's process (``jobs.train.evaluation``), which
bounds it to a few thousand clips. A table larger than that trains the CNN here instead:

* ``images``: a lazy Ray Data read of the table's ``clip_id`` and ``logmel`` columns (Parquet, through the
  table's own filesystem), each block's rows of one split kept, decoded (``table.decode_images``) and brought to
  the model's window (``learn.image_input.stack_images``) by Ray Data's tasks, as ``{"x", "y"}`` float batches;
* ``survey``: one such pass that returns a few numbers per row (frames, sums), from which the model's window (the
  median length) and its input scaling (the images' mean and standard deviation) are set, as in memory;
* ``stream``: a worker's dataset of its training rows (all of them for one worker; for two or more data-parallel
  workers its equal share, ``Rows.share``, a dataset of its own) and every validation row as ``learn.fit``'s
  ``Stream``: ``iter_torch_batches`` on the training device, each epoch with a local shuffle buffer and the files
  in a new order;
* ``score``: the trained network's probabilities of a split's clips, computed in Ray Data's tasks; what comes back
  is a row position and a probability per class;
* ``distributed.tune.fit_cnn`` runs all of it for one run: the survey, then one Tune trial, which trains in
  its own process (one worker) or launches data-parallel Ray Train workers (two or more), on a GPU with mixed
  precision when the setup has one, and the best round's network loaded back.

The training process holds a shuffle buffer and the batches in flight, the object store Ray Data's bounded
window of blocks; no process holds a split's images (``benchmarks/cnn_stream.py`` measures the driver's memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.learn.image_input import IMAGE_COLUMN, stack_images
from acoustic_env.table import TableInfo, decode_images

if TYPE_CHECKING:  # learn.fit imports torch: Ray Data's decode tasks, which import this module, never need it
    import ray.data
    from torch import nn

    from acoustic_env.learn.fit import Batch, Stream

#: CPUs each read or decode task holds: a small fraction, so that Ray Data, which shares the CPUs the training
#: workers leave among its operators, can always start one (0.5 hung two workers on 2 CPUs: "not enough to run").
DATA_CPUS = 0.1
#: Rows per decode batch (a 10-s image is 256 kB as float32: 16 MB a batch) and in the training shuffle buffer.
DECODE_ROWS, SHUFFLE_ROWS = 64, 512
#: Rows per batch when scoring (no gradients: larger batches than training's).
SCORE_ROWS = 256
#: CPUs left to Ray Data's tasks beside the training workers (at most half the cluster's): a whole one. Ray 2.60's
#: default Parquet reader starts with a listing task (``ListFiles``) that asks for one CPU, whatever ``num_cpus``
#: says; the reader ``_read`` uses has none, and the reserve keeps the read and decode tasks beside the workers.
DATA_RESERVE = 1.0


@dataclass(frozen=True)
class Rows:
    """The rows of one split: their clip ids (str) and targets (class indices, or an [n, K] 0/1 matrix)."""

    ids: np.ndarray
    y: np.ndarray

    def share(self, rank: int, world: int) -> Rows:
        """The rows that worker ``rank`` of ``world`` data-parallel ones trains on, read as a dataset of its own
        (``distributed.tune.fit_cnn`` says why): ``learn.fit.equal_share``'s, as for arrays, so that all the
        workers take as many steps."""
        from acoustic_env.learn.fit import equal_share

        mine = equal_share(len(self.ids), rank, world)
        return Rows(self.ids[mine], self.y[mine])


@dataclass(frozen=True)
class Survey:
    """What one pass over a split's images says: their bands, the model's window, and the input scaling."""

    bands: int
    frames: int  # the median length: the model's window (``learn.image_input.window_frames``)
    mean: float
    std: float


def _read(table: TableInfo, rows: Rows, fn: Any, **kwargs: Any) -> ray.data.Dataset:
    """The ``clip_id`` and image columns of ``table``, ``fn(batch, ids=..., **kwargs)`` over each Arrow batch.

    Read by Ray Data's first Parquet reader (``DataContext.use_datasource_v2`` off for this call only), which reads
    the files' footers in the calling process. Ray 2.60's default reader reads them on a pool of ``FooterReader``
    actors that every read starts and ends, and the CNN reads its table again for every round, worker and split:
    on 2 cores, three reads of 40 files took 13.1 s and 18.4 CPU-s with it against 6.8 s and 7.7 CPU-s, a local Ray's
    start included (``benchmarks/parquet_read.py``).
    """
    import ray.data

    paths, filesystem = table.files()
    ids = pa.array([str(c) for c in rows.ids], pa.string())
    context = ray.data.DataContext.get_current()
    default, context.use_datasource_v2 = context.use_datasource_v2, False
    try:
        read = ray.data.read_parquet(paths, filesystem=filesystem, columns=["clip_id", IMAGE_COLUMN],
                                     num_cpus=DATA_CPUS, shuffle="files")
    finally:
        context.use_datasource_v2 = default
    return read.map_batches(fn, fn_kwargs={"ids": ids, **kwargs}, batch_format="pyarrow", batch_size=DECODE_ROWS,
                            num_cpus=DATA_CPUS)


def _kept(batch: pa.Table, ids: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """The rows of ``batch`` whose clip is in ``ids``, and each one's position in ``ids``."""
    at = pc.index_in(batch["clip_id"], value_set=ids)
    return batch.filter(at.is_valid()), at.drop_null().to_numpy()


def _decoded(batch: pa.Table, ids: pa.Array, y: np.ndarray, bands: int, frames: int) -> dict[str, np.ndarray]:
    """A batch's rows of the split as model inputs at the window (``x``) and their targets (``y``)."""
    kept, at = _kept(batch, ids)
    images = decode_images(kept[IMAGE_COLUMN])
    x = stack_images(images, frames) if images else np.empty((0, bands, frames), np.float32)
    return {"x": x, "y": y[at], "row": at}


def _moments(batch: pa.Table, ids: pa.Array) -> dict[str, np.ndarray]:
    """Per row of the split: its bands and frames (-1 without an image), the sum and the sum of squares of its
    cells."""
    kept, _ = _kept(batch, ids)
    images = decode_images(kept[IMAGE_COLUMN])
    shape = np.array([im.shape if im is not None else (-1, -1) for im in images], np.int64).reshape(-1, 2)
    return {"bands": shape[:, 0], "frames": shape[:, 1],
            "total": np.array([im.sum(dtype=np.float64) if im is not None else 0.0 for im in images]),
            "squares": np.array([np.square(im, dtype=np.float64).sum() if im is not None else 0.0 for im in images])}


def survey(table: TableInfo, rows: Rows) -> Survey:
    """The images of ``rows`` surveyed in Ray Data's tasks: every clip must have one, of one number of bands.

    The scaling is over every cell of every image as stored (not yet at the window); the driver receives four
    numbers a row.
    """
    frames, bands, total, squares = [], [], 0.0, 0.0
    for part in _read(table, rows, _moments).iter_batches(batch_format="numpy", batch_size=None):
        frames.append(part["frames"])
        bands.append(part["bands"])
        total += float(part["total"].sum())
        squares += float(part["squares"].sum())
    frames_of, bands_of = np.concatenate(frames or [[]]), np.concatenate(bands or [[]])
    found, present = len(frames_of), frames_of >= 0
    if found < len(rows.ids) or not present.all():
        raise ConfigError(f"baselines: cnn needs every clip's {IMAGE_COLUMN!r} image; {len(rows.ids) - found} "
                          f"clip(s) of {table.source} are not in it and {int((~present).sum())} have none")
    if len(set(bands_of.tolist())) != 1:
        raise ConfigError(f"baselines: cnn needs images of one number of bands; {table.source} has "
                          f"{sorted(set(bands_of.tolist()))}")
    cells = float((bands_of * frames_of).sum())
    mean = total / cells
    return Survey(int(bands_of[0]), int(np.median(frames_of)), mean, float(np.sqrt(max(squares / cells - mean ** 2,
                                                                                         0.0))))


def images(table: TableInfo, rows: Rows, shape: Survey) -> ray.data.Dataset:
    """The lazy dataset of ``rows``' images at the window of ``shape``: batches of ``x`` [n, bands, frames]
    float32, ``y`` (targets) and ``row`` (the position in ``rows``)."""
    return _read(table, rows, _decoded, y=rows.y, bands=shape.bands, frames=shape.frames)


def stream(train: Any, val: Any, labels: np.ndarray, device: Any) -> Stream:
    """``learn.fit``'s ``Stream`` over ``train`` (this worker's training rows) and ``val`` (Ray datasets).

    ``labels``: the targets of all the training rows (the class weights, an epoch's steps).
    """
    from acoustic_env.learn.fit import Stream

    def batches(data: Any, size: int, shuffle: bool) -> Iterator[Batch]:
        for b in data.iter_torch_batches(batch_size=size, device=device,
                                         local_shuffle_buffer_size=SHUFFLE_ROWS if shuffle else None):
            yield b["x"], b["y"]

    return Stream(train=lambda size: batches(train, size, True), val=lambda: batches(val, SCORE_ROWS, False),
                  labels=labels)


def score(net: nn.Module, data: ray.data.Dataset, n_rows: int, kind: str, n_classes: int) -> np.ndarray:
    """[n_rows, n_classes] probabilities of the rows of ``data`` (``images``), in ``Rows`` order, computed in
    Ray Data's tasks on a CPU."""
    from acoustic_env.learn.mlp import predict_proba

    def proba(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"row": batch["row"], "p": predict_proba(net, batch["x"], kind, n_classes, batch_size=SCORE_ROWS)}

    out = np.full((n_rows, n_classes), np.nan)
    for part in data.map_batches(proba, batch_size=SCORE_ROWS, num_cpus=DATA_CPUS).iter_batches(
            batch_format="numpy", batch_size=None):
        out[part["row"]] = part["p"]
    return out


def training_cpus(cluster: dict[str, float], workers: int, held: float = 0.0) -> float:
    """CPUs of each training worker: the cluster's, less ``held`` (what the run holds besides its workers: a Tune
    trial's driver beside Ray Train workers) and ``DATA_RESERVE`` (at most half) for Ray Data's read and
    decode tasks, which would otherwise wait for ever behind workers that hold every CPU; rounded down, so that the
    reserve stays whole (two workers of 0.5 CPU beside a driver of 0.01 left 0.99 of 2 CPUs: the listing task of
    Ray's default Parquet reader never ran)."""
    cpus = float(cluster.get("CPU", 1.0)) - held
    return max(0.1, math.floor((cpus - min(DATA_RESERVE, cpus / 2)) / workers * 100) / 100)
