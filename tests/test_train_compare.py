"""What the labels changed (``jobs/train/compare.py``): the previous chosen model read back from its file, and
compared on the clips whose label did not change only."""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from acoustic_env.jobs.train.compare import (compare, comparison_line, figure, paired, read_previous, scored,
                                             write_predictions)
from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, resample_groups

NAMES = ["urban", "natural"]


def _run(run_id: str, y: np.ndarray, p1: np.ndarray, listed: dict | None = None, scored_rows: int | None = None):
    """A binary run over clips c00..: targets ``y``, P(natural) ``p1`` on the first ``scored_rows`` clips."""
    ids = np.array([f"c{i:02d}" for i in range(len(y))], dtype=object)
    n = len(y) if scored_rows is None else scored_rows
    predictions = {"clip_id": list(ids[:n]), "proba": {"logreg": np.c_[1 - p1[:n], p1[:n]]}}
    return scored(run_id, "logreg", "single_label", NAMES, listed, ids, y, predictions)


def test_the_previous_model_is_read_back_and_compared_on_unchanged_clips_only(tmp_path):
    rng = np.random.default_rng(0)
    y_old = rng.integers(0, 2, 60)
    y_new = y_old.copy()
    y_new[:10] = 1 - y_new[:10]  # ten labels corrected
    old = _run("r1", y_old, np.clip(y_new * 0.6 + rng.random(60) * 0.4, 0, 1))
    new = _run("r2", y_new, np.clip(y_new * 0.7 + rng.random(60) * 0.3, 0, 1),
               {"uri": "l.csv", "sha256": "ab" * 32, "clips": 10, "reviewed": 10, "conflicts": 0, "changed": 10},
               scored_rows=50)
    assert read_previous(str(tmp_path / "report")) is None  # a first run: nothing to compare with
    write_predictions(str(tmp_path / "report"), old)
    back = read_previous(str(tmp_path / "report"))
    assert back.targets == old.targets and set(back.proba) == set(old.proba)
    assert np.allclose(back.proba["c03"], old.proba["c03"], atol=1e-6)
    units = {f"c{i:02d}": f"g{i // 2}" for i in range(60)}
    cmp = compare(new, back, units, seed=0)
    assert cmp["previous"]["changed"] == 10 and cmp["table"]["changed"] == 10
    u = cmp["unchanged"]
    assert u["clips"] == 40  # 60, less the 10 relabelled, less the 10 the new run did not score
    kept = [f"c{i:02d}" for i in range(10, 50)]
    assert np.isclose(u["previous"], roc_auc_score(y_new[10:50], np.stack([back.proba[c] for c in kept])[:, 1]))
    assert np.isclose(u["new"], roc_auc_score(y_new[10:50], np.stack([new.proba[c] for c in kept])[:, 1]))
    assert u["new_interval"][0] <= u["new"] <= u["new_interval"][1]
    assert u["difference_interval"][0] <= u["difference"] <= u["difference_interval"][1]
    assert "10 clips against the table, 10 against the previous model's (run r1)" in comparison_line(cmp)[0]


def test_a_previous_model_of_another_task_is_not_compared(tmp_path):
    y = np.array([0, 1] * 10)
    other = scored("r1", "logreg", "single_label", ["a", "b"], None, np.array([f"c{i:02d}" for i in range(20)]), y,
                   {"clip_id": [f"c{i:02d}" for i in range(20)], "proba": {"logreg": np.c_[1 - y * 0.9, y * 0.9]}})
    cmp = compare(_run("r2", y, y * 0.8), other, {}, seed=0)
    assert cmp["unchanged"] is None and "another task" in cmp["note"]
    assert compare(_run("r2", y, y * 0.8), None, {}, seed=0) is None  # the table's labels and no earlier model


def _scored(run_id: str, model: str, ids: list[str], y: np.ndarray, proba: np.ndarray, n_scored: int,
            listed: dict | None = None, kind: str = "single_label", names: list[str] = NAMES):
    """A run over clips ``ids`` with targets ``y`` and probabilities ``proba`` on its first ``n_scored`` clips."""
    return scored(run_id, model, kind, names, listed, np.array(ids, dtype=object), y,
                  {"clip_id": ids[:n_scored], "proba": {model: proba[:n_scored]}})


LISTED = {"uri": "l.csv", "sha256": "ab" * 32, "clips": 12, "reviewed": 12, "conflicts": 0, "changed": 12}


