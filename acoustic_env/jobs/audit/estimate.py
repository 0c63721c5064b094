"""Label accuracy from reviewed clips, with a confidence interval.

Only a **random sample** estimates the accuracy of the labels: every clip had
the same chance to be reviewed, so the share a reviewer finds correct is an
unbiased estimate for the whole collection (as published hand checks of 100
random AudioSet clips are). The **suspects** list was chosen because the audit
thought those labels wrong, so its share of correct labels is far below the
collection's; what it measures is the false-alarm rate of the flags
(1 − accuracy there = the precision of the audit's flags). The two samples are
therefore never pooled: an estimate is for one ``sample`` at a time. That is also what keeps it unbiased
whatever order the review queue took (``--review-order``): the random sample is drawn apart from the queue
(tests/test_review_order.py simulates it over many draws for every order).

Verdicts: ``correct`` and ``wrong`` count, ``unsure`` is left out of ``n``.
A verdict may also carry ``corrected_label`` (the class(es) the reviewer heard
instead; a list, ``;``-separated in CSV) and a free-text ``note``; files
written before those fields existed read as having none.
When a clip was judged more than once in a sample, its latest verdict counts.
A file is read as a spreadsheet may have saved it (:func:`verdict_text`): UTF-8, UTF-16 or
UTF-32 with a byte-order mark, else Windows-1252; comma-, semicolon- or tab-separated.
Intervals are 95 %: Wilson's score interval (good coverage down to small n and
accuracies near 0 or 1, unlike the normal approximation) or a percentile
bootstrap over clips.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any, Iterable

import numpy as np

from acoustic_env.bounded import MAX_VERDICT_BYTES, read_bytes
from acoustic_env.csv_writer import restore_cell
from acoustic_env.errors import AuditError
from acoustic_env.learn.metrics import wilson
from acoustic_env.storage import filesystem, join

VERDICTS = ("correct", "wrong", "unsure")
SAMPLES = ("random", "suspects")
METHODS = ("wilson", "bootstrap")
NO_CLASS = "(none)"
#: How deep a verdict file's JSON may nest: ``{"verdicts": [{"given_labels": ["a"]}]}`` is 4 levels; deeper
#: data is refused before any of it is read (a thousand levels end Python's reader in a RecursionError, a few
#: hundred the ``str()`` of a field).
MAX_JSON_DEPTH = 8
#: Byte-order marks, longest first (UTF-32's little-endian mark begins with UTF-16's), and their codecs.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def normalize_verdict(record: dict[str, Any]) -> dict[str, Any]:
    """One verdict record in canonical form, or AuditError naming the bad field."""
    if not isinstance(record, dict):
        raise AuditError(f"verdicts: each verdict must be an object, got {record!r}")
    clip_id = record.get("clip_id")
    if not isinstance(clip_id, str) or not clip_id:
        raise AuditError(f"verdicts: clip_id must be a non-empty string, got {clip_id!r}")
    verdict = str(record.get("verdict", "")).strip().lower()
    if verdict not in VERDICTS:
        raise AuditError(f"verdicts: verdict must be one of {list(VERDICTS)}, got {record.get('verdict')!r} ({clip_id})")
    sample = str(record.get("sample", "")).strip().lower()
    if sample not in SAMPLES:
        raise AuditError(f"verdicts: sample must be one of {list(SAMPLES)}, got {record.get('sample')!r} ({clip_id})")
    given = _class_list(record.get("given_labels", record.get("given_label")), "given_labels", clip_id)
    corrected = _class_list(record.get("corrected_label") or [], "corrected_label", clip_id)
    if corrected and verdict == "correct" and sorted(corrected) != sorted(given):
        raise AuditError(f"verdicts: corrected_label {corrected} contradicts verdict 'correct' ({clip_id})")
    return {"clip_id": clip_id, "given_labels": given, "verdict": verdict, "sample": sample,
            "reviewer": str(record.get("reviewer") or ""), "time": str(record.get("time") or ""),
            "audit_id": str(record.get("audit_id") or ""), "corrected_label": corrected,
            "note": str(record.get("note") or "")}


def _class_list(value: Any, field: str, clip_id: str) -> list[str]:
    """Class names from a JSON list or a CSV cell (``a;b``)."""
    if isinstance(value, str):
        value = [g.strip() for g in value.split(";") if g.strip()]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise AuditError(f"verdicts: {field} must be a list of class names, got {value!r} ({clip_id})")
    return value


def load_json(text: str | bytes, name: str) -> Any:
    """JSON of at most ``MAX_JSON_DEPTH`` levels, or one AuditError: not JSON, or nested deeper."""
    too_deep = AuditError(f"verdicts: {name} nests deeper than {MAX_JSON_DEPTH} levels (a verdict file has 4)")
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise AuditError(f"verdicts: {name} is not valid JSON ({exc})") from None
    level = [data]
    for _ in range(MAX_JSON_DEPTH):  # level by level, without recursion
        level = [v for x in level if isinstance(x, (list, dict)) for v in (x.values() if isinstance(x, dict) else x)]
    if level:
        raise too_deep
    return data


def verdict_text(data: bytes, name: str) -> str:
    """The text of a verdict file as a spreadsheet saves it: the codec its byte-order mark names, else UTF-8,
    else Windows-1252 (Excel's plain "CSV" in Western locales); one AuditError when none reads it."""
    codec = next((c for bom, c in _BOMS if data.startswith(bom)), None)
    for candidate in (codec,) if codec else ("utf-8", "cp1252"):
        try:
            return data.decode(candidate)
        except UnicodeDecodeError:
            continue
    raise AuditError(f"verdicts: {name} is neither UTF-8 nor UTF-16 nor Windows-1252 text; save it as CSV UTF-8")


def parse_verdicts(text: str, name: str = "verdicts") -> list[dict[str, Any]]:
    """Verdicts from the text of a JSON file (a list, or ``{"verdicts": [...]}``: text that starts like JSON, or any
    text of a file named ``.json``) or a CSV file (its header says which of ``,``, ``;`` or a tab separates the
    fields)."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")) or name.lower().endswith(".json"):
        data = load_json(text, name)
        records = data.get("verdicts") if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise AuditError(f"verdicts: {name} must hold a list of verdicts or {{\"verdicts\": [...]}}")
    else:
        header = stripped.split("\n", 1)[0]
        delimiter = max(",;\t", key=header.count)
        reader = csv.DictReader(io.StringIO(stripped), delimiter=delimiter)  # from the header found, past blank lines
        try:  # each cell as written before the CSV writer's rule (the review page's export applies it)
            records = [{k: restore_cell(v) if isinstance(v, str) else v for k, v in r.items()} for r in reader]
        except csv.Error as exc:
            raise AuditError(f"verdicts: {name} is not a CSV file ({exc})") from None
        if "verdict" not in (reader.fieldnames or ()):  # a header alone too: a file of anything else is no verdicts
            raise AuditError(f"verdicts: {name} has no 'verdict' column (columns: {list(reader.fieldnames or ())})")
    return [normalize_verdict(r) for r in records]


def read_verdicts(uris: Iterable[str]) -> list[dict[str, Any]]:
    """Verdicts from one or more files (local or object storage), concatenated."""
    records: list[dict[str, Any]] = []
    for uri in uris:
        records += parse_verdicts(read_verdict_text(uri), uri)
    return records


def read_verdict_text(uri: str) -> str:
    """The text of the verdict file at ``uri`` (:func:`verdict_text`), read by the one reader of a user's files: a
    regular file of at most ``bounded.MAX_VERDICT_BYTES``; anything else is one line naming it."""
    try:
        data = read_bytes(uri, "verdicts", MAX_VERDICT_BYTES, "a verdict file")
    except (FileNotFoundError, NotADirectoryError):
        raise AuditError(f"verdicts: file not found: {uri}") from None
    except IsADirectoryError:
        raise AuditError(f"verdicts: {uri} is a directory; give the verdicts file (e.g. "
                         "<audit>/review/verdicts.json)") from None
    return verdict_text(data, uri)


def on_page(records: list[dict[str, Any]], review_dir: str) -> tuple[list[dict[str, Any]], int]:
    """(the verdicts about clips the review page in ``review_dir`` showed, in the sample it showed them in;
    how many others): the one rule for which verdicts count, in ``audit-estimate`` and ``audioset rescore``.

    A verdict about any other clip was not drawn by the audit's sampling (forged, or
    from another audit), so it must not count in the estimate, nor as reviewed. An audit
    without a review page showed no clip: its verdicts cannot be checked, and that is one line.
    """
    from acoustic_env.pages.review import PAGE, page_items

    fs, page = filesystem(join(review_dir, PAGE))
    if not fs.exists(page):
        raise AuditError(f"verdicts: {join(review_dir, PAGE)} does not exist, so no verdict can be checked against "
                         "the clips it showed; build the page with `acoustic-env audit-review --review-top N`")
    known = page_items(review_dir)
    kept = [r for r in records if (r["sample"], r["clip_id"]) in known]
    return kept, len(records) - len(kept)


def latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per (sample, clip): the latest by time (ISO 8601 strings sort by time)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        key = (rec["sample"], rec["clip_id"])
        if key not in best or rec["time"] >= best[key]["time"]:
            best[key] = rec
    return list(best.values())


def bootstrap(outcomes: np.ndarray, n_boot: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (95 %) of the mean of 0/1 outcomes."""
    if outcomes.size == 0:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = rng.choice(outcomes, size=(n_boot, outcomes.size), replace=True).mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def _cell(outcomes: list[int], method: str) -> dict[str, Any]:
    n = len(outcomes)
    if n == 0:
        return {"accuracy": None, "low": None, "high": None, "n": 0}
    k = int(sum(outcomes))
    low, high = wilson(k, n) if method == "wilson" else bootstrap(np.asarray(outcomes, dtype=float))
    return {"accuracy": round(k / n, 6), "low": round(low, 6), "high": round(high, 6), "n": n}


