"""train, audit and annotate with ``--labels``: a corrected label list replaces the table's labels without
re-extracting, the run records which list it was, and annotate leaves the clips a reviewer labelled alone.

Small synthetic tables (acoustic_env.demo.tables) whose flipped labels are known; the list is made as a user makes
it, through ``labels add-verdicts`` and ``labels apply``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from acoustic_env import load_model
from acoustic_env.cli import main
from acoustic_env.config import AnnotateConfig, from_dict
from acoustic_env.demo.quick_model import quick_model
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.annotate import annotate
from acoustic_env.table import read_features

CLASSES = ("urban", "natural")


def _corrected_list(tmp_path: Path, table: str, corrections: dict[str, tuple[str, str]]) -> str:
    """The list a review that judged ``corrections`` ({clip: (given, right)}) wrong makes, through the commands."""
    verdicts = tmp_path / "verdicts.json"
    verdicts.write_text(json.dumps([{"clip_id": c, "verdict": "wrong", "sample": "suspects", "given_labels": [given],
                                     "corrected_label": [right], "time": "2026-11-26T10:00:00Z"}
                                    for c, (given, right) in corrections.items()]))
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", str(verdicts), "--reviewer", "ann"]) == 0
    out = tmp_path / "corrected.csv"
    assert main(["labels", "apply", "--features", table, "--output", str(out)]) == 0
    return str(out)


def _audit(table: str, output: Path, *extra: str) -> dict:
    assert main(["audit", "--features", table, "--output", str(output), "--classifier", "logreg", "--folds", "3",
                 "--review-top", "0", "--random-sample", "0", *extra]) == 0
    return json.loads((output / "summary.json").read_text())


def test_audit_with_the_corrected_list_audits_the_corrected_labels(tmp_path, capsys):
    """A table with a quarter of its labels flipped; the review corrects every flipped one. The audit with
    ``--labels`` sees the right labels (its given_labels), estimates far fewer wrong ones, and records the list."""
    synth = synthetic_features(60, seed=1, signals=("raw",), flip=0.25)
    table = write_features(synth.table, str(tmp_path / "table"))
    ids = list(synth.ids)
    fixes = {c: (CLASSES[synth.given[i]], CLASSES[synth.true[i]]) for i, c in enumerate(ids) if c in synth.flipped}
    listed = _corrected_list(tmp_path, table, fixes)
    with open(listed, "a") as f:  # a clip the table does not hold: counted apart
        f.write("clip_not_extracted,urban,review,ann,,\n")
    before = _audit(table, tmp_path / "before")
    after = _audit(table, tmp_path / "after", "--labels", listed)
    assert "labels: " + listed + f" ({len(fixes) + 1} clips listed, 1 of them not in the table, {len(fixes)} changed " \
        "against the table" in capsys.readouterr().out
    given = dict(zip(*pq.read_table(tmp_path / "after" / "audit.parquet", columns=["clip_id", "given_labels"])
                     .to_pydict().values()))
    assert {c: g[0] for c, g in given.items()} == {c: CLASSES[synth.true[i]] for i, c in enumerate(ids)}
    wrong_before, wrong_after = (s["noise"]["estimated_wrong_share"] for s in (before, after))
    assert wrong_before > 0.15 and wrong_after < wrong_before - 0.1, (wrong_before, wrong_after)
    used = after["label_list"]
    assert used["uri"] == listed and used["changed"] == len(fixes) == used["clips"] - 1 and used["absent"] == 1
    assert used["sha256"] == hashlib.sha256(Path(listed).read_bytes()).hexdigest()
    assert before["label_list"] is None


def test_train_with_the_corrected_list_learns_the_corrected_labels(tmp_path):
    """A review that turned every label of a clean table round: the model train saves predicts the list's
    classes, not the table's, and model.json and the run record name the list."""
    synth = synthetic_features(40, seed=2, signals=("raw",))
    table = write_features(synth.table, str(tmp_path / "table"))
    turned = {c: (CLASSES[synth.given[i]], CLASSES[1 - synth.given[i]]) for i, c in enumerate(synth.ids)}
    listed = _corrected_list(tmp_path, table, turned)
    out = tmp_path / "train"
    assert main(["train", "--features", table, "--output", str(out), "--labels", listed, "--feature-groups",
                 "indices_raw", "--cv-folds", "3", "--baselines", "logreg", "--saved-model", "logreg",
                 "--tuning-trials", "1", "--no-ablations", "--shap-samples", "0", "--no-progress"]) == 0
    scored = load_model(str(out / "model")).predict_table(read_features(table))
    predicted = dict(zip(scored["clip_id"].to_pylist(), scored["predicted"].to_pylist()))
    agree = sum(predicted[c] == right for c, (_, right) in turned.items()) / len(turned)
    assert agree >= 0.9, agree
    meta = json.loads((out / "model" / "model.json").read_text())
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert meta["label_list"] == record["label_list"]
    assert meta["label_list"]["changed"] == 40 and meta["label_list"]["uri"] == listed


