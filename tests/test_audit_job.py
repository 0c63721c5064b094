"""The audit job's plain parts, fast (no model fitted): the review order, the score against a truth list, the
sanity check of the out-of-fold fit, and what the console prints after an audit.

The whole job runs in tests/test_audit.py; these pin what a user reads, exactly, on data made here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from test_audit_support import NATURAL, URBAN, make_table

from acoustic_env.config import ConfigError
from acoustic_env.jobs.audit import job
from acoustic_env.learn.confident import LabelIssues
from acoustic_env.jobs.audit.job import (
    against_truth,
    audit_table,
    fit_quality,
    read_truth,
    summary_lines,
    suspect_ranks,
)
from acoustic_env.table import SCORES_REASON, read_features, read_metadata
from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.jobs.results import AuditResult


def test_the_review_order_is_flagged_first_then_lowest_label_quality():
    flagged = np.array([False, True, False, True, False])
    quality = np.array([0.1, 0.9, 0.05, 0.2, 0.7])
    ranks = suspect_ranks(flagged, quality)
    assert ranks.tolist() == [4, 2, 3, 1, 5] and ranks.dtype == np.int32


def test_truth_scores_the_flags_and_the_top_of_the_list():
    """Precision and recall of the flagged set and of the top k (k = the known errors among the audited clips, and
    the review page's length); a known error that was not audited does not count."""
    table = pa.table({"clip_id": list("abcdefg"), "flagged": [True, True] + [False] * 5})
    scored = against_truth(table, {"a", "c", "e", "gone"}, top=4)
    assert scored == {"known_wrong": 3, "true_wrong_share": 0.428571,
                      "flagged": {"n": 2, "hits": 1, "precision": 0.5, "recall": 0.333333},
                      "top_k": {"3": {"n": 3, "hits": 2, "precision": 0.666667, "recall": 0.666667},
                                "4": {"n": 4, "hits": 2, "precision": 0.5, "recall": 0.666667}}}
    none = against_truth(pa.table({"clip_id": ["a"], "flagged": [False]}), set())
    assert none == {"known_wrong": 0, "true_wrong_share": 0.0,
                    "flagged": {"n": 0, "hits": 0, "precision": None, "recall": None}, "top_k": {}}
    empty = against_truth(pa.table({"clip_id": pa.array([], pa.string()), "flagged": pa.array([], pa.bool_())}), {"a"})
    assert empty["true_wrong_share"] == 0.0 and empty["known_wrong"] == 0


def test_a_truth_list_marks_wrong_labels_by_flipped_and_says_what_it_lacks(tmp_path, monkeypatch):
    path = tmp_path / "truth.csv"
    path.write_bytes("\ufeffclip_id,flipped\na,1\nb, True\nc,yes\nd,0\ne,no\nf,\n".encode())
    assert read_truth(str(path)) == {"a", "b", "c"}
    (tmp_path / "bad.csv").write_text("id,wrong\nx,1\n")
    with pytest.raises(ConfigError) as caught:
        read_truth(str(tmp_path / "bad.csv"))
    assert str(caught.value) == (f"truth: {tmp_path / 'bad.csv'} needs the columns clip_id and flipped, "
                                 "got ['id', 'wrong']")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match=r"needs the columns clip_id and flipped, got \[\]$"):
        read_truth(str(tmp_path / "empty.csv"))
    with pytest.raises(ConfigError, match=f"^truth: cannot read {tmp_path / 'none.csv'}: "):
        read_truth(str(tmp_path / "none.csv"))
    (tmp_path / "latin.csv").write_bytes(b"clip_id,flipped\n\xe9,1\n")
    with pytest.raises(ConfigError, match="^truth: cannot read .*latin.csv: .*codec can't decode byte 0xe9"):
        read_truth(str(tmp_path / "latin.csv"))
    from acoustic_env import bounded  # the one reader of a user's files, which read_truth goes through

    monkeypatch.setattr(bounded, "filesystem", lambda uri: (_ for _ in ()).throw(OSError()))  # a store that says nothing
    with pytest.raises(ConfigError) as caught:
        read_truth("s3://b/truth.csv")
    assert str(caught.value) == "truth: cannot read s3://b/truth.csv: OSError()"


