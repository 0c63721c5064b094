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
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from acoustic_env.audio.rows import CPU_PREFIX, row_schema
from acoustic_env.audio.stages import (
    CpuFeatureStage,
    EmbedderStage,
    decode_batch,
    stages,
    vector_columns,
    write_batch,
)
from acoustic_env.config import ExtractConfig
from acoustic_env.distributed.session import start_ray
from acoustic_env.embedders.registry import get


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


def plan_extract_resources(cluster: dict[str, float], n_embedders: int = 0, accelerator: str = "GPU",
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


# --- the job ---

def _blocks(table: pa.Table, rows_per_block: int) -> list[pa.Table]:
    return [table.slice(i, rows_per_block) for i in range(0, table.num_rows, rows_per_block)] or [table]


def run_pipeline(todo: pa.Table, cfg: ExtractConfig, run_id: str, meta: dict[str, Any],
                 weights: dict[str, str]) -> dict[str, Any]:
    """Stream ``todo`` through the stages; return counts and CPU seconds per stage."""
    import ray
    import ray.data

    cluster = start_ray(cfg.ray_address, cfg.progress)
    res = plan_extract_resources(cluster, len(cfg.embedders), cfg.accelerator_resource, cfg.device)
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
                            num_cpus=res.embed_resources["num_cpus"], memory=get(name).memory,
                            num_gpus=extra.pop("GPU", None), resources=extra or None,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=res.embed_actors),
                            # the spec itself, so an embedder registered only in the driver loads too
                            fn_constructor_kwargs={"spec": get(name), "cfg": cfg, "schema": schema,
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
