"""The Ray wiring of the extract job — the only module that knows about Ray Data.

manifest → plan → ``from_arrow`` (small blocks) → decode (tasks) → CPU features
(actor pool) → [embedders (GPU or CPU actors)] → write (tasks) → per-batch
summaries. The driver holds the clip list and the summaries, never audio or
features: each writer task puts its own Parquet parts on storage.

Resources: on a small machine an actor pool that holds every CPU starves the
tasks that feed it and the pipeline stalls, so actors take fractional CPUs and
the pool is bounded to leave ``reserve`` CPUs for decode and write tasks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from . import outputs
from .config import ExtractConfig
from .decode import decode_clip
from .features import cpu_features, feature_metadata
from .indices import INDEX_NAMES
from .rows import (AUDIO, CPU_PREFIX, ERROR_COLUMNS, ERRORS_SCHEMA, is_error, mark_error, metadata_json,
                   now_utc, process_rows, row_schema, to_table)
from .storage import join, write_parquet

CPU_STAGES = ("decode", "separate", "indices", "mps")
# Host memory per embedder actor, as Ray Data's memory detector measured it on the demo
# (16 ten-second clips a batch, CPU): reserving it keeps Ray from packing more actors
# onto a node than its memory holds.
EMBED_MEMORY = {"vggish": 1.4 * 2**30, "yamnet": 0.9 * 2**30, "panns": 1.8 * 2**30}


@dataclass(frozen=True)
class Resources:
    """How much of the cluster each stage may take.

    Embedders on accelerators: one actor per embedder per accelerator, each holding
    ``1 / n_embedders`` of it (so the three share one card) and a quarter CPU to feed it.
    Embedders on CPU: one actor per embedder per 8 CPUs. The CPU feature pool gets what
    is left after a reserve for the decode and write tasks.
    """

    actor_cpus: float
    max_actors: int
    task_cpus: float
    embed_on_accelerator: bool
    embed_resources: dict[str, float]
    embed_actors: int


def plan_resources(cluster: dict[str, float], n_embedders: int = 0, accelerator: str = "GPU",
                   device: str = "auto") -> Resources:
    """Size the pools from the cluster's resources, leaving room for the feeding tasks."""
    cpus = float(cluster.get("CPU", 1.0))
    accelerators = float(cluster.get(accelerator, 0.0))
    on_acc = n_embedders > 0 and device != "cpu" and accelerators > 0
    embed_res: dict[str, float] = {}
    embed_actors = 0
    embed_cpus = 0.0
    if n_embedders and on_acc:
        embed_actors = max(1, math.floor(accelerators))
        share = round(1.0 / n_embedders, 4)
        embed_res = {"num_cpus": 0.25, accelerator: share}
        embed_cpus = 0.25 * n_embedders * embed_actors
    elif n_embedders:
        embed_actors = max(1, math.floor(cpus / 8))
        per = 1.0 if cpus >= 8 else 0.25
        embed_res = {"num_cpus": per}
        embed_cpus = per * n_embedders * embed_actors
    reserve = max(0.5, 0.05 * cpus)
    actor_cpus = 1.0 if cpus >= 4 else 0.75
    max_actors = max(1, math.floor((cpus - reserve - embed_cpus) / actor_cpus))
    return Resources(actor_cpus=actor_cpus, max_actors=max_actors, task_cpus=0.25,
                     embed_on_accelerator=on_acc, embed_resources=embed_res, embed_actors=embed_actors)


def embedder_columns(name: str) -> dict[str, int]:
    """Output columns of an embedder and their widths, known before any model loads."""
    from .embedders import panns, vggish, yamnet

    cls = {"vggish": vggish.VGGishEmbedder, "yamnet": yamnet.YAMNetEmbedder, "panns": panns.PannsEmbedder}[name]
    cols = {name: cls.dim}
    if cls.score_names is not None:
        cols[f"{name}_scores"] = len(cls.score_names)
    return cols


def vector_columns(cfg: ExtractConfig) -> dict[str, int]:
    f = cfg.features
    cols: dict[str, int] = {}
    for s in f.signals:
        cols[f"indices_{s}"] = len(INDEX_NAMES)
        cols[f"mps_{s}"] = f.mps_n_wf * f.mps_n_wt
    for name in cfg.embedders:
        cols.update(embedder_columns(name))
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

    return to_table(process_rows(batch, one, "decode"), schema)


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

    def __init__(self, name: str, cfg: ExtractConfig, schema: pa.Schema, device: str, weights_id: str):
        from .embedders import load_embedder

        self.name = name
        self.schema = schema
        sha = None if weights_id == "random" else weights_id
        self.embedder = load_embedder(name, device=device, allow_random_weights=weights_id == "random",
                                      cache_dir=cfg.weights_cache, sha256=sha)
        self.stage = f"embed_{name}"

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
        write_parquet(table, join(output, outputs.FEATURES, outputs.part_name(run_id, ids)))
    if bad:
        t = now_utc()
        err = [{"clip_id": r["clip_id"], "uri": r["uri"], "stage": r["error_stage"], "error_type": r["error_type"],
                "message": r["error_message"], "run_id": run_id, "time": t} for r in bad]
        write_parquet(pa.Table.from_pylist(err, schema=ERRORS_SCHEMA),
                      join(output, outputs.ERRORS, outputs.part_name(run_id, [r["clip_id"] for r in bad])))
    summary: dict[str, list] = {"n_ok": [len(ok)], "n_failed": [len(bad)],
                                "error_types": [",".join(r["error_type"] for r in bad)]}
    for c in batch.column_names:
        if c.startswith(CPU_PREFIX):
            summary[c] = [float(np.nansum([r[c] or 0.0 for r in rows]))]
    return pa.table(summary)


