"""AudioSet's released VGGish embeddings (TFRecord files) → a feature table, without any audio.

AudioSet publishes, beside its segment lists, 128-dimensional embeddings of every
segment (``audioset_v1_embeddings``: ``bal_train/``, ``unbal_train/``, ``eval/``,
about 2.1 million segments; https://research.google.com/audioset/download.html).
Each TFRecord file holds one ``tf.train.SequenceExample`` per 10-s segment:

- context: ``video_id`` (bytes), ``start_time_seconds`` and ``end_time_seconds``
  (float), ``labels`` (int64 indices into ``class_labels_indices.csv``);
- feature list ``audio_embedding``: one 128-byte string per second, each byte one
  dimension of VGGish's PCA-whitened embedding, quantised to 8 bits.

**De-quantisation.** VGGish's post-processor (tensorflow/models,
``research/audioset/vggish/vggish_postprocess.py`` with ``QUANTIZE_MIN_VAL = -2.0``,
``QUANTIZE_MAX_VAL = +2.0`` in ``vggish_params.py``) clips to [-2, 2] and stores
``uint8((x + 2) * 255 / 4)``; the inverse of that map, used here, is
``q * 4 / 255 - 2``, the lower edge of the code's bin (float32, within 1e-6 of the
exact value). YouTube-8M's reader adds about half a bin
(``+ 4/512``); a constant shift that the standardisation in train and audit removes.

The table (``convert``) has one row per segment in the extract output layout
(``<output>/features/part-*.parquet`` + ``runs/<run_id>.json``), so ``read_features``,
train and audit read it like any extract output:

- ``clip_id`` = ``<YTID>_<start in ms>`` (the id extract gives the same segment, so
  ``--test-list eval_segments.csv`` works), ``group`` = YTID, ``start_s``, ``end_s``;
- ``labels``: MIDs, through the class list (the package's copy of
  ``class_labels_indices.csv`` unless another is given);
- ``audioset_vggish`` (256 float32): the per-segment mean of the de-quantised
  frames, then their maximum; ``n_frames``; ``source`` (the TFRecord file).

Reading streams: one TFRecord file at a time (a file on object storage is copied to
a temporary file first, since the reader takes a local path), one Parquet part per
``part_rows`` segments, and each part's metadata names the TFRecord files it holds,
so a run that is stopped and started again skips the files already converted.
The records are read by the ``tfrecord`` package (framing) and parsed by the
``SequenceExample`` message class it ships (protobuf): no hand-written parsing.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env import layout
from acoustic_env.vocabulary.ontology import load_class_list
from acoustic_env.config import ConfigError
from acoustic_env.config.recipes import AudioSetEmbeddingsConfig
from acoustic_env.errors import DamagedFileError
from acoustic_env.jobs.record import lifecycle
from acoustic_env.jobs.results import EmbeddingsResult
from acoustic_env.storage import (
    filesystem,
    is_local,
    join,
    list_parts,
    strip_protocol_keep,
    write_parquet,
)
from acoustic_env.table import metadata_json, read_metadata, vector_type

log = logging.getLogger("acoustic_env.jobs.audioset.embeddings")

COLUMN = "audioset_vggish"
EMBEDDING_DIM = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
#: What the column's metadata records as its weights: the release, not a checksum we computed.
RELEASE = "audioset_v1_embeddings"
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
FEATURE_NAMES = tuple(f"mean_{i}" for i in range(EMBEDDING_DIM)) + tuple(f"max_{i}" for i in range(EMBEDDING_DIM))


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 codes → float32 values, the inverse of VGGish's post-processor (see the module docstring)."""
    return q.astype(np.float32) * np.float32((QUANTIZE_MAX - QUANTIZE_MIN) / 255.0) + np.float32(QUANTIZE_MIN)


@dataclass(frozen=True)
class Segment:
    """One SequenceExample: a 10-s segment and its quantised frames ([n_frames, 128] uint8)."""

    video_id: str
    start_s: float
    end_s: float
    labels: np.ndarray  # int64 class indices
    frames: np.ndarray


def list_tfrecords(source: str) -> list[str]:
    """One TFRecord file, or every ``*.tfrecord`` below a directory (local or object storage), sorted."""
    fs, path = filesystem(source)
    if fs.isfile(path):
        return [source]
    if not fs.isdir(path):
        raise ConfigError(f"source: no such TFRecord file or directory: {source}")
    found = sorted(p for p in fs.find(path) if p.endswith(TFRECORD_SUFFIXES))
    if not found:
        raise ConfigError(f"source: no *.tfrecord files below {source}")
    return [strip_protocol_keep(source, p) for p in found]


