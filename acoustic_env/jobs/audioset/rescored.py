"""The rescored label list: what a user of AudioSet takes away from an audit and its review.

One file in AudioSet's segment-list format, each row the published four fields
(``YTID, start_seconds, end_seconds, "labels"``: the labels as given) followed by
what the audit and the review made of them::

    given_class      the task's class(es) the given labels make (';' between several)
    score            the out-of-fold probability of the given class (``label_quality``,
                     cleanlab's self-confidence: low = the model doubts the label)
    suspected        1 when confident learning flagged the label, else 0
    suggested_class  the model's most probable class(es)
    verdict          the reviewer's latest verdict on the clip (correct, wrong, unsure; empty: not reviewed);
                     only verdicts about a clip the audit's review page showed count
                     (:func:`acoustic_env.jobs.audit.estimate.on_page`, audit-estimate's rule)
    settled_class    the class the review settled: the given one when judged correct, the
                     right class the reviewer chose when judged wrong (empty: unsure, not
                     reviewed, or wrong without a right class)

A field that holds a comma or a quote is quoted as CSV quotes it (a quote doubled; the
labels field always quoted, as published), and a line break in one becomes a space, so
each clip is one line that ``csv`` and pandas read as written.

The ``#`` header lines carry the estimated label accuracy per class with its 95 %
interval, from two sources, never mixed: the review of the *random* sample
(:func:`acoustic_env.jobs.audit.estimate.estimate_accuracy`, Wilson's interval by
default; the suspects say how precise the flags are, not how accurate the labels are,
so they are not used), and confident learning's estimate (``1 −`` the estimated share of
wrong labels, with its group-bootstrap interval). ``<name>.accuracy.json`` holds both.
The rows are the audit's clips, most suspect first. The project's segment-list readers
(``audioset sample`` and ``fetch``, ``extract --manifest``) take the first four fields of a
row and ignore the rest, so the file is also the segment list of the audit's clips with
their labels as given; pandas reads all of it with
``pd.read_csv(path, comment="#", skipinitialspace=True, names=COLUMNS)``.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pyarrow.parquet as pq

from acoustic_env.csv_writer import safe_cell
from acoustic_env.errors import AuditError
from acoustic_env.jobs.audit.estimate import estimate_accuracy, on_page, read_verdicts
from acoustic_env.jobs.audit.job import SUMMARY, TABLE
from acoustic_env.pages.review import PAGE, REVIEW_DIR
from acoustic_env.pages.review import verdicts_uri
from acoustic_env.jobs.preflight import check_output_file
from acoustic_env.bounded import read_record
from acoustic_env.storage import filesystem, join, write_bytes, write_json

COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels", "given_class", "score", "suspected",
           "suggested_class", "verdict", "settled_class")


def settled(records: list[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """clip_id → (latest verdict over both samples, the class it settles: see the module docstring)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for r in sorted(records, key=lambda r: r["time"]):  # ISO 8601 times sort as times; the last one stands
        if r["verdict"] == "correct":
            cls = r["given_labels"]
        elif r["verdict"] == "wrong":
            cls = r["corrected_label"]
        else:
            cls = []
        out[r["clip_id"]] = (r["verdict"], list(cls))
    return out


def _segment(row: dict[str, Any]) -> tuple[str, str, str]:
    """YTID and bounds: an AudioSet id ``<YTID>_<start ms>`` of its group; another clip's id, bounds as known."""
    start, end, group = row.get("start_s"), row.get("end_s"), row.get("group")
    ytid = group if group and start is not None and row["clip_id"] == f"{group}_{round(start * 1000)}" else row["clip_id"]
    return ytid, "" if start is None else f"{start:.3f}", "" if end is None else f"{end:.3f}"


def _model_accuracy(summary: dict[str, Any]) -> dict[str, Any]:
    """Confident learning's label accuracy per class: 1 − estimated wrong share, the interval turned likewise."""
    def cell(c: dict[str, Any]) -> dict[str, Any]:
        span = c.get("interval")
        return {"accuracy": round(1 - c["estimated_wrong_share"], 6), "low": round(1 - span[1], 6) if span else None,
                "high": round(1 - span[0], 6) if span else None, "n": c.get("given")}

    noise = summary["noise"]
    return {"method": "confident learning (cleanlab), " + noise.get("interval_method", ""),
            "overall": {"accuracy": round(1 - noise["estimated_wrong_share"], 6), "low": None, "high": None}
            if not noise.get("interval") else cell({**noise, "given": summary["counts"].get("audited")}),
            "per_class": {k: cell(v) for k, v in noise["per_class"].items()}}