def test_a_truth_list_over_its_size_limit_is_one_line_naming_the_flag_and_the_limit(tmp_path, monkeypatch):
    """A multi-GB file given as ``--truth`` by mistake: refused before it is read, in the flag's own words."""
    monkeypatch.setattr("acoustic_env.jobs.audit.job.MAX_LIST_BYTES", 1024)
    big = tmp_path / "big.csv"
    big.write_text("clip_id,flipped\n" + "x,1\n" * 400)
    with pytest.raises(ConfigError) as caught:
        read_truth(str(big))
    assert str(caught.value) == f"truth: {big} is 1.6 KiB (1,616 bytes), over the limit of a truth list (1 KiB)"


def test_the_fit_is_scored_against_the_given_labels():
    """Single-label: argmax accuracy and the macro AUC over classes; multi-label: memberships predicted from 0.5 up;
    a class given to every clip or to none has no AUC (one given to a single clip has), and with none left the
    AUC is None."""
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert fit_quality(np.array([0, 1, 1]), probs, "single_label") == {"accuracy_vs_given": 0.666667,
                                                                        "macro_auc_vs_given": 1.0}
    targets = np.array([[1, 1], [0, 1], [0, 1], [0, 1]])
    multi = np.array([[0.5, 0.9], [0.2, 0.4], [0.7, 0.6], [0.6, 0.8]])
    assert fit_quality(targets, multi, "multi_label") == {"accuracy_vs_given": 0.625, "macro_auc_vs_given": 0.333333}
    assert fit_quality(np.ones((4, 2), dtype=int), multi, "multi_label")["macro_auc_vs_given"] is None
    assert fit_quality(np.zeros((4, 2), dtype=int), multi, "multi_label")["macro_auc_vs_given"] is None


def record(**changes) -> dict:
    base = {"audit_id": "au1", "counts": {"audited": 200, "flagged": 31, "ambiguous": 2, "no_class": 0, "nan": 3},
            "noise": {"flagged_share": 0.155, "estimated_wrong_share": 0.1449,
                      "per_class": {"urban": {"estimated_wrong_share": 0.12, "interval": [0.08, 0.171], "given": 120},
                                    "natural": {"estimated_wrong_share": 0.2, "interval": None, "given": 80}}},
            "task": {"name": "urban_natural"}, "config": {"folds": 5}, "folds": {"grouped": True},
            "model": {"chosen": "logreg", "rule": "as requested", "log_loss": {"logreg": 0.31}},
            "outputs": {"table": "o/audit.parquet", "summary": "o/summary.json"}, "wall_s": 12.34}
    return {**base, **changes}


def test_the_console_summary_of_an_audit():
    lines = summary_lines(AuditResult.from_record(record()))
    assert lines == [
        "audit au1: 200 clips, task urban_natural, logreg x 5 folds (grouped); left out: ambiguous=2, nan=3 (12.3 s)",
        "  flagged 31 (15.5%); estimated share of wrong labels 14.5%: urban 12.0% [8.0%, 17.1%] of 120, "
        "natural 20.0% of 80",
        "  table: o/audit.parquet  summary: o/summary.json"]
    auto = record(counts={"audited": 200, "flagged": 31}, folds={"grouped": False},
                  model={"chosen": "xgboost", "rule": "lowest out-of-fold log loss against the given labels",
                         "log_loss": {"logreg": 0.4012, "xgboost": 0.3, "average": 0.33},
                         "calibration": {"logreg": "none", "xgboost": "platt"}},
                  truth={"known_wrong": 30, "flagged": {"precision": 0.8, "recall": 0.5},
                         "top_k": {"20": {"precision": 0.9, "recall": 0.6}, "30": {"precision": None, "recall": 0.7}}},
                  outputs={"table": "t", "summary": "s", "review": "o/review/index.html"})
    lines = summary_lines(AuditResult.from_record(auto))
    assert lines[0] == "audit au1: 200 clips, task urban_natural, xgboost x 5 folds (12.3 s)"
    assert lines[1] == ("  model: xgboost (lowest out-of-fold log loss against the given labels, each model's "
                        "probabilities calibrated on the other folds where that lowers it: logreg 0.401, "
                        "xgboost 0.300 (platt), average 0.330)")
    assert lines[3:] == [
        "  against 30 known wrong labels: flagged precision 0.80 recall 0.50; top 20: precision 0.90 recall 0.60; "
        "top 30: precision – recall 0.70",
        "  table: t  summary: s", "  review page: o/review/index.html"]