# --- the job ---

def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=True,
             include_dashboard=False if not (address or os.environ.get("RAY_ADDRESS")) else None,
             ignore_reinit_error=True)


def _blocks(table: pa.Table, rows_per_block: int) -> list[pa.Table]:
    return [table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block)] or [table]


def stages(cfg: ExtractConfig) -> tuple[str, ...]:
    return CPU_STAGES + tuple(f"embed_{e}" for e in cfg.embedders)


def run_pipeline(todo: pa.Table, cfg: ExtractConfig, run_id: str, meta: dict[str, Any],
                 weights: dict[str, str]) -> dict[str, Any]:
    """Stream ``todo`` through the stages; return counts and CPU seconds per stage."""
    import ray
    import ray.data

    _init_ray(cfg.ray_address)
    res = plan_resources(ray.cluster_resources(), len(cfg.embedders), cfg.accelerator_resource, cfg.device)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = cfg.progress
    ctx.verbose_progress = False
    all_stages = stages(cfg)
    schema = row_schema(todo.schema, vector_columns(cfg), all_stages)
    bs = cfg.batch_size
    ds = ray.data.from_arrow(_blocks(todo, bs))
    ds = ds.map_batches(decode_batch, batch_format="pyarrow", batch_size=bs, num_cpus=res.task_cpus,
                        fn_kwargs={"cfg": cfg, "schema": schema})
    ds = ds.map_batches(CpuFeatureStage, batch_format="pyarrow", batch_size=bs, num_cpus=res.actor_cpus,
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=res.max_actors,
                                                                    initial_size=res.max_actors),
                        fn_constructor_kwargs={"cfg": cfg, "schema": schema})
    torch_device = "cuda" if res.embed_on_accelerator and cfg.accelerator_resource == "GPU" else "cpu"
    for name in cfg.embedders:
        extra = {k: v for k, v in res.embed_resources.items() if k != "num_cpus"}
        # one subclass per embedder, so that Ray's progress output names each operator
        stage_cls = type(f"Embed{name.capitalize()}", (EmbedderStage,), {})
        ds = ds.map_batches(stage_cls, batch_format="pyarrow", batch_size=cfg.embed_batch_size,
                            num_cpus=res.embed_resources["num_cpus"], memory=EMBED_MEMORY[name],
                            num_gpus=extra.pop("GPU", None), resources=extra or None,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=res.embed_actors),
                            fn_constructor_kwargs={"name": name, "cfg": cfg, "schema": schema,
                                                   "device": torch_device, "weights_id": weights[name]})
    ds = ds.map_batches(write_batch, batch_format="pyarrow", batch_size=cfg.write_batch_size,
                        num_cpus=res.task_cpus,
                        fn_kwargs={"output": cfg.output, "run_id": run_id, "meta": meta})
    totals: dict[str, Any] = {"ok": 0, "failed": 0, "error_types": {}, "cpu_s": {s: 0.0 for s in all_stages}}
    for summary in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in summary.to_pylist():
            totals["ok"] += row["n_ok"]
            totals["failed"] += row["n_failed"]
            for t in filter(None, row["error_types"].split(",")):
                totals["error_types"][t] = totals["error_types"].get(t, 0) + 1
            for stage in all_stages:
                totals["cpu_s"][stage] += row.get(CPU_PREFIX + stage) or 0.0
    totals["resources"] = {**dataclasses.asdict(res), "torch_device": torch_device if cfg.embedders else None}
    return totals


def table_metadata(cfg: ExtractConfig, run_id: str, weights: dict[str, str]) -> dict[str, Any]:
    """Schema metadata of features/: names, shapes, axes and provenance."""
    from . import __version__

    columns = feature_metadata(cfg.features)
    for name in cfg.embedders:
        from .embedders import panns, yamnet

        scores = {"panns": panns.PannsEmbedder, "yamnet": yamnet.YAMNetEmbedder}.get(name)
        for col, width in embedder_columns(name).items():
            is_scores = col.endswith("_scores")
            columns[col] = {"shape": [width], "source": name, "weights": weights[name],
                            "pooling": "max over frames" if is_scores else "mean over frames"}
            if is_scores:
                columns[col]["names"] = list(scores.score_names)
    return {"format_version": 1, "package_version": __version__, "run_id": run_id,
            "sample_rate": cfg.decode.sample_rate, "target_rms": cfg.decode.target_rms,
            "columns": columns, "weights": weights}