def _parse(record: memoryview, uri: str, n: int, message: Any, decode_error: type[Exception]) -> Segment:
    try:
        ex = message.FromString(bytes(record))
        ctx = ex.context.feature
        frames = [f.bytes_list.value[0] for f in ex.feature_lists.feature_list["audio_embedding"].feature]
        seg = Segment(video_id=ctx["video_id"].bytes_list.value[0].decode(),
                      start_s=float(ctx["start_time_seconds"].float_list.value[0]),
                      end_s=float(ctx["end_time_seconds"].float_list.value[0]),
                      labels=np.array(list(ctx["labels"].int64_list.value), dtype=np.int64),
                      frames=np.frombuffer(b"".join(frames), dtype=np.uint8))
    except (decode_error, IndexError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"{uri}: record {n} is not an AudioSet embedding SequenceExample "
                               f"(video_id, start/end_time_seconds, audio_embedding): {exc or type(exc).__name__}"
                               ) from None
    if seg.frames.size % EMBEDDING_DIM or not seg.frames.size:
        raise DamagedFileError(f"{uri}: record {n} ({seg.video_id}) has {seg.frames.size} embedding bytes, "
                               f"not a positive multiple of {EMBEDDING_DIM}")
    return Segment(seg.video_id, seg.start_s, seg.end_s, seg.labels, seg.frames.reshape(-1, EMBEDDING_DIM))


#: The largest record read: an AudioSet segment (ten 128-byte frames and its context) is about 2 kB,
#: so a header claiming more than this is damage, not data, and is never allocated.
MAX_RECORD_BYTES = 1 << 20


def check_framing(local: str, uri: str) -> None:
    """Every record header of a TFRecord file checked before any record is read: DamagedFileError otherwise.

    The ``tfrecord`` reader allocates what a header claims and checks no checksum, so a
    text file, or a 112-byte file claiming a 1 GiB record, would cost that memory. A
    header is 8 bytes of length and their masked CRC-32C: the checksum tells a file
    that is not TFRecord at all, and the length must fit the rest of the file and
    :data:`MAX_RECORD_BYTES`. Only the 12 header bytes of each record are read here.
    """
    from tfrecord.writer import TFRecordWriter

    size = os.path.getsize(local)
    with open(local, "rb") as fh:
        offset, n = 0, 1
        while offset < size:
            head = fh.read(12)
            if len(head) < 12 or TFRecordWriter.masked_crc(head[:8]) != head[8:]:
                cut = len(head) < 12
                what = ("not a TFRecord file" if n == 1 else
                        f"truncated after record {n - 1}" if cut else f"damaged after record {n - 1}")
                raise DamagedFileError(f"{uri}: {what} (record {n}'s length header at byte {offset} "
                                       f"{'is cut off' if cut else 'fails its checksum'})")
            (length,) = struct.unpack("<Q", head[:8])
            left = max(size - offset - 16, 0)
            if length > MAX_RECORD_BYTES:
                raise DamagedFileError(f"{uri}: record {n} claims {length} bytes, more than a record may hold "
                                       f"({MAX_RECORD_BYTES}): damaged, or not AudioSet's embeddings")
            if length > left:
                raise DamagedFileError(f"{uri}: truncated after record {n - 1} (record {n} claims {length} bytes; "
                                       f"the file has {left} left)")
            offset += 16 + length
            fh.seek(offset)
            n += 1


def read_segments(uri: str) -> Iterator[Segment]:
    """Every segment of one TFRecord file, in order (a remote file is copied to a temporary file first)."""
    from google.protobuf.message import DecodeError
    from tfrecord.example_pb2 import SequenceExample
    from tfrecord.reader import tfrecord_iterator

    with tempfile.TemporaryDirectory(prefix="acoustic-env-tfrecord-") as tmp:
        if is_local(uri):
            local = filesystem(uri)[1]
        else:
            fs, path = filesystem(uri)
            local = os.path.join(tmp, "part.tfrecord")
            fs.get_file(path, local)
        check_framing(local, uri)
        n = 0
        try:
            for n, record in enumerate(tfrecord_iterator(local), start=1):
                yield _parse(record, uri, n, SequenceExample, DecodeError)
        except RuntimeError as exc:  # the reader's message for a short read: the file was cut off
            raise DamagedFileError(f"{uri}: truncated after record {n} ({exc})") from None


