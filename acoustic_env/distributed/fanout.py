"""Many small independent fits as Ray tasks: the audit's cross-fitting folds, the training job's ablations.

A Ray Train run per item would spend most of its time starting workers; a
plain task per item is enough. Inputs every item needs (the feature matrix of
all folds) go into the object store once, not once per task.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from acoustic_env.distributed.session import start_ray

T = TypeVar("T")


def _apply(fn: Callable[..., T], item: Any, **shared: Any) -> T:
    return fn(item, **shared)


def map_tasks(fn: Callable[..., T], items: Iterable[Any], num_cpus: float = 1.0, **shared: Any) -> list[T]:
    """``[fn(item, **shared) for item in items]``, each call a Ray task of ``num_cpus`` CPUs, in order.

    Starts a local Ray instance unless the job has already started or joined one.
    """
    import ray

    if not ray.is_initialized():
        start_ray()
    refs = {name: ray.put(value) for name, value in shared.items()}
    task = ray.remote(num_cpus=num_cpus)(_apply)
    return ray.get([task.remote(fn, item, **refs) for item in items])