@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
def test_the_audit_table_has_its_documented_columns_in_review_order(tmp_path, kind):
    """Given and suggested labels as class names, probabilities per class, quality, flag, rank and fold with their
    types, the audit's metadata in the schema, rows in suspect order (made-up issues: no model fitted)."""
    make_table(tmp_path / "f.parquet", 12, [[URBAN], [NATURAL]], 0.0, seed=8, multi_label=kind == "multi_label")
    (tmp_path / "t.yaml").write_text(f"name: two\nkind: {kind}\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n"
                                     f"  natural: {{mids: ['{NATURAL}']}}\n")
    task = load_task(str(tmp_path / "t.yaml"))
    data = read_features(str(tmp_path / "f.parquet"), task=task)
    n = len(data)
    given = np.eye(2, dtype=int)[data.y] if kind == "single_label" else data.y
    probs = np.linspace(0.05, 0.95, n)[:, None] * [1, -1] + [0, 1]
    # multi-label: no class reaches 0.5 for any clip, so every suggestion is empty (still a list of names)
    suggested = np.c_[np.ones(n, dtype=int) * (kind == "single_label"), np.zeros(n, dtype=int)]
    issues = LabelIssues(quality=np.linspace(1, 0, n), flagged=np.arange(n) % 3 == 0, suggested=suggested, noise={})
    table = audit_table(data, task, np.arange(n) % 4, probs, issues, {"audit_id": "au1"})
    names = ("urban", "natural")
    types = {f.name: str(f.type) for f in table.schema}
    assert {k: types[k] for k in ("fold", "given_labels", "suggested_labels", "prob_urban", "prob_natural",
                                  "label_quality", "flagged", "suspect_rank")} == {
        "fold": "int16", "given_labels": "list<item: string>", "suggested_labels": "list<item: string>",
        "prob_urban": "float", "prob_natural": "float", "label_quality": "double", "flagged": "bool",
        "suspect_rank": "int32"}
    assert read_metadata(table.schema) == {"audit_id": "au1"}
    rows = table.to_pylist()
    assert [r["suspect_rank"] for r in rows] == list(range(1, n + 1))
    order = np.lexsort((issues.quality, ~issues.flagged))
    assert [r["clip_id"] for r in rows] == [data.ids[i] for i in order]
    for r, i in zip(rows, order):
        assert r["given_labels"] == [names[k] for k in np.flatnonzero(given[i])]
        assert r["suggested_labels"] == ["urban"] * int(suggested[i, 0])
        assert r["fold"] == i % 4 and r["label_quality"] == issues.quality[i] and r["flagged"] == (i % 3 == 0)
        assert r["prob_urban"] == pytest.approx(probs[i, 0]) and r["prob_natural"] == pytest.approx(probs[i, 1])


