"""The review server's queue: the next clips by the audit's review order, re-ranked on the verdicts so far.

``GET api/next`` (server.py) asks :meth:`ReviewQueue.next` for a batch. The order is the one the page was built
with (``review_order``, from the page's own data); the verdicts are every one the server holds, from both
samples (a random clip's verdict teaches the refitted model as much as a suspect's). A clip the order reaches
that the page does not show yet gets its spectrogram and Ogg written there and then, and is added to
``review/queue.json``: from then on it is a clip of the page's queue, whose verdicts the server takes and
``audit-estimate`` counts, like those of the clips the audit put there. The random sample is never touched.
"""

from __future__ import annotations

import json
import threading
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.errors import AuditError
from acoustic_env.pages.review import (
    QUEUE_FILE,
    inlined_data,
    queue_item,
    queued,
    review_pool,
    write_assets,
)
from acoustic_env.learn.review_order import Pool, next_batch
from acoustic_env.storage import filesystem, join, read_part

#: The most clips one ``api/next`` hands out (each may cost an Ogg and a spectrogram).
MAX_BATCH = 50


def settled_label(record: dict[str, Any], given: Any, class_names: tuple[str, ...], kind: str) -> Any:
    """The label a verdict settles on for the review order (``learn/review_order.py``), or None when it settles none.

    ``correct`` keeps the given label; ``wrong`` takes the corrected class(es), or for a two-class single-label
    task the other class; ``unsure``, or wrong without the right class among several, settles nothing.
    """
    corrected = [c for c in record["corrected_label"] if c in class_names]
    if record["verdict"] == "correct":
        return given
    if record["verdict"] != "wrong":
        return None
    if kind == "single_label":
        if corrected:
            return class_names.index(corrected[0])
        return 1 - int(given) if len(class_names) == 2 else None
    return np.array([int(c in corrected) for c in class_names]) if corrected else None


class ReviewQueue:
    """The audit table as the review order sees it, and the page's queue, growing as the order reaches new clips."""

    def __init__(self, table_uri: str, review_dir: str) -> None:
        self.review_dir = review_dir
        data = inlined_data(review_dir)
        self.order, self.seed = data.get("review_order", "suspect"), int(data.get("seed", 0))
        self.class_names, self.kind = tuple(data["classes"]), data["kind"]
        self.table_uri = table_uri
        self.items = {item["clip_id"]: item for item in data["suspects"]}
        self.added = queued(review_dir)
        self.items.update((item["clip_id"], item) for item in self.added)
        self._lock = threading.Lock()

    @cached_property
    def table(self) -> pa.Table:
        """The audit table, read on the first ``api/next`` (a server that is never asked does not pay for it)."""
        fs, path = filesystem(self.table_uri)
        if not fs.exists(path):
            raise AuditError(f"audit: no audit table at {self.table_uri} to order the review queue by")
        return read_part(self.table_uri)

    @cached_property
    def pool(self) -> Pool:
        return review_pool(self.table, self.class_names, self.kind)

    @cached_property
    def row(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.table["clip_id"].to_pylist())}

    def reviewed(self, records: list[dict[str, Any]]) -> dict[int, Any]:
        """Row → settled label (or None) for every clip of the table a verdict is about."""
        out: dict[int, Any] = {}
        for r in records:
            i = self.row.get(r["clip_id"])
            if i is not None and out.get(i) is None:  # a clip judged in both samples: the one that settles
                out[i] = settled_label(r, self.pool.given[i], self.class_names, self.kind)
        return out

    def next(self, records: list[dict[str, Any]], n: int) -> dict[str, Any]:
        """The next ``n`` unreviewed clips of the order, as page items with their reasons; the clips added so far."""
        with self._lock:  # one re-ranking at a time: two would write the same assets and queue.json
            picks = next_batch(self.order, self.pool, self.reviewed(records), min(n, MAX_BATCH), self.seed)
            out = []
            for pick in picks:
                clip_id = self.table["clip_id"][pick.index].as_py()
                if clip_id not in self.items:
                    row = self.table.take(pa.array([pick.index], pa.int64())).to_pylist()[0]
                    item = queue_item(row, self.class_names, write_assets(row, self.review_dir), pick.reason)
                    self.items[clip_id] = item
                    self.added.append(item)
                    fs, path = filesystem(join(self.review_dir, QUEUE_FILE))
                    fs.pipe_file(path, json.dumps(self.added).encode())
                out.append({**self.items[clip_id], "reason": pick.reason})
            return {"order": self.order, "next": out, "added": self.added}
