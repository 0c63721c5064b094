"""The feature stages in torch, batched over clips, on whatever device they are given.

One module per stage, mirroring ``features/fast``, whose numpy code stays the definition
(tests/test_torch_features.py holds each stage to it). Each works on a ``[clips, samples]``
tensor of equal-length clips: the clips of a batch are grouped by length (``buckets``) and
each group is one tensor, so the hot path has no Python loop over clips. numpy arrays go in
and come out at the boundary (``batch_features``), like the fast paths; torch is imported
where these modules are, never by ``acoustic_env.features`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def buckets(clips: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Indices of ``clips`` grouped by length: each group becomes one tensor (decoded clips are mostly 10 s)."""
    lengths = np.array([c.size for c in clips])
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}