def test_an_audit_writes_the_documented_summary_and_its_review_page_can_be_rebuilt(tmp_path):
    """One small audit end to end (40 clips, one feature group, logistic regression, 2 folds: about a second):
    summary.json holds what the docs promise, the table carries the audit's metadata, and the review page
    can be written again from the outputs alone with another length."""
    from acoustic_env.config import AuditConfig, from_dict
    from acoustic_env.jobs.audit.job import rebuild_review, run_audit
    from acoustic_env.pages.review import page_items
    from acoustic_env.storage import read_json, read_part

    truth = make_table(tmp_path / "f.parquet", 40, [[URBAN], [NATURAL]], 0.1, seed=9)
    (tmp_path / "truth.csv").write_text("clip_id,flipped\n" + "".join(f"{c},{int(c in truth['flipped'])}\n"
                                                                      for c in truth["ids"]))
    out = str(tmp_path / "audit")
    config = {"features": str(tmp_path / "f.parquet"), "output": out, "classifier": "logreg", "folds": 2, "seed": 3,
              "feature_groups": "indices_raw", "review_top": 3, "random_sample": 0,
              "truth": str(tmp_path / "truth.csv"), "filter_by": "predicted_neq_given"}
    result = run_audit(from_dict(AuditConfig, config))
    again = run_audit(from_dict(AuditConfig, {**config, "output": str(tmp_path / "again")}))  # the seed fixes it all
    assert again.record["noise"] == result.record["noise"] and again.record["folds"] == result.record["folds"]
    assert (read_part(f"{tmp_path / 'again'}/audit.parquet").select(["clip_id", "fold"]).to_pylist()
            == read_part(f"{out}/audit.parquet").select(["clip_id", "fold"]).to_pylist())
    summary = read_json(f"{out}/summary.json")
    assert summary["audit_id"] == result.audit_id and result.audited == 40
    assert read_json(f"{out}/runs/audit-{result.audit_id}.json")["job"] == "audit" and "cleanlab" in summary["versions"]
    assert summary["outputs"]["review"] == result.review == f"{out}/review/index.html"
    assert sorted(s for s, _ in page_items(f"{out}/review")) == ["suspects"] * 3  # no random sample asked for
    assert summary["features"]["excluded"] == {"panns_scores": SCORES_REASON, "mps_raw": "not in feature_groups",
                                                  "spectral_raw": "not in feature_groups"}
    assert summary["duplicates"] is not None
    assert 0 <= summary["fit_s"] <= summary["wall_s"] and summary["fit_s"] == round(summary["fit_s"], 3)
    assert summary["task"] == {"name": "urban_natural", "kind": "single_label", "classes": ["urban", "natural"],
                               "definition": summary["task"]["definition"]} and summary["task"]["definition"]
    assert summary["features"]["columns"] == {"indices_raw": 60} and summary["features"]["dim"] == 60
    assert summary["folds"]["k"] == 2 and summary["folds"]["grouped"] is False and sum(summary["folds"]["sizes"]) == 40
    assert summary["counts"]["audited"] == 40 and summary["counts"]["flagged"] == result.flagged
    assert summary["model"] == {"requested": "logreg", "chosen": "logreg", "log_loss": summary["model"]["log_loss"],
                                "rule": "as requested", "feature_set": "all", "groups": ["indices_raw"],
                                "feature_sets": None, "feature_set_probe": "logreg",
                                "calibration": summary["model"]["calibration"]}
    assert list(summary["model"]["log_loss"]) == ["logreg"]
    assert list(summary["model"]["calibration"]) == ["logreg"]
    assert summary["model"]["calibration"]["logreg"] in ("none", "platt", "isotonic")
    assert set(summary["fit"]) == {"accuracy_vs_given", "macro_auc_vs_given"} and summary["fit"]["accuracy_vs_given"]
    assert summary["noise"]["estimated_wrong_share"] == result.estimated_wrong_share
    assert summary["outputs"] == {"table": f"{out}/audit.parquet", "summary": f"{out}/summary.json",
                                  "review": f"{out}/review/index.html"}
    assert summary["truth"]["known_wrong"] == len(truth["flipped"]) and summary["status"] == "completed"
    assert set(summary["truth"]["top_k"]) == {str(len(truth["flipped"])), "3"}
    table = read_part(f"{out}/audit.parquet")
    assert read_metadata(table.schema) == {"audit_id": result.audit_id, "task": "urban_natural",
                                           "kind": "single_label", "classes": ["urban", "natural"],
                                           "model": "logreg", "folds": 2, "seed": 3}
    assert table.num_rows == 40 and sum(table["flagged"].to_pylist()) == result.flagged
    # the filter asked for: a label is flagged exactly when the out-of-fold model prefers another class
    assert table["flagged"].to_pylist() == [g != s for g, s in zip(table["given_labels"].to_pylist(),
                                                                   table["suggested_labels"].to_pylist())]
    page = rebuild_review(out, 3, 2, seed=1)
    assert page == f"{out}/review/index.html"
    shown = page_items(f"{out}/review")
    assert sum(s == "suspects" for s, _ in shown) == 3 and sum(s == "random" for s, _ in shown) == 2
    rebuild_review(out, 3, 2, seed=2)  # the seed asked for draws the random sample
    assert {c for s, c in page_items(f"{out}/review") if s == "random"} != {c for s, c in shown if s == "random"}


