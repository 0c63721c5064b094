"""Ray Tune and Ray Train: a network's Bayesian tuning with ASHA, each trial on one worker or data-parallel.

The network is a training candidate whose spec says it trains so (``trains``: ``tune``, its ranges ``tune_space``;
or ``stream``, one run on its images streamed by Ray Data): ``Setup.model`` carries the spec itself to the trials, so
a candidate registered in the driver's process only (a test's) trains as a built-in one does.

Every run is a Tune trial, the single run at fixed parameters (``--trials 0``) a
one-trial run, so that each is placed on the cluster, checkpointed and read back
the same way. A trial of one worker (``--workers 1``, the default) trains in its
own process and reports to Tune itself: Ray Train would add six processes per
trial (controller, worker, placement-group cleaner, synchronization, dataset
manager, preemption watcher), 8-12 s and about 13 CPU-s a run against under a
second of training on a feature table, for nothing that one worker uses. A trial
of two or more workers launches a TorchTrainer run (Ray Train V2's way of
combining the two): its workers train data-parallel (DDP) and report the
validation score after every round and a checkpoint whenever it improves, which
reach Tune through ``TuneReportCallback``. Either way the last checkpoint of a
trial is its best.

The searcher is Optuna's TPE (``ray.tune.search.optuna.OptunaSearch``): a
Bayesian method (a density model of good vs bad trials) that handles the
mixed space here, integers, log-scaled floats and categories (depth,
width, learning rate, activation, dropout, weight decay, batch size), with no
network access, and whose package is maintained and pure Python. HyperOpt
implements the same algorithm but is barely maintained; BayesOpt needs a
continuous space. ASHA (``ASHAScheduler``) stops the trials that are behind at
its rungs.

Resources: a trial of one worker holds that worker's CPUs (and GPU); a trial of
several holds 0.01 CPU for its driver and its training workers the rest. On a
2-CPU machine one trial runs at a time, and two never wait on each other's
CPUs. The tuning runs against a local copy of the data in the object store (one
``ray.put``), which every trial reads.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from acoustic_env.candidates.space import Range, Space
from acoustic_env.candidates.spec import NETWORK, Build, CandidateSpec
from acoustic_env.config import ConfigError
from acoustic_env.learn.balance import Balance

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from acoustic_env.distributed.images import Rows, Survey
    from acoustic_env.learn.fit import Schedule
    from acoustic_env.table import TableInfo

log = logging.getLogger("acoustic_env.jobs.train")

METRIC = "best_val_score"
CHECKPOINT_FILE = "model.pt"
POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # Ray Train V2's controller poll interval
#: CPUs a trial of Ray Train workers holds for itself: its driver only waits for their reports.
DRIVER_CPUS = 0.01


@dataclass(frozen=True)
class Setup:
    """What every trial needs besides its hyper-parameters."""

    kind: str
    n_classes: int
    schedule: Schedule
    seed: int
    workers: int
    worker_cpus: float
    use_gpu: bool
    storage: str
    balance: Balance = Balance()  # how every trial's network balances classes (class weights or sampler)
    model: CandidateSpec | None = None  # the network trained: ``tune`` on arrays, or ``stream`` on Ray Data's images
    settings: Mapping[str, Any] = field(default_factory=dict)  # its settings but ``network``, balanced, as scheduled

    @property
    def in_trial(self) -> bool:
        """Whether a run trains in the trial's own process (one worker) rather than as a TorchTrainer run."""
        return self.workers == 1


def tuning_space(space: Space) -> dict[str, Any]:
    """A candidate's ``tune_space`` as Ray Tune's domains: choices, integers (both ends in) and numbers, each on a
    log scale where the range says."""
    from ray import tune

    def domain(r: Range) -> Any:
        if r.choices:
            return tune.choice(list(r.choices))
        if r.integer:
            return (tune.lograndint if r.log else tune.randint)(int(r.low), int(r.high) + 1)
        return (tune.loguniform if r.log else tune.uniform)(r.low, r.high)

    return {name: domain(r) for name, r in space.ranges.items()}