def choose_sample(records: list[dict[str, Any]], sample: str | None) -> str:
    """The sample to estimate from: the one asked for, else ``random`` when present, else ``suspects``."""
    present = {r["sample"] for r in records}
    if sample is not None:
        if sample not in SAMPLES:
            raise AuditError(f"sample: must be one of {list(SAMPLES)}, got {sample!r}")
        if sample not in present:
            raise AuditError(f"sample: no verdicts for sample {sample!r} (the file has: {sorted(present) or 'none'})")
        return sample
    if not present:
        raise AuditError("verdicts: the file holds no verdicts")
    return "random" if "random" in present else "suspects"


def estimate_accuracy(records: list[dict[str, Any]], sample: str | None = None,
                      method: str = "wilson") -> dict[str, Any]:
    """The label-accuracy estimate (the shape the training report reads)::

        {"method": "wilson", "sample": "random",
         "overall": {"accuracy": 0.8, "low": 0.72, "high": 0.86, "n": 100},
         "per_class": {"urban": {...}, "natural": {...}}}

    Per class, a clip counts under each of its given labels (a multi-label clip
    under several); a clip given no class counts under ``(none)``.
    """
    if method not in METHODS:
        raise AuditError(f"method: must be one of {list(METHODS)}, got {method!r}")
    chosen = choose_sample(records, sample)
    judged = [r for r in latest(records) if r["sample"] == chosen and r["verdict"] != "unsure"]
    if not judged:
        raise AuditError(f"verdicts: no correct/wrong verdicts in sample {chosen!r} (only 'unsure')")
    per_class: dict[str, list[int]] = {}
    for r in judged:
        for cls in r["given_labels"] or [NO_CLASS]:
            per_class.setdefault(cls, []).append(int(r["verdict"] == "correct"))
    return {"method": method, "sample": chosen,
            "overall": _cell([int(r["verdict"] == "correct") for r in judged], method),
            "per_class": {c: _cell(v, method) for c, v in sorted(per_class.items())}}