def test_an_audit_with_no_clip_of_the_task_says_so(tmp_path):
    from acoustic_env.config import AuditConfig, from_dict
    from acoustic_env.errors import AuditError
    from acoustic_env.jobs.audit.job import run_audit

    make_table(tmp_path / "f.parquet", 12, [["/m/other"], ["/m/else"]], 0.0, seed=9)
    with pytest.raises(AuditError) as caught:
        run_audit(from_dict(AuditConfig, {"features": str(tmp_path / "f.parquet"), "output": str(tmp_path / "o"),
                                          "classifier": "logreg", "review_top": 0, "random_sample": 0}))
    assert str(caught.value) == (f"features: no clip of {tmp_path / 'f.parquet'} has finite features and a target of "
                                 "task 'urban_natural'")


@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
def test_the_job_hands_what_was_asked_for_to_its_parts(tmp_path, monkeypatch, kind):
    """The options reach the parts that act on them: the ontology and include_random_weights the reading, the seed
    the model, the noise intervals and the review's random sample, the recordings the intervals, parallel=ray a
    Ray session at the address given (and sequential none), auto every model of the zoo and its rule in the
    summary, a multi-label task the multi-label finder. The model is stood in for (fitting is tested elsewhere)."""
    from acoustic_env.config import CLASSIFIERS, AuditConfig, from_dict
    from acoustic_env.jobs.audit.job import run_audit
    from acoustic_env.storage import read_json

    single = kind == "single_label"
    truth = make_table(tmp_path / "f.parquet", 24, [[URBAN], [NATURAL]], 0.0, seed=4, multi_label=not single,
                       groups=6)
    (tmp_path / "t.yaml").write_text(f"name: two\nkind: {kind}\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n"
                                     f"  natural: {{mids: ['{NATURAL}']}}\n")
    (tmp_path / "onto.json").write_text((Path(job.__file__).parents[2] / "vocabulary" / "ontology.json").read_text())
    calls: dict = {}

    def spy(name, real):
        def call(*args, **kwargs):
            calls[name] = (args, kwargs)
            calls[name + " returned"] = real(*args, **kwargs)
            return calls[name + " returned"]
        monkeypatch.setattr(job, name, call)

    def model(names, kind, n_classes, seed, inputs, targets, folds, parallel="sequential", requested="auto"):
        calls["model"] = {"names": names, "kind": kind, "seed": seed, "parallel": parallel, "requested": requested,
                          "sets": list(inputs)}
        onehot = np.eye(n_classes)[targets] if targets.ndim == 1 else targets
        return ("xgboost" if requested == "auto" else requested, "all", 0.1 + 0.8 * onehot, {"xgboost": 0.4}, {},
                {"xgboost": "none"})

    for name in ("read_labelled", "single_label_issues", "multi_label_issues", "build_review"):
        spy(name, getattr(job, name))
    monkeypatch.setattr(job, "choose_model_and_set", model)
    monkeypatch.setattr(job, "start_ray", lambda address=None: calls.setdefault("ray", address))
    config = {"features": str(tmp_path / "f.parquet"), "output": str(tmp_path / "o"), "task": str(tmp_path / "t.yaml"),
              "ontology": str(tmp_path / "onto.json"), "include_random_weights": single, "seed": 5, "folds": 2,
              "classifier": "auto" if single else "mlp", "parallel": "ray" if single else "sequential",
              "ray_address": "127.0.0.1:6379", "review_top": 2, "random_sample": 3}
    result = run_audit(from_dict(AuditConfig, config))
    args, kwargs = calls["read_labelled"]
    assert args[2] == str(tmp_path / "onto.json") and kwargs["include_random_weights"] is single
    assert calls["model"] == {"names": CLASSIFIERS if single else ("mlp",), "kind": kind, "seed": 5,
                              "parallel": config["parallel"], "requested": config["classifier"], "sets": ["all"]}
    assert ("ray" in calls) is single and calls.get("ray", config["ray_address"]) == config["ray_address"]
    args, kwargs = calls[f"{kind}_issues"]
    assert f"{'multi' if single else 'single'}_label_issues" not in calls and kwargs["seed"] == 5
    ids = calls["read_labelled returned"].features.ids
    recording = dict(zip(truth["ids"], truth["groups"]))
    units = kwargs["units"]  # one unit per recording, whatever its code
    assert len({(recording[c], u) for c, u in zip(ids, units)}) == len(set(truth["groups"])) == len(set(units))
    assert calls["build_review"][0][3:] == (2, 3, 5)
    summary = read_json(str(tmp_path / "o" / "summary.json"))
    rule = "lowest out-of-fold log loss against the given labels" if single else "as requested"
    assert summary["model"]["rule"] == rule and summary["model"]["chosen"] == ("xgboost" if single else "mlp")
    assert "truth" not in summary  # none asked for
    assert result.audited == 24


