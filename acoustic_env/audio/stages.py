"""The extract stages as plain functions of Arrow batches: decode, CPU features, embedders, write.

They know nothing of Ray: ``acoustic_env.audio.chain`` declares their order (decode and CPU
features together, then the embedders, then the writers; with no embedder, the feature stage
writes its own parts; on a GPU, decode feeds one device stage that computes every feature and
every embedding on the card), which ``acoustic_env.distributed.pipeline`` runs as Ray actor pools
and ``acoustic_env.jobs.in_process`` in the job's own process; a test or a notebook can call them
directly on a batch. A clip that fails in a stage becomes
an error row that later stages pass through, so the writer puts it in errors/ instead of
features/.

Every stage works on columns (see ``acoustic_env.audio.rows``): audio is read through
zero-copy views of one float32 buffer, results are gathered into numpy arrays and handed
to Arrow whole; no sample and no feature value ever becomes a Python object.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from acoustic_env import layout
from acoustic_env.audio import startup
from acoustic_env.audio.decode import decode_clip
from acoustic_env.audio.rows import (
    AUDIO,
    CPU_PREFIX,
    DECODE_COLUMNS,
    ERROR_COLUMNS,
    SEPARATED,
    Failures,
    audio_array,
    audio_column,
    audio_columns,
    audio_views,
    conform,
    error_mask,
    masked,
    redact_columns,
    vector_array,
)
from acoustic_env.config import SIGNALS, ExtractConfig
from acoustic_env.embedders.registry import get
from acoustic_env.embedders.spec import EmbedderSpec
from acoustic_env.errors import OutputWriteError
from acoustic_env.features import cpu_features, feature_metadata, feature_stages
from acoustic_env.features.logmel import COLUMN as LOGMEL
from acoustic_env.features.logmel import image_settings
from acoustic_env.storage import join, redact, transport_failure, write_parquet
from acoustic_env.table import ERRORS_SCHEMA, embedding_column, encode_images, metadata_json, now_utc

if TYPE_CHECKING:
    from acoustic_env.embedders.base import Embedder


def vector_columns(cfg: ExtractConfig) -> dict[str, int]:
    cols = cpu_vector_columns(cfg)
    for name in cfg.embedders:
        cols.update(embedder_columns(get(name), embed_signals(cfg)))  # from the spec: no model loads on the driver
    return cols


def embed_signals(cfg: ExtractConfig) -> tuple[str, ...]:
    """The signals each embedder embeds, in ``SIGNALS`` order (the table's column order, whatever the flag's)."""
    return tuple(s for s in SIGNALS if s in cfg.embed_signals)


def separated_signals(cfg: ExtractConfig) -> tuple[str, ...]:
    """The separated signals whose audio the feature stage hands on: only those an embedder will embed."""
    return tuple(s for s in SEPARATED if cfg.embedders and s in cfg.embed_signals)


def embedder_columns(spec: EmbedderSpec, signals: tuple[str, ...]) -> dict[str, int]:
    """An embedder's columns for each signal, signal by signal: ``panns``, ``panns_scores``, ``panns_fg``, ..."""
    return {embedding_column(col, s): d for s in signals for col, d in spec.columns().items()}


def cpu_vector_columns(cfg: ExtractConfig) -> dict[str, int]:
    """The CPU feature columns and their widths."""
    return {c: int(np.prod(m["shape"])) for c, m in feature_metadata(cfg.features).items()}


def image_columns(cfg: ExtractConfig) -> tuple[str, ...]:
    """The image columns (``table.IMAGE_TYPE``): ``logmel`` when ``features.logmel`` asks for it."""
    return (LOGMEL,) if cfg.features.logmel else ()


def _optional(batch: pa.Table, name: str) -> list[Any]:
    return batch[name].to_pylist() if name in batch.column_names else [None] * batch.num_rows


# --- stages (each a plain function of an Arrow batch; Ray only schedules them) ---

