"""`acoustic-env audioset rescore`: the audit's scores, flags and review verdicts as a rescored segment list.

The audit runs on a feature table with labels flipped on purpose (``test_audit_support``),
with AudioSet-style ids; the verdicts are a reviewer who knows the truth. The accuracy
in the header is checked against Wilson's interval computed here from the truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_support import NATURAL, URBAN, make_table

from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audioset.segments import read_segments
from acoustic_env.cli import main
from acoustic_env.config import AuditConfig, from_dict
from acoustic_env.jobs.audit.job import run_audit
from acoustic_env.jobs.audit.rescored import COLUMNS
from acoustic_env.learn.metrics import wilson

CLASSES = {URBAN: "urban", NATURAL: "natural"}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """An audit of 240 clips (15 % flipped) whose ids are AudioSet's <YTID>_<start ms>, and the truth."""
    tmp = tmp_path_factory.mktemp("rescore")
    truth = make_table(tmp / "features.parquet", 240, [[URBAN], [NATURAL]], 0.15, seed=2, groups=80)
    table = pq.read_table(tmp / "features.parquet")
    start = np.arange(table.num_rows) % 3 * 10.0
    ids = [f"{g}_{int(s * 1000)}" for g, s in zip(table["group"].to_pylist(), start)]
    renamed = dict(zip(table["clip_id"].to_pylist(), ids))
    table = table.set_column(table.schema.get_field_index("clip_id"), "clip_id", pa.array(ids))
    table = table.set_column(table.schema.get_field_index("start_s"), "start_s", pa.array(start))
    table = table.set_column(table.schema.get_field_index("end_s"), "end_s", pa.array(start + 10.0))
    pq.write_table(table, tmp / "features.parquet")
    run_audit(from_dict(AuditConfig, {"features": str(tmp / "features.parquet"), "output": str(tmp / "audit"),
                                      "classifier": "logreg", "review_top": 0, "random_sample": 0}))
    flipped = {renamed[c] for c in truth["flipped"]}
    true_class = {renamed[c]: CLASSES[[URBAN, NATURAL][t]] for c, t in zip(truth["ids"], truth["true"])}
    return tmp, flipped, true_class


def verdicts(rows: list[dict], flipped: set[str], true_class: dict[str, str], sample: str) -> list[dict]:
    """A reviewer who knows the truth: correct, or wrong with the right class."""
    return [{"clip_id": r["clip_id"], "given_labels": r["given_labels"], "sample": sample,
             "time": f"2026-11-23T10:{i // 60:02d}:{i % 60:02d}Z",
             "verdict": "wrong" if r["clip_id"] in flipped else "correct",
             "corrected_label": [true_class[r["clip_id"]]] if r["clip_id"] in flipped else []}
            for i, r in enumerate(rows)]


def test_rescored_list_holds_scores_flags_settled_labels_and_accuracy(audited, tmp_path, capsys):
    audit_dir, flipped, true_class = audited
    rows = pq.read_table(audit_dir / "audit" / "audit.parquet").to_pylist()
    rng = np.random.default_rng(0)
    random_rows = [rows[i] for i in rng.choice(len(rows), 80, replace=False)]
    suspects = [r for r in rows if r["flagged"]][:10]
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(verdicts(random_rows, flipped, true_class, "random")
                               + verdicts(suspects, flipped, true_class, "suspects")))
    out = tmp_path / "rescored_segments.csv"
    assert main(["audioset", "rescore", "--audit", str(audit_dir / "audit"), "--verdicts", str(path),
                 "--output", str(out)]) == 0
    assert "reviewed" in capsys.readouterr().out

    # the published four fields read by the project's segment-list readers (sample and fetch's; extract's),
    # the file as written; every field by pandas
    first4 = pa.concat_tables(read_segments(str(out))).to_pylist()
    manifest = read_manifest(str(out), audio_root=str(tmp_path / "audio")).table.to_pylist()
    assert [m["clip_id"] for m in manifest] == [s["clip_id"] for s in first4]
    assert [m["labels"] for m in manifest] == [s["labels"] for s in first4]
    table = pd.read_csv(out, comment="#", skipinitialspace=True, names=list(COLUMNS), keep_default_na=False)
    assert len(table) == len(rows) == len(first4)
    by_id = {r["clip_id"]: r for r in rows}
    for rec, seg in zip(table.to_dict("records"), first4):
        audit_row = by_id[seg["clip_id"]]
        assert seg["YTID"] == rec["YTID"] and seg["labels"] == audit_row["labels"]
        assert rec["given_class"] == ";".join(audit_row["given_labels"])
        assert rec["score"] == pytest.approx(audit_row["label_quality"], abs=1e-4)
        assert rec["suspected"] == int(audit_row["flagged"])
    reviewed = {r["clip_id"] for r in random_rows + suspects}
    settled = {f"{r['YTID']}_{int(round(r['start_seconds'] * 1000))}": r["settled_class"]
               for r in table.to_dict("records") if r["verdict"]}
    assert set(settled) == reviewed
    assert all(settled[c] == true_class[c] for c in reviewed)  # the review settles the true class

    accuracy = json.loads((tmp_path / "rescored_segments.accuracy.json").read_text())
    for cls in ("urban", "natural"):
        outcomes = [r["clip_id"] not in flipped for r in random_rows if r["given_labels"] == [cls]]
        low, high = wilson(sum(outcomes), len(outcomes))
        cell = accuracy["review"]["per_class"][cls]
        assert cell["n"] == len(outcomes) and cell["accuracy"] == pytest.approx(np.mean(outcomes), abs=1e-6)
        assert (cell["low"], cell["high"]) == pytest.approx((low, high), abs=1e-6)
        model = accuracy["model"]["per_class"][cls]
        assert model["low"] <= model["accuracy"] <= model["high"]
    header = out.read_text().splitlines()[:4]
    assert header[1].startswith("# Label accuracy, review of a random sample") and "urban" in header[1]


def test_without_verdicts_the_list_has_the_model_estimate_only(audited, tmp_path):
    audit_dir, _, _ = audited
    out = tmp_path / "rescored.csv"
    assert main(["audioset", "rescore", "--audit", str(audit_dir / "audit"), "--output", str(out)]) == 0
    text = out.read_text()
    assert "Label accuracy from review: none" in text and "confident learning estimate" in text
    assert json.loads((tmp_path / "rescored.accuracy.json").read_text())["review"] is None


def test_not_an_audit_is_one_line(tmp_path, capsys):
    assert main(["audioset", "rescore", "--audit", str(tmp_path), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no audit.parquet in" in err[0]


def test_segment_list_readers_take_four_fields_and_ignore_the_rest(tmp_path):
    """Both readers (sample and fetch's, extract's) on rows with and without columns after the labels."""
    path = tmp_path / "list.csv"
    path.write_text('# YTID, start_seconds, end_seconds, positive_labels, more\n'
                    'vidA, 0.000, 10.000, "/m/09x0r,/m/04rlf"\n'
                    'vidB, 10.000, 20.000, "/m/0jbk", speech, 0.1250, 1, "a,b", wrong, "x,""y"""\n'
                    'vidC, 20.000, 30.000, /m/07yv9, vehicle\n')
    expected = [["/m/09x0r", "/m/04rlf"], ["/m/0jbk"], ["/m/07yv9"]]
    assert pa.concat_tables(read_segments(str(path)))["labels"].to_pylist() == expected
    manifest = read_manifest(str(path), audio_root=str(tmp_path)).table
    assert manifest["labels"].to_pylist() == expected
    assert manifest["clip_id"].to_pylist() == ["vidA_0", "vidB_10000", "vidC_20000"]