def segments_table(segments: Sequence[Segment], classes: Sequence[tuple[str, str]], source: str) -> pa.Table:
    """The feature-table rows of some segments (see the module docstring for the columns)."""
    mids = [mid for mid, _ in classes]
    labels = []
    for seg in segments:
        bad = [int(k) for k in seg.labels if not 0 <= k < len(mids)]
        if bad:
            raise DamagedFileError(f"{source}: segment {seg.video_id} at {seg.start_s} s has label index {bad[0]}, "
                                   f"outside the class list's {len(mids)} classes (is it the right class list?)")
        labels.append([mids[k] for k in seg.labels])
    # Both poolings on the codes, then de-quantised: the map is affine and increasing, so the mean of
    # the values is the value of the mean code and the max is the value of the max code (sums of
    # uint8 codes are exact in float64).
    if not segments:
        return _schema().empty_table()
    lengths = np.array([len(s.frames) for s in segments], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    codes = np.concatenate([s.frames for s in segments])
    vectors = np.empty((len(segments), 2 * EMBEDDING_DIM), dtype=np.float32)
    mean_code = np.add.reduceat(codes, starts, axis=0, dtype=np.float64) / lengths[:, None]
    vectors[:, :EMBEDDING_DIM] = mean_code * ((QUANTIZE_MAX - QUANTIZE_MIN) / 255.0) + QUANTIZE_MIN
    vectors[:, EMBEDDING_DIM:] = dequantize(np.maximum.reduceat(codes, starts, axis=0))
    return pa.table({
        "clip_id": [f"{s.video_id}_{round(s.start_s * 1000)}" for s in segments],
        "uri": pa.nulls(len(segments), pa.string()),
        "start_s": pa.array([s.start_s for s in segments], pa.float64()),
        "end_s": pa.array([s.end_s for s in segments], pa.float64()),
        "labels": pa.array(labels, pa.list_(pa.string())),
        "group": [s.video_id for s in segments],
        COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 2 * EMBEDDING_DIM),
        "n_frames": pa.array([len(s.frames) for s in segments], pa.int16()),
        "source": pa.array([source] * len(segments), pa.string()),
    }, schema=_schema())


FRAMES = "frames"  # <output>/frames/: the ten frames of each full segment, beside features/ (keep_frames)
FRAMES_COLUMN = "audioset_vggish_frames"
FULL_FRAMES = 10


def frames_table(segments: Sequence[Segment], classes: Sequence[tuple[str, str]]) -> pa.Table:
    """The segments with all ten frames: ``clip_id``, ``labels`` (MIDs), ``group`` and the frames' uint8 codes
    (10 × 128, row-major; de-quantise with :func:`dequantize`)."""
    full = [s for s in segments if len(s.frames) == FULL_FRAMES]
    mids = [mid for mid, _ in classes]
    codes = np.concatenate([s.frames.ravel() for s in full]) if full else np.zeros(0, np.uint8)
    return pa.table({
        "clip_id": pa.array([f"{s.video_id}_{round(s.start_s * 1000)}" for s in full], pa.string()),
        "labels": pa.array([[mids[k] for k in s.labels] for s in full], pa.list_(pa.string())),
        "group": pa.array([s.video_id for s in full], pa.string()),
        FRAMES_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(codes, pa.uint8()), FULL_FRAMES * EMBEDDING_DIM),
    })