def decode_batch(batch: pa.Table, cfg: ExtractConfig, schema: pa.Schema) -> pa.Table:
    """Decode each healthy clip of a batch into the ``audio`` column and the decode facts."""
    n = batch.num_rows
    failures = Failures.of(batch)
    uris, starts, ends = batch["uri"].to_pylist(), _optional(batch, "start_s"), _optional(batch, "end_s")
    clips: list[np.ndarray | None] = [None] * n
    facts = {name: np.zeros(n, dtype=t.to_pandas_dtype()) for name, t in DECODE_COLUMNS.items()}
    cpu = np.zeros(n)
    for i in np.flatnonzero(failures.ok):
        t0 = time.thread_time()
        try:
            clip = decode_clip(uris[i], cfg.decode, starts[i], ends[i], cfg.cut_segments)
        except Exception as exc:  # noqa: BLE001 - a bad clip must never take the batch down
            failures.fail(i, exc, "decode")
            continue
        clips[i] = clip.audio
        facts["orig_sample_rate"][i] = clip.orig_sample_rate
        facts["channels"][i] = clip.channels
        facts["orig_duration_s"][i] = clip.orig_duration_s
        facts["duration_s"][i] = clip.audio.size / cfg.decode.sample_rate
        facts["is_silent"][i] = clip.is_silent
        cpu[i] = time.thread_time() - t0
    valid = failures.ok
    columns: dict[str, Any] = {name: masked(v, valid, DECODE_COLUMNS[name]) for name, v in facts.items()}
    columns[AUDIO] = audio_array(clips)
    columns[CPU_PREFIX + "decode"] = pa.array(cpu)
    columns.update(failures.columns())
    # the URI has been read: from here on (later stages, features/, errors/) its secrets are ***
    return redact_columns(conform(batch, schema, columns), cfg.redact_query_params)


def features_batch(batch: pa.Table, cfg: ExtractConfig, schema: pa.Schema, keep_audio: bool = True,
                   device: str | None = None, embedders: dict[str, Embedder] | None = None) -> pa.Table:
    """Separation, indices, spectral statistics and MPS for each decoded clip of a batch (and its log-mel image).

    ``device`` None: the numpy path (``features.impl``), clip by clip; a torch device
    (``"cuda"``): the torch path, the batch's clips as tensors on it (``features.torch``).
    ``keep_audio=False`` (no embedder follows) drops the audio here, so that only
    feature vectors travel on to the writer. With ``keep_audio``, the signals the embedders
    embed travel on: the raw audio unless ``embed_signals`` leaves raw out, and the separated
    ones it names (``separated_signals``) in ``audio_fg``/``audio_bg``. ``embedders`` (name →
    loaded on ``device``; the device stage): they embed each signal of ``embed_signals`` in the
    same pass, into their columns (``yamnet``, ``yamnet_fg``, ...) with ``embed_<name>`` seconds.
    """
    n = batch.num_rows
    failures = Failures.of(batch)
    views = audio_views(batch[AUDIO])
    widths = cpu_vector_columns(cfg)
    for emb in (embedders or {}).values():
        widths.update(embedder_columns(emb.spec, embed_signals(cfg)))
    matrices = {col: np.zeros((n, d), dtype=np.float32) for col, d in widths.items()}
    nonfinite = np.zeros(n, dtype=np.int32)
    images: list[np.ndarray | None] = [None] * n
    cpu = {s: np.zeros(n) for s in (*feature_stages(cfg.features), *(f"embed_{name}" for name in embedders or {}))}
    carried = separated_signals(cfg) if keep_audio else ()
    signals: dict[str, list[np.ndarray | None]] = {s: [None] * n for s in carried}
    compute = _clip_features if device is None else _device_features(device, embedders or {})
    for rows, feats, seconds, separated in compute(views, np.flatnonzero(failures.ok), cfg, failures, bool(carried)):
        for col, m in matrices.items():
            m[rows] = feats[col]
        nonfinite[rows] = feats["nonfinite_features"]
        for i, image in zip(rows, feats.get(LOGMEL, ())):
            images[i] = image
        for s, v in seconds.items():
            cpu[s][rows] = v / rows.size
        for s, clips in signals.items():
            for i, clip in zip(rows, separated[s]):
                clips[i] = clip
    valid = failures.ok
    columns: dict[str, Any] = {col: vector_array(m, valid) for col, m in matrices.items()}
    columns["nonfinite_features"] = masked(nonfinite, valid, pa.int32())
    if cfg.features.logmel:
        columns[LOGMEL] = encode_images([image if ok else None for image, ok in zip(images, valid)])
    columns.update({CPU_PREFIX + s: pa.array(v) for s, v in cpu.items()})
    columns.update(failures.columns())
    # a clip that failed here keeps no separated audio: its row is an error row from now on
    columns.update({audio_column(s): audio_array([c if ok else None for c, ok in zip(clips, valid)])
                    for s, clips in signals.items()})
    if not keep_audio or "raw" not in embed_signals(cfg):  # no embedder reads the raw audio
        columns[AUDIO] = pa.nulls(n, schema.field(AUDIO).type)
    return conform(batch, schema, columns)