def test_the_report_counts_the_clips_each_run_holds_and_bootstraps_whole_groups(tmp_path):
    """Runs over overlapping clips (5 only in each), 10 relabelled, each scoring a part: the counts, both figures on
    the 40 clips both scored alike, and 95 % intervals from one paired bootstrap over the groups (a clip without a
    group its own), as the report's line shows them."""
    rng = np.random.default_rng(1)
    ids = [f"c{i:02d}" for i in range(65)]
    y = rng.integers(0, 2, 65)
    y_new = y.copy()
    y_new[5:15] = 1 - y_new[5:15]
    p_old, p_new = (np.clip(y_new * w + rng.random(65) * (1 - w), 0, 1) for w in (0.3, 0.5))
    old = _scored("r1", "logreg", ids[:60], y[:60], np.c_[1 - p_old, p_old][:60], 55,
                  {**LISTED, "uri": "old.csv"})
    new = _scored("r2", "mlp", ids[5:], y_new[5:], np.c_[1 - p_new, p_new][5:], 50, LISTED)
    write_predictions(str(tmp_path), old)
    back = read_previous(str(tmp_path))
    assert back.model == "logreg" and back.label_list == old.label_list and set(back.proba) == set(ids[:55])
    units = {c: f"g{i // 2}" for i, c in enumerate(ids[:50])}  # c50.. have no group
    cmp = compare(new, back, units, seed=3)
    assert {k: cmp[k] for k in ("table", "model", "metric", "note")} == {
        "table": LISTED, "model": "mlp", "metric": "ROC AUC", "note": None}
    assert cmp["previous"] == {"run_id": "r1", "model": "logreg", "label_list": old.label_list, "clips": 60,
                               "both": 55, "changed": 10, "only_new": 5, "only_previous": 5}
    kept = list(range(15, 55))
    u = cmp["unchanged"]
    assert u["clips"] == 40 and u["replicates"] == BOOTSTRAP_REPLICATES
    figures = {"previous": p_old, "new": p_new}
    draws = {k: [] for k in ("previous", "new", "difference")}
    groups = np.array([units.get(ids[i], ids[i]) for i in kept])
    for rows in resample_groups(groups, BOOTSTRAP_REPLICATES, 3):
        idx = np.array(kept)[rows]
        if len(set(y_new[idx])) == 2:
            a, b = (roc_auc_score(y_new[idx], figures[k][idx]) for k in ("previous", "new"))
            draws["previous"].append(a), draws["new"].append(b), draws["difference"].append(b - a)
    for k, v in draws.items():
        assert np.allclose(u[f"{k}_interval"], np.percentile(v, [2.5, 97.5])), k
    for k in ("previous", "new"):
        assert np.isclose(u[k], roc_auc_score(y_new[kept], figures[k][kept])), k
    (pl, ph), (nl, nh), (dl, dh) = (u[f"{k}_interval"] for k in ("previous", "new", "difference"))
    assert comparison_line(cmp) == [
        f"  what the labels changed: 12 clips against the table, 10 against the previous model's (run r1); ROC AUC "
        f"on the 40 unchanged clips {u['previous']:.3f} [{pl:.3f}, {ph:.3f}] (logreg, run r1) -> {u['new']:.3f} "
        f"[{nl:.3f}, {nh:.3f}] (mlp), difference {u['difference']:+.3f} [{dl:+.3f}, {dh:+.3f}]"]


def test_multi_label_runs_are_compared_by_map_on_the_unchanged_clips(tmp_path):
    names = ["a", "b", "c"]
    rng = np.random.default_rng(2)
    ids = [f"c{i:02d}" for i in range(40)]
    y = (rng.random((40, 3)) < 0.4).astype(int)
    y_new = y.copy()
    y_new[:5, 0] = 1 - y_new[:5, 0]
    p_old, p_new = (np.clip(y_new * w + rng.random((40, 3)) * (1 - w), 0, 1) for w in (0.2, 0.6))
    old = _scored("r1", "logreg", ids, y, p_old, 40, kind="multi_label", names=names)
    new = _scored("r2", "logreg", ids, y_new, p_new, 40, LISTED, kind="multi_label", names=names)
    write_predictions(str(tmp_path), old)
    back = read_previous(str(tmp_path))
    assert back.targets == {c: tuple(np.flatnonzero(row)) for c, row in zip(ids, y)}
    cmp = compare(new, back, {}, seed=0)
    u = cmp["unchanged"]
    assert cmp["metric"] == "mAP" and cmp["previous"]["changed"] == 5 and u["clips"] == 35
    for k, p in (("previous", p_old), ("new", p_new)):
        expected = np.mean([average_precision_score(y_new[5:, j], p[5:, j]) for j in range(3)])
        assert np.isclose(u[k], expected, atol=1e-6), k
    assert u["new_interval"][0] <= u["new"] <= u["new_interval"][1]
    assert "; mAP on the 35 unchanged clips" in comparison_line(cmp)[0]


def test_map_is_undefined_unless_a_label_is_both_present_and_absent():
    p = np.c_[[0.9, 0.1, 0.2, 0.3], [0.5] * 4]
    assert figure("multi_label", np.array([[0, 1]] * 4), p) is None  # one label never, the other always
    assert figure("multi_label", np.array([[1, 1], [0, 1], [0, 1], [0, 1]]), p) == 1.0  # one clip is enough
    assert np.isclose(figure("multi_label", np.array([[1, 1], [1, 1], [1, 1], [0, 1]]), p),
                      average_precision_score([1, 1, 1, 0], p[:, 0]))