def estimate_lines(est: dict[str, Any]) -> list[str]:
    """What the console prints for an estimate."""
    def cell(c: dict[str, Any]) -> str:
        if not c["n"]:
            return "no verdicts"
        return f"{c['accuracy']:.1%} [{c['low']:.1%}, {c['high']:.1%}] (n={c['n']})"

    if "label_list" in est:
        ll = est["label_list"]
        return [f"accuracy of the corrected list, 95 % {est['method']} interval: {cell(est['overall'])}",
                f"  (the table's labels {cell(ll['table'])} on the random sample; the list relabels {ll['relabelled']} "
                f"and leaves out {ll['removed']} of {ll['clips']} audited clips"
                + (f"; {ll['contradicted']} of its labels go against a reviewer's verdict, counted wrong)"
                   if ll.get("contradicted") else ")")]
    meaning = ("accuracy of the labels (random sample)" if est["sample"] == "random" else
               "share of flagged labels that were right (suspects: 1 - precision of the flags; "
               "not the accuracy of the collection)")
    lines = [f"{meaning}, 95 % {est['method']} interval:", f"  overall  {cell(est['overall'])}"]
    lines += [f"  {name}  {cell(c)}" for name, c in est["per_class"].items()]
    return lines


def contradicts(record: dict[str, Any], classes: tuple[str, ...]) -> bool:
    """Whether giving a clip ``classes`` goes against the reviewer's verdict ``record`` on it: the verdict said the
    given classes were right, or named the right classes (``corrected_label``) and ``classes`` are others. No
    classes (the clip taken out of training) contradicts nothing."""
    if not classes or record["verdict"] == "unsure":
        return False
    if record["verdict"] == "correct":
        return sorted(classes) != sorted(record["given_labels"])
    return bool(record.get("corrected_label")) and sorted(classes) != sorted(record["corrected_label"])


