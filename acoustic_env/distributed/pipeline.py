"""The Ray wiring of the extract job — the only module that knows about Ray Data.

manifest chunks → resume filter → blocks put into the object store one at a time
(with their metadata: ``dataset_of_blocks``) → decode + CPU features (one actor pool) → [embedders
(accelerator or CPU actors) → write (writer actors)] → per-part summaries. Without embedders the
feature actors write their own parts (``FeatureWriterStage``): a writer between them would only add
a process and a trip through the object store. The driver holds one chunk of the clip list
at a time, the block references and the summaries, never audio or features: the actors put
the Parquet parts on storage themselves.

On CUDA GPUs (``--device`` auto with GPUs in the cluster, or cuda) the pipeline is instead
decode (CPU actors) → the device stage (``DeviceStage``: one actor per GPU computes every feature
and every embedding of a batch on the card) → write: the card does all the arithmetic, the CPUs
decode and feed it.

The stages, their order and batch sizes are ``audio/chain.py``'s (the in-process run reads the same
declaration); this module puts them on Ray and sizes each one's actor pool.

Resources: every core should do stage work. Decode and the CPU features run in the
same actor (a decoded clip never crosses a process boundary), one actor per core
left after the embedders (or the device stage), each holding a fraction of a CPU so that the
light writers always find room (an actor pool that holds every CPU starves the stages it feeds and
the pipeline stalls).

Progress: one line for the job (``audio/progress.py``); Ray Data's own per-operator bars stay off.
A local run with few clips to do never gets here: ``jobs/in_process.py`` runs the same stages in
the driver's process.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Iterable

import pyarrow as pa

from acoustic_env.audio.chain import Pool, chain_schema, extract_chain, rebatched
from acoustic_env.config import ConfigError, ExtractConfig
from acoustic_env.distributed.session import start_ray
from acoustic_env.errors import OutputWriteError
from acoustic_env.audio.progress import JobProgress, add_summary, new_totals
from acoustic_env.storage import redact

#: CPUs of a device-stage actor: its host side (stacking a batch into pinned memory, NBPEAKS per clip,
#: the Arrow columns of the results) runs on one thread while the card computes.
DEVICE_CPUS = 1.0
#: The largest block the driver hands Ray. Each block costs the driver about 50 KB that stays until
#: the job ends (its reference, and the metadata and schema Ray Data keeps for it); at 16,384
#: rows that is 3 bytes a row, where blocks of 1,024 rows added 100 MB at 2 million rows.
MAX_BLOCK_ROWS = 16_384


@dataclass(frozen=True)
class Resources:
    """How much of the cluster each stage may take.

    ``max_actors`` decode+feature actors of ``actor_cpus`` each: one per core left after
    the embedders, sharing all but ``task_cpus × write_slots`` CPUs, which the writer
    actors (``audio.stages.PartWriter``, at most ``write_slots``) use. Embedders on accelerators:
    one actor per embedder per accelerator, each holding ``1 / n_embedders`` of it (so the three share one card) and a quarter CPU to
    feed it. Embedders on CPU: one actor per embedder per 8 CPUs.

    The device stage (``device`` set: CUDA GPUs): ``device_actors`` actors of ``DeviceStage``,
    one per GPU, each holding ``device_gpus`` (a whole card) and ``device_cpus``, compute every
    feature and embedding; the ``max_actors`` actors then only decode, on the CPUs left, and no
    embedder pool runs (``embed_actors`` 0). ``device`` is the torch device those actors use: the
    pipeline takes it from here, so a plan with ``device`` "cpu" runs the same stages without a GPU.
    """

    actor_cpus: float
    max_actors: int
    task_cpus: float
    write_slots: int
    embed_on_accelerator: bool
    embed_resources: dict[str, float]
    embed_actors: int
    device: str | None = None
    device_actors: int = 0
    device_gpus: float = 0.0
    device_cpus: float = 0.0


def plan_extract_resources(cluster: dict[str, float], n_embedders: int = 0, accelerator: str = "GPU",
                           device: str = "auto") -> Resources:
    """Size the pools from the cluster's resources so that every core runs stage work.

    The device stage runs where the accelerator is a CUDA GPU (``accelerator`` "GPU") and
    ``device`` is not "cpu"; ``device`` "cuda" on a cluster without one is a ConfigError
    naming the flag. Anywhere else the plan is the CPU pipeline's.
    """
    cpus = float(cluster.get("CPU", 1.0))
    accelerators = float(cluster.get(accelerator, 0.0))
    if device == "cuda" and accelerators <= 0:
        raise ConfigError(f"device: --device cuda, but the Ray cluster has no {accelerator!r} resource "
                          "(use --device auto or cpu)")
    if device != "cpu" and accelerator == "GPU" and accelerators > 0:
        return _device_plan(cpus, accelerators, n_embedders)
    on_acc = n_embedders > 0 and device != "cpu" and accelerators > 0
    embed_res: dict[str, float] = {}
    embed_actors = 0
    embed_cpus = 0.0
    if n_embedders and on_acc:
        embed_actors = max(1, math.floor(accelerators))
        share = math.floor(1.0 / n_embedders * 1e4) / 1e4
        embed_res = {"num_cpus": 0.25, accelerator: share}
        embed_cpus = 0.25 * n_embedders * embed_actors
    elif n_embedders:
        embed_actors = max(1, math.floor(cpus / 8))
        per = 1.0 if cpus >= 8 else 0.25
        embed_res = {"num_cpus": per}
        embed_cpus = per * n_embedders * embed_actors
    return Resources(**_cpu_actors(cpus, embed_cpus), embed_on_accelerator=on_acc, embed_resources=embed_res,
                     embed_actors=embed_actors)


def _device_plan(cpus: float, gpus: float, n_embedders: int) -> Resources:
    """The device stage's plan: one actor per GPU holding the whole card and ``DEVICE_CPUS``; the decode
    actors on every CPU left, so that the card, not the feeding, sets the pace."""
    device_actors = max(1, math.floor(gpus))
    return Resources(**_cpu_actors(cpus, DEVICE_CPUS * device_actors), embed_on_accelerator=n_embedders > 0,
                     embed_resources={}, embed_actors=0, device="cuda", device_actors=device_actors,
                     device_gpus=min(1.0, gpus), device_cpus=DEVICE_CPUS)


def _cpu_actors(cpus: float, reserved: float) -> dict[str, Any]:
    """The CPU actors (decode + features, or decode alone) and the writers, on the CPUs ``reserved`` leaves."""
    task_cpus = 0.25
    # A part of 64 rows takes milliseconds to write: one writer slot per 32 cores is plenty.
    write_slots = max(1, round(cpus / 32))
    free = max(cpus - reserved - task_cpus * write_slots, 0.25)
    max_actors = max(1, math.floor(cpus - reserved))
    # At most one CPU less a writer's share an actor: its stage code runs on one thread, and Ray
    # places an actor on one node, so a whole CPU could fit no node of a cluster of 1-CPU nodes once
    # a writer or an embedder's quarter CPU sits on each (the cluster test hung so, under load).
    actor_cpus = min(1.0 - task_cpus, math.floor(free / max_actors * 1000) / 1000)
    return {"actor_cpus": actor_cpus, "max_actors": max_actors, "task_cpus": task_cpus, "write_slots": write_slots}


def block_rows(n_rows: int, n_actors: int, batch_size: int) -> int:
    """Rows per input block: about 16 blocks per actor (an even finish), a multiple of the batch size.

    A block goes to one actor whole; small blocks keep the last ones from idling every
    actor but one, and ``MAX_BLOCK_ROWS`` keeps a manifest of millions to a few
    hundred objects for the driver to hand over (and account for).
    """
    rows = math.ceil(n_rows / max(1, n_actors * 16))
    rows = math.ceil(max(rows, batch_size) / batch_size) * batch_size
    return max(batch_size, min(rows, max(MAX_BLOCK_ROWS, batch_size)))


# --- the input dataset ---

def block_metadata(block: pa.Table) -> Any:
    """What Ray Data records of a block (rows, size, schema), computed here while the driver holds it."""
    from ray.data._internal.util import get_table_block_metadata_schema

    return get_table_block_metadata_schema(block)


def dataset_of_blocks(refs: list[Any], metadata: list[Any]) -> Any:
    """``ray.data.from_arrow_refs(refs)`` with the metadata the driver already has.

    ``from_arrow_refs`` runs one task per block to read its metadata, which needs worker
    processes before any stage has one: Ray pre-starts a worker per core for that, and the
    actors did not get those workers once they had run the tasks (measured on 16 cores: 35
    processes for 16 actors, and every actor at work 2.8 s later). These are the same three lines without the tasks.

    The one use of Ray's private modules (``ray.data._internal``) in the package: Ray 2.60 has no
    public way to give ``from_arrow_refs`` metadata the caller already has, and no Ray issue asks for
    one (searched 2026-11). Ray is pinned to 2.60.*, and
    ``tests/test_pipeline.py::test_the_input_dataset_equals_ray_datas_own_from_arrow_refs`` builds both datasets and
    compares them, so a Ray that moves these internals fails there, not in a user's run.
    """
    from ray.data._internal.logical.interfaces import LogicalPlan
    from ray.data._internal.logical.operators import FromArrow
    from ray.data._internal.stats import DatasetStats
    from ray.data.context import DataContext
    from ray.data.dataset import MaterializedDataset

    stats = DatasetStats(metadata={"FromArrow": metadata}, parent=None)
    context = DataContext.get_current().copy()
    return MaterializedDataset(LogicalPlan(FromArrow(refs, metadata), context), context, stats)


# --- the job ---

def run_pipeline(todo: Iterable[pa.Table], expected_rows: int, cfg: ExtractConfig, run_id: str,
                 meta: dict[str, Any], weights: dict[str, str],
                 on_planned: Callable[[int], None] = lambda n: None, resources: Resources | None = None
                 ) -> dict[str, Any]:
    """Stream the ``todo`` chunks through the stages; return counts, CPU seconds per stage and where the time went.

    The driver puts each block into Ray's object store as the clip list streams past and
    keeps only the references: its own memory does not grow with the list. Ray starts at
    the first chunk with a row to do (never, if there is none); blocks are sized for
    ``expected_rows``. ``on_planned(n)`` is called once every chunk has been put (n clips to do).
    ``resources``: the plan to run; by default :func:`plan_extract_resources` of the cluster Ray
    reports (a plan whose device stage is on "cpu" runs the GPU pipeline on any machine). On the
    device stage, the seconds of each stage but decode are the device's wall seconds.
    """
    totals = new_totals(cfg)
    chunks = iter(todo)
    first = next((c for c in chunks if c.num_rows), None)
    if first is None:
        on_planned(0)
        return totals
    import ray

    t0 = time.monotonic()
    cluster = start_ray(cfg.ray_address, progress=False)  # Ray Data's operator bars: ours is one line
    t_ray = time.monotonic()
    res = resources or plan_extract_resources(cluster, len(cfg.embedders), cfg.accelerator_resource, cfg.device)
    schema = chain_schema(first.schema, cfg, device_stage=bool(res.device))
    rows = block_rows(max(expected_rows, first.num_rows), res.max_actors, cfg.batch_size)
    blocks, metadata, n_rows = [], [], 0
    for block in rebatched(chain([first], chunks), rows):
        blocks.append(ray.put(block))
        metadata.append(block_metadata(block))
        n_rows += block.num_rows
    t_staged = time.monotonic()
    on_planned(n_rows)
    target = {"output": cfg.output, "run_id": run_id, "meta": meta}
    device = _torch_device(res, cfg)
    ds = dataset_of_blocks(blocks, metadata)
    # the embedder (or device) actors warm their networks while the feature (or decode) actors work on the
    # first blocks: Ray Data starts every pool's actors at once
    for stage in extract_chain(cfg, schema, target, weights, device, device_stage=bool(res.device), warm=True):
        ds = ds.map_batches(stage.cls, batch_format="pyarrow", batch_size=stage.batch_size, memory=stage.memory,
                            fn_constructor_kwargs=stage.kwargs, **_pool(stage.pool, res, len(blocks)))
    progress = JobProgress(n_rows, cfg.progress)
    t_first = None
    try:
        for summary in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            t_first = t_first or time.monotonic()
            add_summary(totals, summary, progress)
    except Exception as exc:
        # a writer's OutputWriteError arrives wrapped by Ray (its text: the worker's traceback)
        found = OutputWriteError.found_in(exc)
        if found is None:
            raise
        raise OutputWriteError(redact(str(found), cfg.redact_query_params)) from None
    finally:
        progress.close()
    t_end = time.monotonic()
    totals["resources"] = {"executor": "ray", **dataclasses.asdict(res), "rows_per_block": rows,
                           "torch_device": device if cfg.embedders else None, "feature_device": res.device}
    # Where the time went: joining/starting Ray, reading the rest of the clip list into blocks,
    # then the stream (its first part includes the actors' start-up: processes, imports, the
    # first batch).
    totals["timing_s"] = {"ray_start": t_ray - t0, "blocks": t_staged - t_ray,
                          "first_part": (t_first or t_end) - t_staged, "stream": t_end - t_staged}
    return totals


def _torch_device(res: Resources, cfg: ExtractConfig) -> str:
    """The torch device of the embedders on the plan ``res``: the device stage's, or the embedder pools'."""
    if res.device:
        return res.device
    return "cuda" if res.embed_on_accelerator and cfg.accelerator_resource == "GPU" else "cpu"


def _pool(pool: Pool, res: Resources, n_blocks: int) -> dict[str, Any]:
    """A pool of ``audio/chain.py`` (``Stage.pool``) as ``map_batches`` arguments: its actors and what each holds.

    ``cpu`` (decode and features): one actor per core left, never more than there are blocks to work on;
    ``embed``: up to ``embed_actors`` per embedder, each with the plan's share of an accelerator or of the
    CPUs; ``device``: one actor per GPU, holding the card; ``write``: up to ``write_slots`` part writers.
    """
    import ray.data

    if pool == "cpu":
        return {"num_cpus": res.actor_cpus, "compute": ray.data.ActorPoolStrategy(
            size=min(res.max_actors, n_blocks), max_tasks_in_flight_per_actor=2)}
    if pool == "embed":
        extra = {k: v for k, v in res.embed_resources.items() if k != "num_cpus"}
        return {"num_cpus": res.embed_resources["num_cpus"], "num_gpus": extra.pop("GPU", None),
                "resources": extra or None,
                "compute": ray.data.ActorPoolStrategy(min_size=1, max_size=res.embed_actors)}
    if pool == "device":
        return {"num_cpus": res.device_cpus, "num_gpus": res.device_gpus or None, "compute": ray.data.ActorPoolStrategy(
            size=res.device_actors, max_tasks_in_flight_per_actor=2)}
    return {"num_cpus": res.task_cpus, "compute": ray.data.ActorPoolStrategy(min_size=1, max_size=res.write_slots)}