def _schema() -> pa.Schema:
    return pa.schema([("clip_id", pa.string()), ("uri", pa.string()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("labels", pa.list_(pa.string())), ("group", pa.string()),
                      (COLUMN, vector_type(2 * EMBEDDING_DIM)), ("n_frames", pa.int16()), ("source", pa.string())])


def _metadata(run_id: str, sources: list[str], class_list: str) -> dict[str, Any]:
    from acoustic_env import __version__

    return {"format_version": 1, "package_version": __version__, "run_id": run_id, "sources": sources,
            "columns": {COLUMN: {"shape": [2 * EMBEDDING_DIM], "names": list(FEATURE_NAMES), "source": COLUMN,
                                 "weights": RELEASE, "pooling": "mean (values 0-127) and max (128-255) over the 0.96-s frames",
                                 "dequantize": f"q * {QUANTIZE_MAX - QUANTIZE_MIN:g} / 255 + {QUANTIZE_MIN:g}",
                                 "class_list": class_list}},
            "weights": {COLUMN: RELEASE}}


def converted_sources(output: str) -> set[str]:
    """The TFRecord files whose segments ``output``'s parts already hold (from each part's metadata)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in list_parts(join(output, layout.FEATURES)):
        fs, path = filesystem(part)
        with fs.open(path, "rb") as fh:
            done.update(read_metadata(pq.read_schema(fh)).get("sources", []))
    return done


def convert(source: str, output: str, class_list: str | None = None, part_rows: int = 20_000,
            keep_frames: bool = False) -> EmbeddingsResult:
    """Convert every TFRecord file of ``source`` into ``output``'s feature table; the counts and the run record.

    ``class_list``: a ``class_labels_indices.csv`` (default: the package's copy).
    ``part_rows``: segments per Parquet part (a part holds whole TFRecord files).
    ``keep_frames``: also write ``<output>/frames/`` (:func:`frames_table`), each part before
    the feature part of the same name, which is what a resumed run looks for.
    """
    if part_rows < 1:
        raise ConfigError(f"part_rows: must be an integer >= 1, got {part_rows}")
    if class_list is None:
        from acoustic_env.vocabulary.classes import AUDIOSET_CLASSES as classes
        class_list = "package:class_labels_indices.csv"
    else:
        classes = load_class_list(class_list)
    files = list_tfrecords(source)
    done = converted_sources(output)
    todo = [f for f in files if f not in done]
    config = {"source": source, "output": output, "class_list": class_list, "part_rows": part_rows,
              "keep_frames": keep_frames}
    with lifecycle("audioset-embeddings", config, output) as run:  # a crash ends the record failed, with why
        run_id = run.run_id
        counts = {"files": len(files), "files_skipped": len(files) - len(todo), "segments": 0, "frames": 0,
                  "parts": 0}
        batch_files: list[str] = []
        tables: list[pa.Table] = []
        frame_tables: list[pa.Table] = []

        def flush() -> None:
            if not tables:
                return
            table = pa.concat_tables(tables)
            table = table.replace_schema_metadata(metadata_json(_metadata(run_id, list(batch_files), class_list)))
            name = layout.part_name(run_id, list(batch_files))
            if keep_frames:
                write_parquet(pa.concat_tables(frame_tables), join(output, FRAMES, name))
                frame_tables.clear()
            write_parquet(table, join(output, layout.FEATURES, name))
            counts["parts"] += 1
            tables.clear()
            batch_files.clear()

        for uri in todo:
            batch = list(read_segments(uri))
            if batch:
                tables.append(segments_table(batch, classes, uri))
                if keep_frames:
                    frame_tables.append(frames_table(batch, classes))
            batch_files.append(uri)
            counts["segments"] += len(batch)
            counts["frames"] += sum(len(s.frames) for s in batch)
            if sum(t.num_rows for t in tables) >= part_rows:
                flush()
        flush()
        wall = run.elapsed()
        return EmbeddingsResult.from_record(
            run.complete(counts=counts, segments_per_s=round(counts["segments"] / wall, 1) if wall else None))


def run(cfg: AudioSetEmbeddingsConfig) -> EmbeddingsResult:
    """``acoustic-env recipe audioset-embeddings``: :func:`convert` with the command's config."""
    return convert(cfg.root, cfg.out, cfg.class_list, cfg.part_rows, cfg.keep_frames)


def summary_lines(result: EmbeddingsResult) -> list[str]:
    """What the command prints: the files and segments converted, the parts written, where the table is."""
    c = result.counts
    return [f"run {result.run_id}: {c['segments']} segments from {c['files'] - c['files_skipped']} TFRecord file(s) "
            f"({c['files_skipped']} already converted) into {c['parts']} part(s), {result.wall_s:.1f} s",
            f"  features: {result.output.rstrip('/')}/features/  (column {COLUMN}: mean and max)"]


def plan(cfg: AudioSetEmbeddingsConfig) -> dict[str, list[str]]:
    """``recipe audioset-embeddings --dry-run``: the TFRecord files to convert (those the output holds skipped),
    read only."""
    files, done = list_tfrecords(cfg.root), converted_sources(cfg.out)
    todo = len([f for f in files if f not in done])
    return {"lines": [f"recipe audioset-embeddings: would convert {todo} of {len(files)} TFRecord file(s) of "
                      f"{cfg.root} ({len(files) - todo} already converted)",
                      f"  into {cfg.out.rstrip('/')}/features/ ({cfg.part_rows} segments per part"
                      f"{'; the frames in frames/' if cfg.keep_frames else ''})"]}