def rescored_list(audit: str, output: str, verdicts: list[str] = (), method: str = "wilson") -> dict[str, Any]:
    """Write the rescored list of an audit (and its review's verdicts) to ``output``; returns the accuracy estimates.

    The output (and its accuracy file) must be none of the files read: checked first, one line.
    """
    inputs = {f"verdicts file {u}": u for u in verdicts}
    for uri in (join(audit, TABLE), join(audit, SUMMARY), join(audit, REVIEW_DIR, PAGE), verdicts_uri(audit)):
        inputs[f"audit's {uri.rsplit('/', 1)[-1]}"] = uri
    check_output_file(output, "output", inputs)
    check_output_file(accuracy_uri(output), "output (its accuracy file)", inputs)
    fs, path = filesystem(join(audit, TABLE))
    if not fs.isfile(path):
        raise AuditError(f"audit: no {TABLE} in {audit} (is it an audit's output directory?)")
    with fs.open(path, "rb") as fh:
        rows = pq.read_table(fh).to_pylist()
    summary = read_record(join(audit, SUMMARY), "audit")
    records, left_out = on_page(read_verdicts(verdicts), join(audit, REVIEW_DIR)) if verdicts else ([], 0)
    by_clip = settled(records)
    review = None
    if any(r["sample"] == "random" for r in records):
        review = estimate_accuracy(records, sample="random", method=method)
    accuracy = {"audit": audit, "clips": len(rows), "reviewed": len(by_clip), "verdicts_left_out": left_out,
                "review": review, "model": _model_accuracy(summary), "task": summary.get("task")}
    lines = [f"# {line}\n" for line in _header(accuracy)] + ["# " + ", ".join(COLUMNS) + "\n"]
    for row in rows:
        verdict, cls = by_clip.get(row["clip_id"], ("", []))
        ytid, start, end = _segment(row)
        fields = [_field(ytid), start, end, _quoted(",".join(row.get("labels") or [])),
                  _field(";".join(row["given_labels"])), f"{row['label_quality']:.4f}", str(int(bool(row["flagged"]))),
                  _field(";".join(row["suggested_labels"])), verdict, _field(";".join(cls))]
        lines.append(", ".join(fields) + "\n")
    try:
        write_bytes("".join(lines).encode(), output)
        write_json(accuracy, accuracy_uri(output))
    except OSError as exc:  # a place the command's checks could not foresee: one line, nothing half-written
        raise AuditError(f"output: cannot write {output}: {exc.strerror or exc}") from None
    return accuracy


def _quoted(text: str) -> str:
    """A field in quotes, CSV-style: a quote inside doubled, a line break a space (a row is one line); a cell that
    would open as a formula neutralised first (:func:`acoustic_env.csv_writer.safe_cell`)."""
    return '"' + " ".join(safe_cell(text).splitlines()).replace('"', '""') + '"'


def _field(text: str) -> str:
    """A free-text field, quoted (:func:`_quoted`) when it holds a comma, a quote or a line break; neutralised
    as every CSV cell is."""
    return _quoted(text) if any(c in text for c in ',"\r\n') else safe_cell(text)


def accuracy_uri(output: str) -> str:
    root, ext = posixpath.splitext(output)
    return f"{root if ext == '.csv' else output}.accuracy.json"


def _cell(c: dict[str, Any]) -> str:
    if c.get("accuracy") is None:
        return "no verdicts"
    span = f" [{c['low']:.1%}, {c['high']:.1%}]" if c.get("low") is not None else ""
    return f"{c['accuracy']:.1%}{span}" + (f" (n={c['n']})" if c.get("n") is not None else "")


def _header(accuracy: dict[str, Any]) -> list[str]:
    """The header lines: what the file is, then the accuracy per class from each source."""
    lines = [f"Rescored labels of {accuracy['clips']} clips (audit {accuracy['audit']}); {accuracy['reviewed']} reviewed"]
    review = accuracy["review"]
    if review:
        lines.append(f"Label accuracy, review of a random sample ({review['method']} 95 %): overall "
                     f"{_cell(review['overall'])}; " + "; ".join(f"{k} {_cell(v)}" for k, v in review["per_class"].items()))
    else:
        lines.append("Label accuracy from review: none (no verdicts on a random sample)")
    model = accuracy["model"]
    lines.append("Label accuracy, confident learning estimate (95 % group bootstrap): overall "
                 f"{_cell(model['overall'])}; " + "; ".join(f"{k} {_cell(v)}" for k, v in model["per_class"].items()))
    return lines