def test_the_console_names_the_feature_set_chosen_and_the_corrected_label_list_used():
    """The feature-set line (every set's log loss for the probe model) is the third: after the model line when
    several models competed, else after the flagged line; the label-list line sits before the table line."""
    listed = {"uri": "o/labels.csv", "clips": 40, "changed": 6, "conflicts": 2, "sha256": "0123456789abcdef" * 4}
    sets = {"all": 0.5123, "birdnet": 0.4}
    auto = record(model={"chosen": "logreg", "rule": "lowest out-of-fold log loss against the given labels",
                         "log_loss": {"logreg": 0.41, "average": 0.42}, "feature_set": "birdnet",
                         "feature_sets": sets, "feature_set_probe": "logreg"}, label_list=listed)
    lines = summary_lines(AuditResult.from_record(auto))
    assert lines[1] == ("  model: logreg (lowest out-of-fold log loss against the given labels, each model's "
                        "probabilities calibrated on the other folds where that lowers it: logreg 0.410, "
                        "average 0.420)")
    assert lines[2:] == [
        "  feature set: birdnet (lowest out-of-fold log loss of logreg on each: all 0.512, birdnet 0.400)",
        "  flagged 31 (15.5%); estimated share of wrong labels 14.5%: urban 12.0% [8.0%, 17.1%] of 120, "
        "natural 20.0% of 80",
        "  labels: o/labels.csv (40 clips listed, 6 changed against the table; 2 clips in conflict keep the table's "
        "labels; sha256 0123456789ab)",
        "  table: o/audit.parquet  summary: o/summary.json"]
    one = record(model={"chosen": "mlp", "rule": "as requested", "log_loss": {"mlp": 0.3}, "feature_set": "all",
                        "feature_sets": sets, "feature_set_probe": "mlp"})
    lines = summary_lines(AuditResult.from_record(one))
    assert lines[0].startswith("audit au1: 200 clips, task urban_natural, mlp x 5 folds (grouped); left out: ")
    assert lines[2] == "  feature set: all (lowest out-of-fold log loss of mlp on each: all 0.512, birdnet 0.400)"
    assert len(lines) == 4 and lines[1].startswith("  flagged 31 ") and not any(l.startswith("  model:") for l in lines)


def stand_in_audit(tmp_path: Path, monkeypatch, **options) -> tuple[dict, pa.Table, dict]:
    """An audit of 24 synthetic clips with hand-made groups and a pretrained embedder (BirdNET's 1024 columns), the
    model stood in for (it keeps the ``birdnet`` set when offered) and its fit timed by a stand-in clock: its summary,
    its table, and what the job handed the model and the review's embedding."""
    from acoustic_env.config import AuditConfig, from_dict
    from acoustic_env.demo.tables import synthetic_features
    from acoustic_env.jobs.audit.job import run_audit
    from acoustic_env.storage import read_json, read_part, write_parquet

    write_parquet(synthetic_features(24, embedders=("birdnet",), weights="0" * 64, signals=("raw",)).table,
                  str(tmp_path / "f.parquet"))
    seen: dict = {}

    def model(names, kind, n_classes, seed, inputs, targets, folds, parallel="sequential", requested="auto"):
        seen["widths"] = {name: X.shape[1] for name, X in inputs.items()}
        chosen_set = "birdnet" if "birdnet" in inputs else next(iter(inputs))
        return ("logreg", chosen_set, 0.1 + 0.8 * np.eye(n_classes)[targets], {"logreg": 0.4},
                {name: 0.5 for name in inputs} if len(inputs) > 1 else {}, {"logreg": "none"})

    def embed(X, **kwargs):
        seen["embedded"] = (X.shape[1], kwargs)
        seen["embedding"] = real_embed(X, **kwargs)
        return seen["embedding"]

    real_embed = job.embed
    monkeypatch.setattr(job, "time", SimpleNamespace(time=iter([1000.0, 1000.123456]).__next__))  # the fit: 0.123456 s
    monkeypatch.setattr(job, "choose_model_and_set", model)
    monkeypatch.setattr(job, "embed", embed)
    out = tmp_path / "o"
    run_audit(from_dict(AuditConfig, {"features": str(tmp_path / "f.parquet"), "output": str(out), "folds": 2,
                                      "seed": 5, "review_top": 0, "random_sample": 0, **options}))
    return read_json(str(out / "summary.json")), read_part(str(out / "audit.parquet")), seen


