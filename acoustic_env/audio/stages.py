"""The extract stages as plain functions of Arrow batches: decode, CPU features, embedders, write.

They know nothing of Ray: ``acoustic_env.distributed.extract`` schedules them (decode and
write as tasks, features and embedders as actor pools), and a test or a notebook can call
them directly on a batch. A clip that fails in a stage becomes an error row that later
stages pass through, so the writer puts it in errors/ instead of features/.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env import runs
from acoustic_env.audio.decode import decode_clip
from acoustic_env.audio.rows import (
    AUDIO,
    CPU_PREFIX,
    ERROR_COLUMNS,
    is_error,
    mark_error,
    process_rows,
    redact_row,
    to_table,
)
from acoustic_env.config import ExtractConfig
from acoustic_env.embedders.registry import EmbedderSpec, get
from acoustic_env.features import STAGES as FEATURE_STAGES
from acoustic_env.features import cpu_features, feature_metadata
from acoustic_env.storage import join, write_parquet
from acoustic_env.table import ERRORS_SCHEMA, metadata_json, now_utc

CPU_STAGES = ("decode", *FEATURE_STAGES)


def vector_columns(cfg: ExtractConfig) -> dict[str, int]:
    cols = {c: int(np.prod(m["shape"])) for c, m in feature_metadata(cfg.features).items()}
    for name in cfg.embedders:
        cols.update(get(name).columns())  # from the spec: no model loads on the driver
    return cols


# --- stages (each a plain function of an Arrow batch; Ray only schedules them) ---

def decode_batch(batch: pa.Table, cfg: ExtractConfig, schema: pa.Schema) -> pa.Table:
    def one(row: dict[str, Any]) -> dict[str, Any]:
        t0 = time.thread_time()
        clip = decode_clip(row["uri"], cfg.decode, row.get("start_s"), row.get("end_s"), cfg.cut_segments)
        row.update(orig_sample_rate=clip.orig_sample_rate, channels=clip.channels,
                   orig_duration_s=clip.orig_duration_s, duration_s=clip.audio.size / cfg.decode.sample_rate,
                   is_silent=clip.is_silent)
        row[AUDIO] = clip.audio
        row[CPU_PREFIX + "decode"] = time.thread_time() - t0
        return row

    # the URI has been read: from here on (later stages, features/, errors/) its secrets are ***
    rows = [redact_row(r, cfg.redact_query_params) for r in process_rows(batch, one, "decode")]
    return to_table(rows, schema)


class CpuFeatureStage:
    """Actor: separation, indices and MPS for each decoded clip of a batch."""

    def __init__(self, cfg: ExtractConfig, schema: pa.Schema):
        self.cfg = cfg
        self.schema = schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        def one(row: dict[str, Any]) -> dict[str, Any]:
            audio = np.asarray(row[AUDIO], dtype=np.float32)
            feats, cpu = cpu_features(audio, self.cfg.decode.sample_rate, self.cfg.features)
            row.update(feats)
            row.update({CPU_PREFIX + k: v for k, v in cpu.items()})
            return row

        return to_table(process_rows(batch, one, "features"), self.schema)


class EmbedderStage:
    """Actor: one embedder applied to the decoded clips of a batch.

    Clips are zero-padded to the batch's longest and passed with their true lengths
    (the embedder pools over valid frames only). If the batch fails as a whole, each
    clip is retried alone so that one bad clip becomes one error row.
    """

    def __init__(self, spec: EmbedderSpec, cfg: ExtractConfig, schema: pa.Schema, device: str, weights_id: str):
        # here, not above: torch is imported in the actors only, never on the driver
        from acoustic_env.embedders.factory import load_embedder

        self.schema = schema
        sha = None if weights_id == "random" else weights_id
        self.embedder = load_embedder(spec, device=device, allow_random_weights=weights_id == "random",
                                      cache_dir=cfg.weights_cache, sha256=sha)
        self.stage = f"embed_{spec.name}"

    def _embed(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        lengths = np.array([c.size for c in clips])
        batch = np.zeros((len(clips), int(lengths.max())), dtype=np.float32)
        for i, c in enumerate(clips):
            batch[i, : c.size] = c
        return self.embedder.embed(batch, lengths)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [r for r in rows if not is_error(r)]
        if todo:
            t0 = time.thread_time()
            clips = [np.asarray(r[AUDIO], dtype=np.float32) for r in todo]
            try:
                outputs_ = [self._embed(clips)]
                groups = [todo]
            except Exception:  # noqa: BLE001 - isolate the clip that broke the batch
                outputs_, groups = [], []
                for r, clip in zip(todo, clips):
                    try:
                        outputs_.append(self._embed([clip]))
                        groups.append([r])
                    except Exception as exc:  # noqa: BLE001
                        mark_error(r, exc, self.stage)
            for out, group in zip(outputs_, groups):
                for k, r in enumerate(group):
                    for col, values in out.items():
                        r[col] = values[k]
            share = (time.thread_time() - t0) / len(todo)
            for r in todo:
                r[CPU_PREFIX + self.stage] = share
        return to_table(rows, self.schema)


def write_batch(batch: pa.Table, output: str, run_id: str, meta: dict[str, Any]) -> pa.Table:
    """Split a batch into features/ and errors/ parts; return a one-row summary."""
    rows = batch.to_pylist()
    ok = [r for r in rows if not is_error(r)]
    bad = [r for r in rows if is_error(r)]
    drop = {AUDIO, *ERROR_COLUMNS} | {c for c in batch.column_names if c.startswith(CPU_PREFIX)}
    if ok:
        keep = [f for f in batch.schema if f.name not in drop]
        ids = [r["clip_id"] for r in ok]
        table = pa.Table.from_pylist([{f.name: r[f.name] for f in keep} for r in ok],
                                     schema=pa.schema(keep, metadata=metadata_json(meta)))
        write_parquet(table, join(output, runs.FEATURES, runs.part_name(run_id, ids)))
    if bad:
        t = now_utc()
        err = [{"clip_id": r["clip_id"], "uri": r["uri"], "stage": r["error_stage"], "error_type": r["error_type"],
                "message": r["error_message"], "run_id": run_id, "time": t} for r in bad]
        write_parquet(pa.Table.from_pylist(err, schema=ERRORS_SCHEMA),
                      join(output, runs.ERRORS, runs.part_name(run_id, [r["clip_id"] for r in bad])))
    summary: dict[str, list] = {"n_ok": [len(ok)], "n_failed": [len(bad)],
                                "error_types": [",".join(r["error_type"] for r in bad)]}
    for c in batch.column_names:
        if c.startswith(CPU_PREFIX):
            summary[c] = [float(np.nansum([r[c] or 0.0 for r in rows]))]
    return pa.table(summary)


def stages(cfg: ExtractConfig) -> tuple[str, ...]:
    return CPU_STAGES + tuple(f"embed_{e}" for e in cfg.embedders)


def table_metadata(cfg: ExtractConfig, run_id: str, weights: dict[str, str]) -> dict[str, Any]:
    """Schema metadata of features/: names, shapes, axes and provenance."""
    from acoustic_env import __version__

    columns = feature_metadata(cfg.features)
    for name in cfg.embedders:
        for col, meta in get(name).column_metadata().items():
            columns[col] = {**meta, "source": name, "weights": weights[name]}
    return {"format_version": 1, "package_version": __version__, "run_id": run_id,
            "sample_rate": cfg.decode.sample_rate, "target_rms": cfg.decode.target_rms,
            "columns": columns, "weights": weights}
