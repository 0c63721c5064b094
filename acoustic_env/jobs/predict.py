"""``acoustic-env predict FILES|DIR|MANIFEST --model M``: label recordings with a trained model.

Up to :data:`IN_PROCESS_MAX` clips are decoded and featurised in this process
(:func:`predict_files`): no Ray start-up, no feature
table, a few seconds for a few files. Larger inputs go through the extract job
(Ray, resumable, parallel) into ``output`` (default: a temporary directory), and the
model scores the table it wrote, as ``annotate`` does. Both paths compute the features
with the same functions and the parameters the model's training table was extracted
with, so they give the same probabilities.

Every row also has a ``note`` (:func:`acoustic_env.audio.featurize.clip_note`): a
silent clip is reported as such with no prediction and null probabilities, a file
longer than ``decode.max_duration_s`` says it was scored on its first part. URIs and
messages have their secrets replaced by ``***`` (:func:`acoustic_env.storage.redact`)
before the table leaves this module, so neither the console nor ``--save`` holds one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from acoustic_env.audio.featurize import clip_note, clip_rows, featurize
from acoustic_env.audio.manifest import AUDIO_EXTENSIONS, read_manifest
from acoustic_env.audio.rows import redact_columns
from acoustic_env.config import IN_PROCESS_MAX, ConfigError, DecodeParams, ExtractConfig, FeatureParams, from_dict
from acoustic_env.jobs.preflight import check_device, check_input, check_output
from acoustic_env.learn.artifact import Model, load_model, top_classes
from acoustic_env.storage import join, read_parts
from acoustic_env.table import RANDOM


def input_rows(inputs: Sequence[str], audio_root: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """(rows with clip_id and uri, the manifest they came from or None) for FILES, a DIR or a MANIFEST."""
    if not inputs:
        raise ConfigError("inputs: give audio files, a directory of them, or a clip list")
    for uri in inputs:
        check_input(uri, "inputs")
    first = inputs[0]
    path = urlsplit(first).path if "://" in first else first  # a local name may hold "?" or "#"
    audio = path.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS
    if len(inputs) == 1 and not audio:
        manifest = read_manifest(first, audio_root)
        table = manifest.table.filter(pa.compute.is_null(manifest.table["error_type"]))
        cols = [c for c in ("clip_id", "uri", "start_s", "end_s") if c in table.column_names]
        return table.select(cols).to_pylist(), manifest.source
    return clip_rows(inputs), None


def predict(inputs: Sequence[str], model: str, *, output: str | None = None, audio_root: str | None = None,
            max_in_process: int = IN_PROCESS_MAX, weights_cache: str | None = None, device: str = "cpu",
            top_tags: int = 3) -> pa.Table:
    """One row per clip: ``clip_id``, ``uri``, ``predicted``, ``prob_<class>``, ``error``, ``note`` (and ``tags``)."""
    check_input(model, "model")
    check_device(device)
    if output:
        check_output(output, "output")
    m = load_model(model)
    rows, manifest = input_rows(inputs, audio_root)
    decode, features, _ = m.extraction_params()
    if len(rows) <= max_in_process:
        table = predict_files(m, rows, decode, features, weights_cache=weights_cache, device=device,
                              top_tags=top_tags)
    else:
        table = _via_extract(m, rows, manifest, output, decode, features, weights_cache, top_tags)
    return redact_columns(table)


def predict_files(m: Model, rows: Sequence[dict[str, Any]], decode: DecodeParams | None = None,
                  features: FeatureParams | None = None, *, weights_cache: str | None = None, device: str = "cpu",
                  top_tags: int = 3) -> pa.Table:
    """Label a few clips in this process (no Ray, no feature table): one row per clip, as :func:`predict`'s.

    ``rows``: ``clip_id`` and ``uri`` (and optionally ``start_s``, ``end_s``), as
    :func:`input_rows` or :func:`acoustic_env.audio.featurize.clip_rows` give them. Decodes
    and computes the model's feature groups with the extract job's own functions, so the
    probabilities equal those of the same clips extracted and read back. ``decode``,
    ``features``: the parameters the training table was extracted with (default: read
    from its run record, :meth:`Model.extraction_params`). Meant for a handful of files:
    each is decoded and embedded in turn.
    """
    if decode is None or features is None:
        decode, features, _ = m.extraction_params()
    embedders, taggers, columns = m.feature_plan()
    found = featurize(rows, columns, decode=decode, features=features, embedders=embedders,
                      weights_cache=weights_cache, device=device)
    scored = m.predict_table({**{c: found.vectors[c] for c in m.inputs}, "clip_id": found.clip_ids}).to_pylist()
    tags = (top_classes(found.vectors[taggers[0].scores_column], taggers[0].score_names or (), top_tags)
            if taggers else None)
    return rows_table(m, [{**s, "uri": uri, "error": error, "note": note, "silent": silent,
                           **({"tags": tags[i]} if tags is not None else {})}
                          for i, (s, uri, error, note, silent)
                          in enumerate(zip(scored, found.uris, found.errors, found.notes, found.silent))])


def rows_table(m: Model, rows: list[dict[str, Any]], extra: Sequence[tuple[str, pa.DataType]] = ()) -> pa.Table:
    """The predictions table; a silent clip keeps its note but gets no prediction and null probabilities.

    A probability the model could not give (a clip without features: NaN) is null too, so that a missing
    value is one thing in the table and an empty cell in its CSV, never ``nan`` beside empty ones.
    ``extra``: columns after ``uri`` that the rows carry (a window's ``start_s``, ``end_s``).
    """
    probs = [f"prob_{c}" for c in m.class_names]
    out = [{"clip_id": r["clip_id"], "uri": r["uri"], **{name: r[name] for name, _ in extra},
            **({"predicted": None, **dict.fromkeys(probs)} if r["silent"] else
               {"predicted": r.get("predicted"), **{p: _known(r.get(p)) for p in probs}}),
            "error": r["error"], "note": r["note"], **({"tags": r["tags"]} if "tags" in r else {})} for r in rows]
    predicted = pa.list_(pa.string()) if m.kind == "multi_label" else pa.string()
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string()), *extra, ("predicted", predicted),
                        *[(p, pa.float64()) for p in probs], ("error", pa.string()), ("note", pa.string()),
                        *([("tags", pa.list_(pa.string()))] if out and "tags" in out[0] else [])])
    return pa.Table.from_pylist(out, schema=schema)


def _known(p: float | None) -> float | None:
    """A probability, or None where there is none (None or NaN)."""
    return None if p is None or math.isnan(p) else p


def _via_extract(m: Model, rows: list[dict[str, Any]], manifest: str | None, output: str | None,
                 decode: DecodeParams, features: FeatureParams, weights_cache: str | None, top_tags: int) -> pa.Table:
    """The extract job into ``output`` (default: a temporary folder, removed after), then the model on what it
    wrote (as annotate scores)."""
    from acoustic_env.jobs.extract import extract

    # the model's embedders, on the signals its columns are of, and the raw signal's tags as in-process
    embedding = m.extract_settings(tags=True)
    # a list of files becomes a clip list for the job, outside the output: its URIs may hold secrets
    with tempfile.TemporaryDirectory(prefix="acoustic-env-predict-") as tmp:
        work = output or os.path.join(tmp, "output")
        if manifest is None:
            manifest = os.path.join(tmp, "predict-clips.jsonl")
            with open(manifest, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps({"clip_id": r["clip_id"], "uri": r["uri"]}) + "\n" for r in rows)
        extract(from_dict(ExtractConfig, {
            "manifest": manifest, "output": work, **embedding, "weights_cache": weights_cache,
            "allow_random_weights": RANDOM in m.embedder_weights().values(),
            "decode": decode.to_dict(), "features": features.to_dict()}))
        return _score_output(m, rows, work, decode, top_tags)


def _score_output(m: Model, rows: list[dict[str, Any]], work: str, decode: DecodeParams, top_tags: int) -> pa.Table:
    """One row per clip of ``rows`` from an extract output: its prediction, or its error row's reason."""
    taggers = m.taggers()
    facts = read_parts(join(work, "features"), columns=["clip_id", "is_silent", "orig_duration_s", "duration_s"])
    facts_of = {} if facts is None else {f["clip_id"]: f for f in facts.to_pylist()}
    ids = [r["clip_id"] for r in rows]
    scored = {} if facts is None else {  # no clip succeeded: no table to read, every row has its error
        r["clip_id"]: r for r in m.predict_table(m.read_features(work, clip_ids=ids)).to_pylist()}
    errors = read_parts(join(work, "errors"), columns=["clip_id", "stage", "error_type", "message"])
    why = {} if errors is None else {r["clip_id"]: f"{r['stage']}/{r['error_type']}: {r['message']}"
                                     for r in errors.to_pylist()}
    tags: dict[str, Any] = {}
    if taggers and facts is not None:
        t = read_parts(join(work, "features"), columns=["clip_id", taggers[0].scores_column])
        scores = np.stack([np.asarray(v, dtype=np.float32) for v in t[taggers[0].scores_column].to_pylist()])
        tags = dict(zip(t["clip_id"].to_pylist(), top_classes(scores, taggers[0].score_names or (), top_tags)))
    out = []
    for r in rows:
        s = scored.get(r["clip_id"], {})
        f = facts_of.get(r["clip_id"])
        out.append({**s, "clip_id": r["clip_id"], "uri": r["uri"],
                    "error": None if s else why.get(r["clip_id"], "no finite features for this clip"),
                    "note": f and clip_note(f["is_silent"], f["orig_duration_s"], f["duration_s"], decode),
                    "silent": bool(f and f["is_silent"]), **({"tags": tags.get(r["clip_id"])} if taggers else {})})
    return rows_table(m, out)


def format_predictions(table: pa.Table, class_names: Sequence[str]) -> list[str]:
    """The console table: clip, class, its probability, the other classes' and the tags (or the error)."""
    rows = table.to_pylist()
    width = max([len("clip")] + [len(r["clip_id"]) for r in rows])
    lines = [f"{'clip':<{width}}  {'class':<16} {'prob':>6}  other classes / tags"]
    for r in rows:
        if r.get("error") or r["predicted"] is None:
            why = f"not scored: {r['error']}" if r.get("error") else r.get("note")
            lines.append(f"{r['clip_id']:<{width}}  {'-':<16} {'-':>6}  {why}")
            continue
        pred = r["predicted"]
        if isinstance(pred, list):  # multi-label: every class with its probability
            lines.append(f"{r['clip_id']:<{width}}  {','.join(pred) or '(none)':<16} {'':>6}  "
                         + ", ".join(f"{c} {r[f'prob_{c}']:.3f}" for c in class_names))
        else:
            others = ", ".join(f"{c} {r[f'prob_{c}']:.3f}" for c in class_names if c != pred)
            lines.append(f"{r['clip_id']:<{width}}  {pred:<16} {r[f'prob_{pred}']:>6.3f}  {others}")
        if r.get("tags"):
            lines[-1] += "; tags: " + ", ".join(r["tags"])
        if r.get("note"):
            lines[-1] += f"; {r['note']}"
    return lines