def trainable(setup: Setup, network: dict[str, Any], threads: int | None, n_rows: int = 0,
              n_features: int = 0) -> Any:
    """``setup.model``'s estimator with the ``network`` settings, unfitted, built from the spec itself (a Ray
    worker's registry holds the package's candidates only): its ``train`` runs on a split the caller made."""
    build = Build(multi_label=setup.kind == "multi_label", smallest_class=0, n_rows=n_rows, n_features=n_features,
                  seed=setup.seed, threads=threads, inner_folds=0)
    return setup.model.build({**setup.settings, NETWORK: {**setup.model.params[NETWORK], **network}}, build)


def _fit(config: dict[str, Any], setup: Setup, report: Callable[[dict[str, Any], str | None], None], device: Any,
         prepare: Callable[[Any], Any] | None = None, rank: int = 0, world: int = 1, worker_pg: str = "") -> None:
    """Fit the network of ``config["params"]`` on the shared data: ``report(metrics, checkpoint_dir)`` after each
    round, with a checkpoint directory (rank 0) when the round improved on the best, else ``None``.

    A ``tune`` network's data are arrays; a ``stream`` network's the datasets of its images: one of the training
    rows per rank (its share) and the validation rows, which every rank scores whole so that all stop together.
    Either stops after the patience in rounds of ``setup.settings``.
    """
    import ray
    import torch

    data = ray.get(config["data"][0])

    def on_round(metrics: dict[str, float], improved: bool, net: Any) -> None:
        metrics = {**metrics, "worker_pg": worker_pg}
        if improved and rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(getattr(net, "module", net).state_dict(), os.path.join(tmp, CHECKPOINT_FILE))
                report(metrics, tmp)
        else:
            report(metrics, None)

    threads = None if setup.use_gpu else max(1, int(setup.worker_cpus))
    if setup.model.trains == "stream":
        from acoustic_env.distributed.images import stream

        shape = data["shape"]
        network = trainable(setup, config["params"], threads)  # a stream: no sampler (refused up front)
        network.train(stream(data["train"][rank], data["val"], data["labels"], device), setup.kind, setup.n_classes,
                      shape.bands, shape.frames, (shape.mean, shape.std), prepare=prepare, on_round=on_round,
                      device=device, rank=rank, world=world)
        return
    network = trainable(setup, config["params"], threads, len(data["y_train"]), data["x_train"].shape[1])
    network.train(data, setup.kind, setup.n_classes, setup.schedule.steps_per_round, prepare=prepare,
                  on_round=on_round, device=device, rank=rank, world=world)


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function (two or more workers): data-parallel, reports through Ray Train."""
    import ray
    import ray.train
    import ray.train.torch

    def report(metrics: dict[str, Any], checkpoint: str | None) -> None:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(checkpoint) if checkpoint else None)

    ctx = ray.train.get_context()
    pg = ray.util.get_current_placement_group()
    _fit(config, config["setup"], report, ray.train.torch.get_device(), prepare=ray.train.torch.prepare_model,
         rank=ctx.get_world_rank(), world=ctx.get_world_size(), worker_pg=pg.id.hex() if pg else "")


@contextmanager
def _prompt_reports() -> Iterator[None]:
    """Around a TorchTrainer's ``fit()``: its controller polls the workers every 0.2 s instead of 2 s.

    Ray Train hands the workers' reports over when its controller polls them, and a round of a small
    table takes far less than 2 s: a 4-round single run on 180 clips took 20 s instead of 10. Ray
    passes the setting from the environment of the process that calls ``fit()`` to the controller;
    it is put back after, so that a notebook's own Ray Train runs keep theirs.
    """
    if POLL_ENV in os.environ:  # the user's own setting
        yield
        return
    os.environ[POLL_ENV] = "0.2"
    try:
        yield
    finally:
        os.environ.pop(POLL_ENV, None)


def _trainer(params: dict[str, Any], data: list, setup: Setup, name: str, callbacks: list) -> Any:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": setup.worker_cpus, **({"GPU": 1} if setup.use_gpu else {})}
    return TorchTrainer(
        worker_loop, train_loop_config={"params": params, "data": data, "setup": setup},
        scaling_config=ScalingConfig(num_workers=setup.workers, use_gpu=setup.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=name, storage_path=setup.storage, callbacks=callbacks,
                             failure_config=FailureConfig(max_failures=0),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)))


def trial_driver(config: dict[str, Any], data: list | None = None, setup: Setup | None = None) -> None:
    """One Tune trial: one worker trains here and reports to Tune; more launch a TorchTrainer run whose reports
    Tune sees (TuneReportCallback)."""
    import ray.tune

    if setup.in_trial:
        import torch

        def report(metrics: dict[str, Any], checkpoint: str | None) -> None:
            ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(checkpoint) if checkpoint else None)

        _fit({"params": config, "data": data}, setup, report, torch.device("cuda" if setup.use_gpu else "cpu"))
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    name = f"trial-{ray.tune.get_context().get_trial_id()}"
    with _prompt_reports():
        _trainer(config, data, setup, name, [TuneReportCallback()]).fit()


def _trainable(data: dict[str, Any], setup: Setup) -> Any:
    """The trial function with the shared data, holding a one-worker trial's resources itself, else
    ``DRIVER_CPUS``."""
    from ray import tune

    worker = {"CPU": setup.worker_cpus, **({"GPU": 1} if setup.use_gpu else {})}
    own = worker if setup.in_trial else {"CPU": DRIVER_CPUS}
    return tune.with_resources(tune.with_parameters(trial_driver, data=_shared(data), setup=setup), own)


def _run_config(name: str, setup: Setup) -> Any:
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's newer console output ignores verbose=0
    return tune.RunConfig(name=name, storage_path=setup.storage, verbose=0, callbacks=[_cleanup_callback()],
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1))  # the last is the best


def _free_worker_groups(pg_hex: list[str]) -> None:
    """Remove the placement groups of stopped trials' worker groups.

    When Tune stops a trial (ASHA), it kills the trial's driver and with it
    the Ray Train controller; Ray Train frees that run's worker placement group
    from a watcher that needs Ray's state API (the dashboard). Without it the
    group would hold its CPUs for ever and the next trial would wait, so the
    workers report the group's id and it is removed here (a no-op if already gone).
    """
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    for h in filter(None, pg_hex):
        pg = PlacementGroup(ray.PlacementGroupID(bytes.fromhex(h)))
        if ray.util.placement_group_table(pg).get("state") not in (None, "REMOVED"):
            remove_placement_group(pg)


def _cleanup_callback() -> Any:
    from ray import tune

    class FreeWorkerGroups(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            _free_worker_groups([trial.last_result.get("worker_pg", "")])

        on_trial_error = on_trial_complete

    return FreeWorkerGroups()


@dataclass(frozen=True)
class TuningResult:
    params: dict[str, Any]
    checkpoint: str  # directory holding CHECKPOINT_FILE
    best_val_score: float
    trials: list[dict[str, Any]]
    history: list[dict[str, float]]  # the chosen run's rounds: epoch, train_score, val_score


def _history(df: Any) -> list[dict[str, float]]:
    """A run's reported rounds as plain rows (empty when it reported none)."""
    from acoustic_env.learn.fit import HISTORY

    if df is None or not set(HISTORY) <= set(df.columns):
        return []
    return [{k: float(v) for k, v in row.items()} for row in df[list(HISTORY)].dropna().to_dict("records")]