def test_each_feature_set_is_offered_with_its_own_columns_and_the_chosen_one_is_recorded_and_embedded(
        tmp_path, monkeypatch):
    """Without --feature-groups the model gets every candidate set as its own columns; the summary names the set kept,
    its groups, every set's loss and the probe (logistic regression under auto); the review's embedding (kept in
    the table for the review server) is of the kept set's columns, with the audit's seed."""
    summary, table, seen = stand_in_audit(tmp_path, monkeypatch, classifier="auto")
    assert seen["widths"] == {"all": 1844, "birdnet": 1024, "hand-made": 820, "birdnet+indices": 1084}
    model = summary["model"]
    assert (model["feature_set"], model["groups"], model["feature_set_probe"]) == ("birdnet", ["birdnet"], "logreg")
    assert model["feature_sets"] == {"all": 0.5, "birdnet": 0.5, "hand-made": 0.5, "birdnet+indices": 0.5}
    assert seen["embedded"] == (1024, {"seed": 5}) and summary["fit_s"] == 0.123
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 24)
    ids = table["clip_id"].to_pylist()
    order = [ids.index(c) for c in sorted(ids)]  # embedded in the features' order (the file's: clip ids ascending)
    np.testing.assert_array_equal(np.array(table["embedding"].to_pylist())[order], seen["embedding"])


def test_named_feature_groups_are_one_set_and_a_named_model_is_its_own_probe(tmp_path, monkeypatch):
    summary, _, seen = stand_in_audit(tmp_path, monkeypatch, classifier="mlp", feature_groups="indices_raw,birdnet")
    assert seen["widths"] == {"all": 1084} and seen["embedded"][0] == 1084
    model = summary["model"]
    assert (model["feature_set"], model["groups"], model["feature_sets"], model["feature_set_probe"]) == (
        "all", ["indices_raw", "birdnet"], None, "mlp")


def test_a_corrected_label_list_replaces_the_given_labels_and_is_recorded(tmp_path, monkeypatch):
    """--labels: the listed clips are audited with the list's classes, and the summary says which list, how many
    clips it lists and how many it changed."""
    from acoustic_env.demo.tables import synthetic_features

    ids = synthetic_features(24, embedders=("birdnet",), weights="0" * 64, signals=("raw",)).ids
    (tmp_path / "labels.csv").write_text(f"clip_id,labels\n{ids[0]},urban\n{ids[1]},natural\n{ids[2]},\n")
    summary, table, _ = stand_in_audit(tmp_path, monkeypatch, classifier="logreg",
                                       labels=str(tmp_path / "labels.csv"))
    given = dict(zip(table["clip_id"].to_pylist(), table["given_labels"].to_pylist()))
    assert (given[ids[0]], given[ids[1]], ids[2] in given) == (["urban"], ["natural"], False)
    listed = summary["label_list"]
    assert (listed["uri"], listed["clips"], listed["conflicts"]) == (str(tmp_path / "labels.csv"), 3, 0)
    # the synthetic table gave them urban, urban, natural: the first keeps its class, the others change
    assert listed["changed"] == 2 and len(listed["sha256"]) == 64
