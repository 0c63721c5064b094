"""How many threads the numeric libraries get while the learners run: one wherever the matrices are small.

OpenBLAS (numpy's and scipy's) splits every product over all cores, and its
threads spin while they wait for each other. On the matrices a few hundred
clips make (a PCA of 155 x 528, logistic regression on 155 x 40) the split
costs more than the product: the demo's cross-validated train took 22 s and
31 CPU-s with two BLAS threads against 16 s and 16 CPU-s with one, and every
spinning thread is a core taken from the other processes of a busy machine
(benchmarks/RESULTS.md, "BLAS threads"). From about a million entries on the
second thread pays: a PCA of 2,000 x 2,048 took 2.0 s against 3.4 s.
Torch's threads are set the same way, by ``torch_threads``.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import cache
from typing import Any, ContextManager, Iterator

#: Below this many entries (rows x columns) a matrix is worked on by one BLAS thread.
SMALL = 1_000_000


@cache
def _controller() -> Any:
    """numpy's and scipy's BLAS libraries, found once (a fresh ``threadpool_limits`` scans them: ~1 ms a call).

    The callers are the learners, which import scikit-learn, so both libraries are loaded by the first call."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads(entries: int) -> ContextManager[Any]:
    """One BLAS thread for the block when it works on a matrix of fewer than ``SMALL`` entries; else as set."""
    return _controller().limit(limits=1, user_api="blas") if entries < SMALL else nullcontext()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: as they are), restored after."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