def test_what_cannot_be_compared_says_why(tmp_path):
    y = np.array([0, 1] * 10)
    ids = [f"c{i:02d}" for i in range(20)]
    p = np.c_[1 - y * 0.8, y * 0.8]
    first = compare(_scored("r1", "logreg", ids, y, p, 20, LISTED), None, {}, seed=0)
    assert first == {"table": LISTED, "model": "logreg", "metric": "ROC AUC", "previous": None, "unchanged": None,
                     "note": "no earlier chosen model in this output to compare with"}
    assert comparison_line(first) == ["  what the labels changed: 12 clips against the table; no earlier chosen "
                                      "model in this output to compare with"]
    other = _scored("r1", "logreg", ids, y, p, 20, names=["x", "y"])
    assert comparison_line(compare(_scored("r2", "logreg", ids, y, p, 20), other, {}, seed=0)) == [
        "  what the labels changed: nothing counted; the previous model (r1) is of another task (single_label: x, y): "
        "no comparison"]
    unscored = compare(_scored("r2", "logreg", ids, y, p, 0), _scored("r1", "logreg", ids, y, p, 20), {}, seed=0)
    assert unscored["unchanged"] is None and unscored["note"] == "no clip was scored by both models with the same label"
    one_class = compare(_scored("r2", "logreg", ids, y, p, 20), _scored("r1", "logreg", ids, 1 - y, p, 20), {}, 0)
    assert one_class["unchanged"] is None  # every label changed: nothing left to compare
    half = _scored("r2", "logreg", ids, np.where(np.arange(20) < 10, y, 1), p, 20)
    cmp = compare(half, _scored("r1", "logreg", ids, np.ones(20, int), p, 20), {}, seed=0)
    assert cmp["unchanged"] == {"clips": 15, "previous": None, "new": None, "difference": None,
                                "previous_interval": None, "new_interval": None, "difference_interval": None,
                                "replicates": 0}
    assert comparison_line(cmp) == ["  what the labels changed: 5 against the previous model's (run r1); ROC AUC is "
                                    "undefined on the unchanged clips (a class is missing among them)"]
    (tmp_path / "predictions.parquet").write_bytes(b"PAR1 cut short")
    # the job's logger itself, not the root's capture: an earlier test of the process (a command's quiet console)
    # may have stopped it propagating to the root logger
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("acoustic_env.jobs.train").addHandler(handler)
    try:
        assert read_previous(str(tmp_path)) is None
    finally:
        logging.getLogger("acoustic_env.jobs.train").removeHandler(handler)
    with pytest.raises(pa.ArrowInvalid) as why:
        pq.read_table(io.BytesIO((tmp_path / "predictions.parquet").read_bytes()))  # as read_previous reads it
    assert records[-1].getMessage() == (f"the previous model's predictions {tmp_path / 'predictions.parquet'} "
                                               f"cannot be read ({why.value}): no comparison")


def test_no_interval_above_the_bootstrap_cap_or_from_too_few_defined_draws(monkeypatch):
    import acoustic_env.jobs.train.compare as compare_module

    monkeypatch.setattr(compare_module, "MAX_BOOTSTRAP_CELLS", 100)  # clips x columns
    y = np.array([0, 1] * 26)
    p = np.c_[1 - y * 0.8, y * 0.8]
    over = paired("single_label", y[:51], p[:51], p[:51], np.arange(51), 0)
    assert (over["previous_interval"], over["new_interval"], over["difference_interval"], over["replicates"]) == \
        (None, None, None, 0)
    assert paired("single_label", y[:50], p[:50], p[:50], np.arange(50), 0)["replicates"] == BOOTSTRAP_REPLICATES
    ids = [f"c{i:02d}" for i in range(51)]
    capped = compare(_scored("r2", "mlp", ids, y[:51], p, 51), _scored("r1", "logreg", ids, y[:51], p, 51), {}, 0)
    assert comparison_line(capped) == [  # figures without intervals
        "  what the labels changed: 0 against the previous model's (run r1); ROC AUC on the 51 unchanged clips 1.000 "
        "(logreg, run r1) -> 1.000 (mlp), difference +0.000"]
    # two groups, one per class: a draw defines ROC AUC only when it holds both; 6 draws, so 3 are enough
    units, seen = np.array(["g0", "g1"] * 3), set()
    for seed in range(40):
        defined = sum(len(set(units[rows])) == 2 for rows in resample_groups(units, 6, seed))
        got = paired("single_label", np.array([0, 1] * 3), p[:6], p[:6], units, seed, replicates=6)
        assert (got["new_interval"] is None) == (defined < 3), (seed, defined)
        seen.add(defined)
    assert {2, 3} <= seen