def runner_words(workers: int) -> str:
    """How each run trains, in words (the run record's method, the dry run's plan)."""
    return "one worker (in the trial's process)" if workers == 1 else f"{workers} Ray Train workers (data-parallel)"


class TrialPlan(NamedTuple):
    concurrent: int  # trials in flight at once
    worker_cpus: float  # CPUs of each worker (the trial itself, or each Ray Train worker)
    use_gpu: bool


def plan_trials(cluster: dict[str, float], workers: int, max_concurrent: int, device: str) -> TrialPlan:
    """How many trials run at once and what each worker gets, from the cluster's resources.

    Each concurrent trial gets ``workers`` workers; CPUs are shared out so the
    trials in flight never need more than the cluster has (minus the drivers'
    0.01 CPU each), which is what keeps a 2-CPU machine from waiting forever.
    """
    cpus = float(cluster.get("CPU", 1.0))
    gpus = float(cluster.get("GPU", 0.0))
    use_gpu = device == "cuda" or (device == "auto" and gpus >= 1)
    concurrent = max_concurrent or max(1, int(cpus // (2 * workers)))
    if use_gpu:
        concurrent = min(concurrent, max(1, int(gpus // workers)))
    per_worker = min(1.0, (cpus - 0.05 * concurrent) / (concurrent * workers))
    if per_worker <= 0:
        concurrent, per_worker = 1, max(0.1, (cpus - 0.05) / workers)
    return TrialPlan(concurrent, round(per_worker, 2), use_gpu)


def _shared(data: dict[str, Any]) -> list:
    """The arrays in the object store once, as a list so that Ray hands the reference on instead of resolving it."""
    import ray

    return [ray.put(data)]


def _checkpoint_path(result: Any, df: Any) -> str | None:
    """A trial's last (best) checkpoint: Tune's own (one worker), else the path Ray Train's reports carried."""
    if result.checkpoint is not None:
        return result.checkpoint.path
    ck = df["checkpoint_path"].dropna() if df is not None and "checkpoint_path" in df else []
    return str(ck.iloc[-1]) if len(ck) else None


def _trial_rows(grid: Any) -> tuple[list[dict[str, Any]], tuple | None]:
    """Each trial's row (parameters, best score, rounds, error) and the best trial's (score, config, checkpoint,
    history), None when no trial left a checkpoint; the stopped trials' worker groups freed."""
    rows, best = [], None
    for result in grid:
        df = result.metrics_dataframe
        score = float(df[METRIC].max()) if df is not None and METRIC in df else -math.inf
        rounds = int(df["round"].max()) if df is not None and "round" in df else 0
        _free_worker_groups(list(df["worker_pg"].dropna().unique()) if df is not None and "worker_pg" in df else [])
        rows.append({**result.config, METRIC: score, "rounds": rounds,
                     "error": None if result.error is None else str(result.error).splitlines()[0]})
        checkpoint = _checkpoint_path(result, df)
        if checkpoint and (best is None or score > best[0]):
            best = (score, dict(result.config), checkpoint, _history(df))
    return rows, best


def tune_trials(data: dict[str, Any], setup: Setup, trials: int, time_budget_s: float, concurrent: int,
                grace_rounds: int) -> TuningResult:
    """Run the Bayesian tuning of ``setup.model``'s ``tune_space`` on ``data`` (x_train, y_train, x_val, y_val),
    its defaults first.

    Returns the best trial's parameters and best checkpoint.
    """
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    space = setup.model.tune_space
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(points_to_evaluate=[space.defaults(setup.model.params)], seed=setup.seed)
    # max_t beyond the last round: a run that finishes ends by itself instead
    # of being stopped by the scheduler while it writes its last report.
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=setup.schedule.max_rounds + 1,
                              grace_period=grace_rounds, reduction_factor=3)
    tuner = tune.Tuner(
        _trainable(data, setup), param_space=tuning_space(space),
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=trials, max_concurrent_trials=concurrent,
                                    time_budget_s=time_budget_s),
        run_config=_run_config("search", setup))
    rows, best = _trial_rows(tuner.fit())
    if best is None:
        errors = [r["error"] for r in rows if r["error"]]
        if not errors:
            raise ConfigError(f"time_budget_s: no trial finished a round within {time_budget_s:g} s")
        raise RuntimeError(f"no tuning trial produced a model ({len(rows)} trials; first error: {errors[0]})")
    return TuningResult(params={k: best[1][k] for k in space.ranges}, checkpoint=best[2], best_val_score=best[0],
                        trials=sorted(rows, key=lambda r: -r[METRIC]), history=best[3])


def single_run(data: dict[str, Any], setup: Setup, params: dict[str, Any]) -> TuningResult:
    """One run with fixed parameters (the tuning turned off): a Tune run of one trial, placed, trained and
    checkpointed as a tuning's trials are."""
    from ray import tune

    tuner = tune.Tuner(_trainable(data, setup), param_space=dict(params),
                       tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=1),
                       run_config=_run_config("single", setup))
    rows, best = _trial_rows(tuner.fit())
    if best is None:
        error = rows[0]["error"] if rows and rows[0]["error"] else "no error"
        raise RuntimeError(f"the training run reported no checkpoint ({error})")
    score, _, checkpoint, history = best
    return TuningResult(params=dict(params), checkpoint=checkpoint, best_val_score=score, trials=rows,
                        history=history)


def load_checkpoint(path: str, storage: str) -> dict[str, Any]:
    """The state dict in a checkpoint directory, loaded without pickle.

    Ray gives checkpoint paths without the protocol; ``storage`` supplies it.
    """
    import io

    import torch

    from acoustic_env.storage import filesystem, strip_protocol_keep

    uri = path if "://" in path else strip_protocol_keep(storage, path)
    fs, p = filesystem(uri)
    raw = fs.cat_file(f"{p.rstrip('/')}/{CHECKPOINT_FILE}")
    return torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")


def fit_streamed(table: TableInfo, train: Rows, val: Rows, test: Rows,
                 setup: Setup) -> tuple[nn.Module, Survey, TuningResult, np.ndarray]:
    """Train ``setup.model``, a network of images (``trains``: ``stream``), at its ``network`` settings on
    ``train``'s images, early stopping on ``val``'s, and score ``test``'s: one run of ``setup.workers`` workers
    (``setup.use_gpu``), as a tuned network's trial, whose CPUs leave Ray Data's read and decode tasks one
    (``distributed.images.training_cpus``). Returns the best round's network (CPU, evaluation mode, its spec's
    ``restore``), the survey that set its window and scaling, the run (its validation score and history) and
    ``test``'s probabilities.

    Two or more workers train data-parallel, each rank on its own lazy dataset of an equal share of the training
    rows (``Rows.share``), read from the worker's process: the shards of one dataset (Ray Train's ``DataConfig``,
    ``streaming_split``) waited for ever beside two training workers on a 2-CPU machine, their read in a
    coordinator actor whose resource manager saw no CPU left for its tasks."""
    import ray

    from acoustic_env.distributed.images import images, score, survey, training_cpus

    model, shape = setup.model, survey(table, train)
    check = model.input_problem
    if check and (problem := check(shape.bands, model.params)):  # here, not as a failed trial's traceback
        raise ConfigError(f"{model.name}_architecture: {problem}")
    data = {"train": [images(table, train.share(rank, setup.workers), shape) for rank in range(setup.workers)],
            "val": images(table, val, shape), "labels": train.y, "shape": shape}
    cpus = training_cpus(ray.cluster_resources(), setup.workers, 0.0 if setup.workers == 1 else DRIVER_CPUS)
    found = single_run(data, replace(setup, worker_cpus=cpus), dict(model.params[NETWORK]))
    net = model.restore((shape.bands, shape.frames), setup.kind, setup.n_classes, found.params,
                        load_checkpoint(found.checkpoint, setup.storage))
    return net, shape, found, score(net, images(table, test, shape), len(test.ids), setup.kind, setup.n_classes)