#: (rows, their features, seconds per stage for all of them, their separated signals: signal → one array per row)
#: for the clips ``todo`` of a batch; the features' ``logmel``, where computed, is one image per row
FeatureGroups = Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, float], dict[str, list[np.ndarray]]]]


def _clip_features(views: list[np.ndarray], todo: np.ndarray, cfg: ExtractConfig, failures: Failures,
                   keep_separated: bool = False) -> FeatureGroups:
    """The numpy path: ``cpu_features`` per clip, CPU seconds per stage (and fg/bg when ``keep_separated``)."""
    for i in todo:
        separated: dict[str, np.ndarray] | None = {} if keep_separated else None
        try:
            feats, seconds = cpu_features(views[i], cfg.decode.sample_rate, cfg.features, separated)
        except Exception as exc:  # noqa: BLE001 - a bad clip must never take the batch down
            failures.fail(i, exc, "features")
            continue
        if LOGMEL in feats:
            feats[LOGMEL] = [feats[LOGMEL]]
        yield np.array([i]), feats, seconds, {s: [a] for s, a in (separated or {}).items()}


def _device_features(device: str, embedders: dict[str, Embedder]):
    """The torch path on ``device``: the clips as one pass (``batch_features``, with ``embedders``), wall
    seconds per stage.

    If the batch fails as a whole, each clip is retried alone, so that one bad clip
    becomes one error row.
    """
    from acoustic_env.features.torch.batch import batch_features  # torch: only where this path runs

    def group(rows: np.ndarray, clips: list[np.ndarray], cfg: ExtractConfig, keep_separated: bool):
        separated: dict[str, list[np.ndarray | None]] | None = {} if keep_separated else None
        feats, seconds = batch_features(clips, cfg.decode.sample_rate, cfg.features, device, embedders=embedders,
                                        embed_signals=embed_signals(cfg), separated=separated)
        return rows, feats, seconds, separated or {}

    def compute(views: list[np.ndarray], todo: np.ndarray, cfg: ExtractConfig, failures: Failures,
                keep_separated: bool = False) -> FeatureGroups:
        if not todo.size:
            return
        try:
            yield group(todo, [views[i] for i in todo], cfg, keep_separated)
            return
        except Exception:  # noqa: BLE001 - isolate the clip that broke the batch
            pass
        for i in todo:
            try:
                yield group(np.array([i]), [views[i]], cfg, keep_separated)
            except Exception as exc:  # noqa: BLE001
                failures.fail(i, exc, "features")

    return compute


class DecodeStage:
    """Actor: decode each clip of a batch; on a GPU node, what the CPUs do while the card computes the rest.

    One actor per core, each on one thread: the native thread pools (OpenBLAS, OpenMP)
    are sized by the machine's core count when numpy is first imported, before Ray sets
    ``OMP_NUM_THREADS`` for the worker, so every actor would otherwise run a pool as wide
    as the machine on cores the other actors need (on 2 cores that halves a process pool).
    Each stage's actor stamps its start-up onto the first batch it hands on (``audio/startup.py``).
    """

    #: the stage's name in the run record's ``startup``
    name = "decode"

    def __init__(self, cfg: ExtractConfig, schema: pa.Schema):
        self.clock = startup.ActorClock(self.name)
        self._threads = threadpool_limits(limits=1)  # kept: the limits hold while it lives
        self.cfg = cfg
        self.schema = schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        began = time.time()
        return self.clock.stamp(self.work(batch), began)

    def work(self, batch: pa.Table) -> pa.Table:
        """The stage's output for ``batch``."""
        return decode_batch(batch, self.cfg, self.schema)

    def close(self) -> None:
        """Give the process its thread pools back: for a stage run in the job's own process, not an actor."""
        self._threads.restore_original_limits()