def after_corrections(est: dict[str, Any], given: dict[str, tuple[str, ...]],
                      listed: dict[str, tuple[str, ...]], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The accuracy of a corrected label list, from the table's estimate ``est`` (random sample) and what the list
    changed: ``given``, every audited clip's given classes; ``listed``, the list's classes of the clips it names;
    ``records``, the reviewers' verdicts (both samples; a clip's latest counts).

    Why not re-judge the random sample against the list: the list holds those very verdicts, so every reviewed
    clip would count as right and the estimate would be 100 %, whatever is left unreviewed. Instead the table's
    wrong share ``p`` (with its interval) counts the wrong labels of all ``N`` clips, ``p · N``; the list fixed
    ``k`` of them (the clips it gives other classes) and took ``r`` out of training (no class), so about
    ``p · N − k − r`` wrong labels remain among ``N − r``: accuracy ``1 − max(0, p · N − k − r) / (N − r)``, each
    bound mapped the same way. It assumes the reviewers were right, so a change that goes against a verdict
    (:func:`contradicts`) is no fix: it counts as a wrong label, one more when the verdict had found the given
    label right (``c``, and a clip taken out whose given label a verdict found right removed no wrong label):
    ``1 − max(0, p · N − k + c − r) / (N − r)``, at most every clip left wrong. Clips the list names that are not
    audited are left out.
    """
    if est["sample"] != "random":
        raise AuditError("labels: the corrected list's accuracy needs the random sample's estimate (--sample random); "
                         "the suspects' verdicts say nothing of the collection")
    changed = {c: v for c, v in listed.items() if c in given and tuple(sorted(v)) != tuple(sorted(given[c]))}
    last: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: r["time"]):  # ISO 8601 times sort as times; the latest stands
        last[rec["clip_id"]] = rec
    against = {c for c, v in changed.items() if c in last and contradicts(last[c], v)}
    right = {c for c in changed if c in last and last[c]["verdict"] == "correct"}  # the given label was right
    removed = sum(1 for v in changed.values() if not v)
    relabelled, n = len(changed) - removed, len(given)
    fixed = relabelled - len(against)
    removed_wrong = removed - sum(1 for c, v in changed.items() if not v and c in right)
    made_wrong = len(against & right)
    kept = max(n - removed, 1)

    def mapped(accuracy: float) -> float:
        wrong = max(0.0, (1.0 - accuracy) * n - fixed - removed_wrong + made_wrong)
        return round(1.0 - min(wrong, kept) / kept, 6)

    table = est["overall"]
    return {**est, "per_class": {}, "label_list": {"clips": n, "relabelled": relabelled, "removed": removed,
                                                   "contradicted": len(against), "table": table},
            "overall": {"accuracy": mapped(table["accuracy"]), "low": mapped(table["low"]),
                        "high": mapped(table["high"]), "n": table["n"]}}
