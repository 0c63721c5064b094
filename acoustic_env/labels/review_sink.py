"""The review server's verdicts into the label store as they are clicked, not later by ``labels add-verdicts``.

A reviewer who serves the audit's page (``audit-review --serve --store``) closes the
curation loop without a second command: each verdict the page posts is checked as
``labels add-verdicts`` checks a file (:func:`acoustic_env.labels.verdicts.verdict_events`:
a clip of the audited table, a class of its task, a reviewer to credit) and appended to the
store as its own event file, so a killed server loses no verdict it acknowledged and two
reviewers' servers never overwrite each other. The reviewer is the name typed on the page,
else the one the server was started with (``--reviewer``), else the account running it: the
server listens on 127.0.0.1 only, so whoever clicks is that person.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from acoustic_env.labels.store import append, default_store
from acoustic_env.labels.verdicts import table_clip_ids, verdict_events
from acoustic_env.vocabulary.tasks import Task, load_task


@dataclass(frozen=True)
class ReviewSink:
    """Where one audit's verdicts go in the label store, and what they are checked against."""

    store: str
    task: Task
    table: str
    clip_ids: frozenset[str]
    reviewer: str

    @classmethod
    def for_audit(cls, audit_config: dict[str, Any], store: str | None = None,
                  reviewer: str | None = None) -> ReviewSink:
        """The sink of an audit run with ``audit_config`` (its summary's ``config``): its table and task; ``store``
        None or empty: the store beside that table (``labels.store.default_store``)."""
        table = audit_config["features"]
        task = load_task(audit_config["task"], audit_config.get("ontology"))
        return cls(store or default_store(table), task, table, frozenset(table_clip_ids(table)),
                   reviewer or getpass.getuser())

    def add(self, records: list[dict[str, Any]]) -> str | None:
        """Append normalised verdict ``records`` (``estimate.normalize_verdict``) as events; the file written.

        Raises ConfigError, appending nothing, when one verdict fails the checks.
        """
        named = [{**r, "reviewer": r["reviewer"] or self.reviewer} for r in records]
        return append(self.store, verdict_events(named, self.task, self.clip_ids, table=self.table,
                                                 reviewer=None, origin=None))