class CpuFeatureStage(DecodeStage):
    """Actor: decode, then the CPU features, for each clip of a batch.

    Decode and features share one actor so that a decoded clip never crosses a process
    boundary (160,000 float32 samples per 10-s clip) except to the embedders that follow
    (without embedders, :class:`FeatureWriterStage` runs instead and no audio leaves it); the
    separated signals travel with it only when ``embed_signals`` names them.
    """

    name = "features"

    def work(self, batch: pa.Table) -> pa.Table:
        return features_batch(super().work(batch), self.cfg, self.schema)


class FeatureWriterStage(CpuFeatureStage):
    """Actor: decode, CPU features and write, for a run with no embedder.

    With nothing between the features and the write, a separate writer only adds a
    process to start (Python, Ray, this module's imports: about 2 CPU-seconds) and a trip
    through the object store per batch; Ray Data's own writes are fused into the last
    stage the same way. Each call takes a whole block and yields one summary per part
    (:func:`features_and_write`), so progress streams while a large block is worked on.
    """

    def __init__(self, cfg: ExtractConfig, schema: pa.Schema, output: str, run_id: str, meta: dict[str, Any]):
        super().__init__(cfg, schema)
        self.target = {"output": output, "run_id": run_id, "meta": meta}

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        began = time.time()
        for summary in features_and_write(batch, self.cfg, self.schema, **self.target):
            yield self.clock.stamp(summary, began)


def features_and_write(batch: pa.Table, cfg: ExtractConfig, schema: pa.Schema, output: str, run_id: str,
                       meta: dict[str, Any]) -> Iterator[pa.Table]:
    """Decode and featurise ``cfg.batch_size`` clips at a time; write a part per ``cfg.write_batch_size`` rows.

    Yields each part's one-row summary (:func:`write_batch`). Audio is held for one small
    batch at a time, however large the block.
    """
    for start in range(0, batch.num_rows, cfg.write_batch_size):
        rows = batch.slice(start, cfg.write_batch_size)
        done = [features_batch(decode_batch(rows.slice(i, cfg.batch_size), cfg, schema), cfg, schema, keep_audio=False)
                for i in range(0, rows.num_rows, cfg.batch_size)]
        yield write_batch(pa.concat_tables(done), output, run_id, meta)


