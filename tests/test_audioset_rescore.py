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
from acoustic_env.jobs.audioset.rescored import COLUMNS, rescored_list
from acoustic_env.pages.review import page_items
from acoustic_env.learn.metrics import wilson

CLASSES = {URBAN: "urban", NATURAL: "natural"}


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """An audit of 240 clips (15 % flipped) whose ids are AudioSet's <YTID>_<start ms>, its review page (10 suspects,
    80 random clips), and the truth."""
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
                                      "classifier": "logreg", "review_top": 10, "random_sample": 80}))
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
    shown = page_items(str(audit_dir / "audit" / "review"))  # what the reviewer saw, and so judged
    random_rows = [r for r in rows if ("random", r["clip_id"]) in shown]
    suspects = [r for r in rows if ("suspects", r["clip_id"]) in shown]
    assert len(random_rows) == 80 and len(suspects) == 10
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


def test_the_rescored_list_runs_most_suspect_first(audited, tmp_path):
    """The list a user works down: the suspected clips first, each block from the lowest score (the out-of-fold
    probability of the given class) up, clip for clip in the audit's suspect order, whatever order the ids sort in."""
    audit = audited[0] / "audit"
    rescored_list(str(audit), str(tmp_path / "rescored.csv"))
    frame = pd.read_csv(tmp_path / "rescored.csv", comment="#", skipinitialspace=True, names=list(COLUMNS),
                        keep_default_na=False)
    ids = [f"{r['YTID']}_{int(round(r['start_seconds'] * 1000))}" for r in frame.to_dict("records")]
    ranked = sorted(pq.read_table(audit / "audit.parquet").to_pylist(), key=lambda r: r["suspect_rank"])
    assert ids == [r["clip_id"] for r in ranked] != sorted(ids)
    suspected = frame["suspected"].to_numpy()
    assert 10 <= suspected.sum() < len(suspected) and (np.diff(suspected) <= 0).all()  # 1s, then 0s
    for block in (1, 0):
        assert (np.diff(frame["score"].to_numpy()[suspected == block]) >= 0).all(), block


def test_not_an_audit_is_one_line(tmp_path, capsys):
    assert main(["audioset", "rescore", "--audit", str(tmp_path), "--output", f"{tmp_path}-o.csv"]) == 2
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


# ----------------------------------------------------------------------------- hostile inputs (issue 44: 3, 5, 8, 14)

def _shown_verdicts(audit_dir) -> list[dict]:
    """A correct verdict on each random clip of the review page."""
    rows = {r["clip_id"]: r for r in pq.read_table(audit_dir / "audit.parquet").to_pylist()}
    return [{"clip_id": c, "given_labels": rows[c]["given_labels"], "sample": s, "verdict": "correct",
             "time": "2026-11-23T10:00:00Z"} for s, c in sorted(page_items(str(audit_dir / "review"))) if s == "random"]


def test_verdicts_for_clips_the_review_did_not_show_are_not_counted(audited, tmp_path, capsys):
    """audit-estimate's rule, in rescore too: a verdict counts only for a clip the page showed, in its sample."""
    audit = audited[0] / "audit"
    real = _shown_verdicts(audit)
    suspects_only = sorted(c for s, c in page_items(str(audit / "review")) if s == "suspects"
                           and ("random", c) not in page_items(str(audit / "review")))
    forged = [{**real[0], "clip_id": f"forged{i:05d}_0"} for i in range(20)]
    forged.append({**real[0], "clip_id": suspects_only[0]})  # a clip of the audit, but not shown in this sample
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(real + forged))
    out = tmp_path / "rescored.csv"
    assert main(["audioset", "rescore", "--audit", str(audit), "--verdicts", str(path), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(real)} reviewed" in printed and "left out 21 verdicts for clips not in audit" in printed, printed
    accuracy = json.loads((tmp_path / "rescored.accuracy.json").read_text())
    assert accuracy["reviewed"] == len(real) and accuracy["review"]["overall"]["n"] == len(real)
    assert "overall 100.0% [" in out.read_text() and f"(n={len(real)})" in out.read_text()
    assert main(["audit-estimate", "--verdicts", str(path), "--audit", str(audit)]) == 0
    assert f"(n={len(real)})" in capsys.readouterr().out  # the same count from both commands


def test_verdicts_on_an_audit_without_a_review_page_are_one_line(audited, tmp_path, capsys):
    import shutil

    audit = tmp_path / "audit"
    shutil.copytree(audited[0] / "audit", audit, ignore=shutil.ignore_patterns("review"))
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(_shown_verdicts(audited[0] / "audit")))
    assert main(["audioset", "rescore", "--audit", str(audit), "--verdicts", str(path),
                 "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "review/index.html does not exist" in err[0], err


def test_quotes_and_line_breaks_in_labels_keep_one_row_per_clip(audited, tmp_path):
    import csv
    import shutil

    audit = tmp_path / "audit"
    shutil.copytree(audited[0] / "audit", audit)
    table = pq.read_table(audit / "audit.parquet")
    labels = table["labels"].to_pylist()
    labels[0] = ['a "quoted" label', "two\nlines"]
    given = table["given_labels"].to_pylist()
    given[1] = ['class "b", with a comma']
    table = table.set_column(table.schema.get_field_index("labels"), "labels", pa.array(labels))
    table = table.set_column(table.schema.get_field_index("given_labels"), "given_labels", pa.array(given))
    pq.write_table(table, audit / "audit.parquet")
    out = tmp_path / "rescored.csv"
    assert main(["audioset", "rescore", "--audit", str(audit), "--output", str(out)]) == 0
    frame = pd.read_csv(out, comment="#", skipinitialspace=True, names=list(COLUMNS), keep_default_na=False)
    rows = list(csv.reader((ln for ln in out.read_text().splitlines() if not ln.startswith("#")), skipinitialspace=True))
    assert len(frame) == len(rows) == table.num_rows and all(len(r) == len(COLUMNS) for r in rows)
    by_id = {f"{r['YTID']}_{int(round(r['start_seconds'] * 1000))}": r for r in frame.to_dict("records")}
    first, second = (by_id[c] for c in table["clip_id"].to_pylist()[:2])
    assert first["positive_labels"] == 'a "quoted" label,two lines'
    assert second["given_class"] == 'class "b", with a comma'
    segments = {s["clip_id"]: s["labels"] for s in pa.concat_tables(read_segments(str(out))).to_pylist()}
    assert segments[table["clip_id"][0].as_py()] == ['a "quoted" label', "two lines"]


def test_rescore_never_replaces_its_input(audited, tmp_path, capsys):
    audit = audited[0] / "audit"
    path = tmp_path / "v.accuracy.json"  # also the accuracy file of an output v.csv
    path.write_text(json.dumps(_shown_verdicts(audit)))
    before = path.read_text(), (audit / "audit.parquet").read_bytes()
    for output, words in ((path, "output: "), (audit / "audit.parquet", "lies inside the audit"),
                          (tmp_path / "v.csv", "output (its accuracy file):")):
        code = main(["audioset", "rescore", "--audit", str(audit), "--verdicts", str(path), "--output", str(output)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and words in err[0] and "this job reads" in err[0], err
    (tmp_path / "folder").mkdir()
    assert main(["audioset", "rescore", "--audit", str(audit), "--output", str(tmp_path / "folder")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert (path.read_text(), (audit / "audit.parquet").read_bytes()) == before