def test_annotate_skips_the_clips_a_reviewer_labelled(tmp_path):
    """The list's reviewed clips are not scored (a given label in it does not count as reviewed); the run records
    the list; a store no verdict has reached yet skips nothing."""
    synth = synthetic_features(24, seed=3, signals=("raw",))
    shared = write_features(synth.table, str(tmp_path / "shared"))
    model = quick_model(shared, str(tmp_path / "model"), feature_groups=["indices_raw"])
    rows = synth.table.select(["clip_id", "uri", "labels"]).to_pylist()[:6]
    manifest = tmp_path / "new.csv"
    manifest.write_text("clip_id,uri,labels\n" + "".join(f"{r['clip_id']},{r['uri']},{';'.join(r['labels'])}\n"
                                                         for r in rows))
    listed = tmp_path / "corrected.csv"
    listed.write_text("clip_id,labels,source\nclip0000000,natural,review\nclip0000001,,search\n"
                      "clip0000002,urban,given\n")

    def run(output: str, labels: str) -> tuple[dict, list[str]]:
        result = annotate(from_dict(AnnotateConfig, {"model": model, "features": shared, "manifest": str(manifest),
                                                     "output": str(tmp_path / output), "labels": labels,
                                                     "extract": {"progress": False}}))
        return result.record, pq.read_table(tmp_path / output / "annotations")["clip_id"].to_pylist()

    record, annotated = run("ann", str(listed))
    assert sorted(annotated) == [r["clip_id"] for r in rows[2:]]
    assert record["counts"]["reviewed"] == 2 and record["counts"]["annotated"] == 4
    assert record["label_list"]["uri"] == str(listed) and record["label_list"]["reviewed"] == 2
    (tmp_path / "store").mkdir()
    record, annotated = run("ann2", str(tmp_path / "store"))  # a store no verdict has reached yet
    assert len(annotated) == 6 and record["counts"]["reviewed"] == 0


def test_the_list_replaces_the_listed_clips_targets_and_leaves_the_rest(tmp_path):
    """Single-label: a listed class replaces the table's, a clip listed with no class (or two) is left out and
    counted, an unlisted clip keeps its label. Multi-label: the listed classes are the clip's memberships."""
    import numpy as np
    import yaml

    from acoustic_env.demo.tables import NATURAL, URBAN
    from acoustic_env.jobs.labelled import read_labelled

    listed = tmp_path / "list.csv"
    listed.write_text("clip_id,labels\nclip0000000,natural\nclip0000001,\nclip0000002,urban;natural\n"
                      "clip0000003,urban\nnot_in_table,urban\n")
    nothing = lambda features, task: None  # noqa: E731 - no minimum here
    single = write_features(synthetic_features(12, seed=5, signals=("raw",)).table, str(tmp_path / "single"))
    plain = read_labelled(single, "urban_natural", None, nothing)
    fixed = read_labelled(single, "urban_natural", None, nothing, labels=str(listed))
    table_y = dict(zip(plain.features.ids, plain.features.y))
    y = dict(zip(fixed.features.ids, fixed.features.y))
    assert y["clip0000000"] == 1 and y["clip0000003"] == 0 and "clip0000001" not in y and "clip0000002" not in y
    assert {c: v for c, v in y.items() if c not in ("clip0000000", "clip0000003")} == \
        {c: v for c, v in table_y.items() if c not in ("clip0000000", "clip0000001", "clip0000002", "clip0000003")}
    rows = fixed.features.excluded["rows"]
    assert (rows["no_class"], rows["ambiguous"], fixed.features.n_read) == (1, 1, 12)
    changed = sum(table_y[c] != v for c, v in (("clip0000000", 1), ("clip0000003", 0))) + 2  # the two left out
    assert fixed.label_list["changed"] == changed and fixed.label_list["clips"] == 5
    assert fixed.features.X["indices_raw"].shape == (10, plain.features.X["indices_raw"].shape[1])
    assert np.array_equal(fixed.features.X["indices_raw"][list(fixed.features.ids).index("clip0000004")],
                          plain.features.X["indices_raw"][list(plain.features.ids).index("clip0000004")])

    task = tmp_path / "multi.yaml"
    task.write_text(yaml.safe_dump({"name": "urban_natural", "kind": "multi_label",
                                    "classes": {"urban": {"mids": [URBAN]}, "natural": {"mids": [NATURAL]}}},
                                   sort_keys=False))
    multi = write_features(synthetic_features(12, seed=5, signals=("raw",), multi_label=True).table,
                           str(tmp_path / "multi"))
    plain = read_labelled(multi, str(task), None, nothing)
    fixed = read_labelled(multi, str(task), None, nothing, labels=str(listed))
    y, table_y = (dict(zip(s.features.ids, s.features.y.tolist())) for s in (fixed, plain))
    assert [y[f"clip000000{i}"] for i in range(4)] == [[0, 1], [0, 0], [1, 1], [1, 0]]
    assert {c: y[c] for c in y if c >= "clip0000004"} == {c: table_y[c] for c in table_y if c >= "clip0000004"}