class EmbedderStage:
    """Actor: one embedder applied to the decoded clips of a batch, once per signal of ``embed_signals``.

    The raw signal's outputs go to the embedder's own columns (``panns``, ``panns_scores``),
    the separated signals' (from ``audio_fg``/``audio_bg``, which the feature stage filled)
    to ``panns_fg``, ``panns_scores_fg``, ... Clips are zero-padded to the batch's longest
    and passed with their true lengths (the embedder pools over valid frames only). If the
    batch fails as a whole, each clip is retried alone so that one bad clip becomes one
    error row.

    ``warm`` (the Ray pipeline, where other actors decode meanwhile): the constructor runs one dummy batch
    (``startup.warm_clips``) after loading the network, so that the first real batch finds it warm.
    """

    def __init__(self, spec: EmbedderSpec, cfg: ExtractConfig, schema: pa.Schema, device: str, weights_id: str,
                 warm: bool = False):
        self.stage = f"embed_{spec.name}"
        self.clock = startup.ActorClock(self.stage)
        self.schema = schema
        self.signals = embed_signals(cfg)
        self.outputs = tuple(spec.columns())  # the embedder's own output names
        self.widths = embedder_columns(spec, self.signals)
        with self.clock.phase("load"):
            self.embedder = stage_embedder(spec, cfg, device, weights_id)
        if warm:
            clips = startup.warm_clips(device, cfg.embed_batch_size, cfg.decode.sample_rate)
            self.clock.warm(lambda: self._embed(clips))

    def _embed(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        lengths = np.array([c.size for c in clips])
        batch = np.zeros((len(clips), int(lengths.max())), dtype=np.float32)
        for i, c in enumerate(clips):
            batch[i, : c.size] = c
        return self.embedder.embed(batch, lengths)

    def __call__(self, batch: pa.Table) -> pa.Table:
        began = time.time()
        n = batch.num_rows
        failures = Failures.of(batch)
        matrices = {col: np.zeros((n, d), dtype=np.float32) for col, d in self.widths.items()}
        cpu = np.zeros(n)
        for signal in self.signals:
            todo = np.flatnonzero(failures.ok)  # a clip that failed on an earlier signal is an error row already
            if not todo.size:
                break
            views = audio_views(batch[audio_column(signal)])
            t0 = time.thread_time()
            try:
                groups = [(todo, self._embed([views[i] for i in todo]))]
            except Exception:  # noqa: BLE001 - isolate the clip that broke the batch
                groups = []
                for i in todo:
                    try:
                        groups.append((np.array([i]), self._embed([views[i]])))
                    except Exception as exc:  # noqa: BLE001
                        failures.fail(i, exc, self.stage)
            for rows, out in groups:
                for col in self.outputs:
                    matrices[embedding_column(col, signal)][rows] = out[col]
            cpu[todo] += (time.thread_time() - t0) / todo.size
        columns: dict[str, Any] = {col: vector_array(m, failures.ok) for col, m in matrices.items()}
        columns[CPU_PREFIX + self.stage] = pa.array(cpu)
        columns.update(failures.columns())
        return self.clock.stamp(conform(batch, self.schema, columns), began)


class DeviceStage:
    """Actor: every feature of every signal and every embedding of a decoded batch, in one pass on one device.

    The extract's stage on a GPU node (``device`` "cuda"; any torch device works, "cpu" in the
    tests): the batch crosses to the card once, the separation, indices, spectral statistics
    and MPS run on it as tensors, the embedders (loaded here once, on the card) embed each
    signal of ``embed_signals`` from those same tensors, and everything comes back in one copy
    (``features.torch.batch``). No audio leaves this stage: the writer gets vectors only.
    ``specs`` are the embedders' specs themselves, so that one registered only in the driver
    loads too. ``warm``: the constructor runs a dummy batch of ``device_batch_size`` clips through every
    feature and embedder (``startup.warm_clips``), so that the card's first pass (its kernels, FFT plans
    and library handles) is paid while the CPU actors decode the first blocks.
    """

    name = "device"

    def __init__(self, cfg: ExtractConfig, schema: pa.Schema, device: str, specs: dict[str, EmbedderSpec],
                 weights: dict[str, str], warm: bool = False):
        self.clock = startup.ActorClock(self.name)
        self.cfg, self.schema, self.device = cfg, schema, device
        with self.clock.phase("load"):
            self.embedders = {name: stage_embedder(spec, cfg, device, weights[name]) for name, spec in specs.items()}
        if warm:
            from acoustic_env.features.torch.batch import batch_features  # torch: only where this stage runs

            clips = startup.warm_clips(device, cfg.device_batch_size, cfg.decode.sample_rate)
            self.clock.warm(lambda: batch_features(clips, cfg.decode.sample_rate, cfg.features, device,
                                                   embedders=self.embedders, embed_signals=embed_signals(cfg)))

    def __call__(self, batch: pa.Table) -> pa.Table:
        began = time.time()
        return self.clock.stamp(features_batch(batch, self.cfg, self.schema, keep_audio=False, device=self.device,
                                               embedders=self.embedders), began)


def stage_embedder(spec: EmbedderSpec, cfg: ExtractConfig, device: str, weights_id: str) -> Embedder:
    """An embedder as an extract stage loads it: on ``device``, at ``cfg.embed_precision``, its weights the
    checkpoint of SHA-256 ``weights_id`` that the driver checked (or seeded random ones, for "random")."""
    # here, not above: torch is imported in the actors only, never on the driver
    from acoustic_env.embedders.factory import load_embedder

    sha = None if weights_id == "random" else weights_id
    return load_embedder(spec, device=device, allow_random_weights=weights_id == "random",
                         cache_dir=cfg.weights_cache, precision=cfg.embed_precision, sha256=sha)


def _write_part(table: pa.Table, output: str, sub: str, name: str) -> None:
    """Write one part; a failure (after the storage's retries) is an OutputWriteError naming the output.

    Not an error row: the clips are fine, the output is not, and every later part would
    meet the same store. The job stops with one line; the next run redoes these clips.
    """
    try:
        write_parquet(table, join(output, sub, name))
    except Exception as exc:  # noqa: BLE001 - every transport says it its own way
        _, reason = transport_failure(exc)
        raise OutputWriteError(redact(f"output: cannot write to {output}: {reason} (writing {sub}/{name})")) from exc


class PartWriter:
    """Actor: ``write_batch`` after the embedders or the device stage (without them the feature actors write
    their own parts: :class:`FeatureWriterStage`).

    An actor rather than a task: as tasks, the writes ran in short-lived workers, and with every core held by
    the feature actors Ray kills a worker that has been idle for a second, so nearly every part started a new
    process and imported the stage code again (2-3 CPU seconds, a fifth of a 2-core machine's time on the
    588-clip benchmark). An actor pays that once.
    """

    def __init__(self, output: str, run_id: str, meta: dict[str, Any]):
        self.kwargs = {"output": output, "run_id": run_id, "meta": meta}

    def __call__(self, batch: pa.Table) -> pa.Table:
        return write_batch(batch, **self.kwargs)


def write_batch(batch: pa.Table, output: str, run_id: str, meta: dict[str, Any]) -> pa.Table:
    """Split a batch into features/ and errors/ parts; return a one-row summary.

    Raises OutputWriteError when a part cannot be written.
    """
    bad = error_mask(batch)
    n_bad = int(bad.sum())
    drop = {*audio_columns(batch), *ERROR_COLUMNS, startup.COLUMN} | {
        c for c in batch.column_names if c.startswith(CPU_PREFIX)}
    if n_bad < batch.num_rows:
        keep = [f for f in batch.schema if f.name not in drop]
        table = batch.filter(pa.array(~bad)).select([f.name for f in keep])
        table = table.replace_schema_metadata(metadata_json(meta))
        ids = table["clip_id"].to_pylist()  # up to write_batch_size strings, for the part's name
        _write_part(table, output, layout.FEATURES, layout.part_name(run_id, ids))
    error_types = ""
    if n_bad:
        failed = batch.filter(pa.array(bad))
        err = pa.table({"clip_id": failed["clip_id"], "uri": failed["uri"], "stage": failed["error_stage"],
                        "error_type": failed["error_type"], "message": failed["error_message"],
                        "run_id": pa.repeat(run_id, n_bad),
                        "time": pa.repeat(pa.scalar(now_utc(), ERRORS_SCHEMA.field("time").type), n_bad)})
        _write_part(err.cast(ERRORS_SCHEMA), output, layout.ERRORS, layout.part_name(run_id, failed["clip_id"].to_pylist()))
        error_types = ",".join(failed["error_type"].to_pylist())
    summary: dict[str, Any] = {"n_ok": [batch.num_rows - n_bad], "n_failed": [n_bad], "error_types": [error_types],
                               startup.COLUMN: pa.array([startup.entries(batch)], startup.TYPE)}
    for c in batch.column_names:
        if c.startswith(CPU_PREFIX):
            summary[c] = [pc.sum(batch[c]).as_py() or 0.0]
    return pa.table(summary)


def stages(cfg: ExtractConfig) -> tuple[str, ...]:
    """The stages whose seconds the run record gives: decode, the features' (``feature_stages``), the embedders'."""
    return ("decode", *feature_stages(cfg.features), *(f"embed_{e}" for e in cfg.embedders))


def table_metadata(cfg: ExtractConfig, run_id: str, weights: dict[str, str]) -> dict[str, Any]:
    """Schema metadata of features/: names, shapes, axes and provenance."""
    from acoustic_env import __version__

    columns = feature_metadata(cfg.features)
    if cfg.features.logmel:
        columns[LOGMEL] = image_settings(cfg.features).metadata()
    for name in cfg.embedders:
        for signal in embed_signals(cfg):  # a separated signal's columns say which (the raw one's as before)
            for col, meta in get(name).column_metadata().items():
                columns[embedding_column(col, signal)] = {**meta, "source": name, "weights": weights[name],
                                                          **({} if signal == "raw" else {"signal": signal})}
    return {"format_version": 1, "package_version": __version__, "run_id": run_id,
            "sample_rate": cfg.decode.sample_rate, "target_rms": cfg.decode.target_rms,
            "columns": columns, "weights": weights}
